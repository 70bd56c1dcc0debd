// Layers TLS over an accepted client stream (server side) with a listener's context.
#pragma once

#include <uv.h>

#include <memory>
#include <string>

#include "proxy/net/stream.h"

namespace gatehouse {

class ServerTlsContext;

// `received`: bytes the transport already delivered to someone else (TLS records that followed a
// PROXY protocol header in the same read); they are handled first, once reading starts.
std::unique_ptr<Stream> wrapServerTls(std::unique_ptr<Stream> transport,
                                      const ServerTlsContext& context, uv_loop_t* loop,
                                      std::string received = {});

}  // namespace gatehouse
