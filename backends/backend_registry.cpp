#include "backends/backend_registry.h"

#include <openssl/ssl.h>

#include "tls/tls_context.h"

namespace gatehouse {

std::shared_ptr<const BackendRegistry> BackendRegistry::create(const Config& config,
                                                               std::string& error) {
  auto registry = std::make_shared<BackendRegistry>();
  for (size_t i = 0; i < config.backends.size(); ++i) {
    const BackendConfig& bc = config.backends[i];
    Backend backend;
    backend.config = bc;
    if (bc.tls != TlsMode::None) {
      backend.tls = ClientTlsContext::create(bc, {}, error);
      if (!backend.tls) {
        error = "/backends/" + std::to_string(i) + ": " + error;  // as the loader's errors
        return nullptr;
      }
    }
    registry->backends_.emplace(bc.name, std::move(backend));
  }
  return registry;
}

const Backend* BackendRegistry::find(std::string_view name) const {
  auto it = backends_.find(std::string(name));
  return it == backends_.end() ? nullptr : &it->second;
}

}  // namespace gatehouse
