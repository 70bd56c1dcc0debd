#include "tls/tls_wrap.h"

#include <openssl/ssl.h>

#include "tls/tls_context.h"
#include "tls/tls_stream.h"

namespace gatehouse {

std::unique_ptr<Stream> wrapServerTls(std::unique_ptr<Stream> transport,
                                      const ServerTlsContext& context, uv_loop_t* loop,
                                      std::string received) {
  return std::make_unique<TlsStream>(std::move(transport), context.newSsl(), loop,
                                     std::move(received));
}

}  // namespace gatehouse
