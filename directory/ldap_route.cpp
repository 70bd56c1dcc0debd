// LDAP entry -> AuthResult. The mailHost is only ever looked up among configured back-ends, so
// whatever the directory holds, Gatehouse connects to no host the operator did not list.
#include "directory/ldap_route.h"

#include <algorithm>
#include <optional>

#include "proxy/core/ascii.h"
#include "proxy/net/ip_address.h"

namespace gatehouse {
namespace {

AuthResult result(AuthStatus status, std::string reason) {
  return AuthResult{status, Route{}, std::move(reason)};
}

}  // namespace

LdapRouteMapper::LdapRouteMapper(const LdapAttributes& attributes,
                                 const std::vector<BackendConfig>& backends)
    : attributes_(attributes) {
  for (const BackendConfig& backend : backends) {
    by_name_.emplace(backend.name, backend.name);
    if (auto bytes = ipAddressBytes(backend.address)) by_address_.emplace(*bytes, backend.name);
  }
}

std::string LdapRouteMapper::backendFor(std::string_view value) const {
  if (auto it = by_name_.find(std::string(value)); it != by_name_.end()) return it->second;
  // Host names compare case-insensitively; an exact match above wins over this.
  for (const auto& [name, target] : by_name_) {
    if (asciiEqualsIgnoreCase(name, value)) return target;
  }
  if (auto bytes = ipAddressBytes(std::string(value))) {
    if (auto it = by_address_.find(*bytes); it != by_address_.end()) return it->second;
  }
  return {};
}

AuthResult LdapRouteMapper::decide(const LdapEntry& entry, std::string_view typed_login,
                                   Protocol protocol) const {
  if (!attributes_.disabled.empty()) {
    bool disabled = std::any_of(entry.disabled.begin(), entry.disabled.end(), [&](const auto& v) {
      return asciiEqualsIgnoreCase(v, attributes_.disabled_value);
    });
    if (disabled) return result(AuthStatus::Denied, "account disabled");
  }
  if (!attributes_.protocols.empty() && !entry.protocols.empty()) {
    bool allowed = std::any_of(entry.protocols.begin(), entry.protocols.end(), [&](const auto& v) {
      return asciiEqualsIgnoreCase(v, protocolName(protocol));
    });
    if (!allowed) {
      return result(AuthStatus::Disabled, std::string("protocol ") + protocolName(protocol) +
                                              " not allowed for this user");
    }
  }
  if (entry.backend.empty()) {
    return result(AuthStatus::TempFail, "entry " + entry.dn + " has no " + attributes_.backend);
  }
  // A multi-valued mailHost is a directory mistake; the first value decides, as in Dovecot.
  std::string backend = backendFor(entry.backend.front());
  if (backend.empty()) {
    return result(AuthStatus::TempFail, attributes_.backend + " \"" + entry.backend.front() +
                                            "\" of " + entry.dn + " names no configured back-end");
  }
  std::string user = entry.login.empty() || entry.login.front().empty() ? std::string(typed_login)
                                                                        : entry.login.front();
  return AuthResult{AuthStatus::Ok, Route{std::move(user), std::move(backend)}, ""};
}

}  // namespace gatehouse
