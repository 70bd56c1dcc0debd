// Layers TLS over an accepted client stream (server side) with a listener's context.
#pragma once

#include <uv.h>

#include <memory>

#include "proxy/net/stream.h"

namespace gatehouse {

class ServerTlsContext;

std::unique_ptr<Stream> wrapServerTls(std::unique_ptr<Stream> transport,
                                      const ServerTlsContext& context, uv_loop_t* loop);

}  // namespace gatehouse
