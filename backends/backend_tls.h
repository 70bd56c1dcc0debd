// Puts TLS (client side, with the back-end's verification settings) over a connected stream.
#pragma once

#include <uv.h>

#include <memory>

#include "backends/backend_registry.h"
#include "proxy/net/stream.h"

namespace gatehouse {

std::unique_ptr<Stream> wrapClientTls(std::unique_ptr<Stream> transport, const Backend& backend,
                                      uv_loop_t* loop);

}  // namespace gatehouse
