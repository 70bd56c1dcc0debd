#include "backends/backend_tls.h"

#include <openssl/ssl.h>

#include "tls/tls_context.h"
#include "tls/tls_stream.h"

namespace gatehouse {

std::unique_ptr<Stream> wrapClientTls(std::unique_ptr<Stream> transport, const Backend& backend,
                                      uv_loop_t* loop) {
  return std::make_unique<TlsStream>(std::move(transport), backend.tls->newSsl(), loop);
}

}  // namespace gatehouse
