// The back-ends named in the configuration: the only hosts Gatehouse ever connects to,
// whatever the directory or a referral says.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "backends/learned_capabilities.h"
#include "proxy/config/config.h"

namespace gatehouse {

class ClientTlsContext;

struct Backend {
  BackendConfig config;
  std::shared_ptr<const ClientTlsContext> tls;    // null when config.tls == None
  mutable LearnedCapabilities pop3_capabilities;  // its CAPA answer (after STLS, if any)

  // Port for `protocol`, or 0 if this back-end does not serve it.
  uint16_t port(Protocol protocol) const {
    auto it = config.ports.find(protocol);
    return it == config.ports.end() ? 0 : it->second;
  }
};

class BackendRegistry {
 public:
  // Builds TLS client contexts; on failure returns nullptr and sets `error`.
  static std::shared_ptr<const BackendRegistry> create(const Config& config, std::string& error);

  // Case-sensitive lookup by configured name; nullptr for anything not configured.
  const Backend* find(std::string_view name) const;

 private:
  std::unordered_map<std::string, Backend> backends_;
};

}  // namespace gatehouse
