// What a found and password-verified LDAP entry means for a login: the back-end its mailHost
// names (only a configured one), the canonical login, protocol permission and disabled flag.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "directory/directory.h"
#include "directory/ldap_config.h"

namespace gatehouse {

// The attribute values the search asked for (attribute names as configured).
struct LdapEntry {
  std::string dn;
  std::vector<std::string> backend;
  std::vector<std::string> login;
  std::vector<std::string> protocols;
  std::vector<std::string> disabled;
};

class LdapRouteMapper {
 public:
  LdapRouteMapper(const LdapAttributes& attributes, const std::vector<BackendConfig>& backends);

  // The answer for `entry` once its password was proven. `typed_login` is what the user gave
  // (the canonical login falls back to it).
  AuthResult decide(const LdapEntry& entry, std::string_view typed_login, Protocol protocol) const;

  // The configured back-end that `value` (a mailHost) names: by name, then by address; empty
  // if none does.
  std::string backendFor(std::string_view value) const;

 private:
  LdapAttributes attributes_;
  std::map<std::string, std::string> by_name_;     // configured name -> name
  std::map<std::string, std::string> by_address_;  // address bytes -> name (the first listed)
};

}  // namespace gatehouse
