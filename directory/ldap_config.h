// The LDAP directory's settings (the configuration's "directory.ldap" object): parsed and
// validated with every problem reported at its JSON pointer, defaults filled in.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "proxy/config/config.h"
#include "proxy/core/secret.h"

namespace gatehouse {

enum class LdapScope { Sub, One };

struct LdapAttributes {
  std::string backend = "mailHost";  // misc.schema: the host that holds the mailbox
  std::string login = "uid";         // the canonical login presented to the back-end
  std::string protocols;             // empty: not configured, every protocol is allowed
  std::string disabled;              // empty: not configured, no account is disabled
  std::string disabled_value = "TRUE";
};

struct LdapConfig {
  std::vector<std::string> uris;  // ldap:// or ldaps://, tried in order
  bool starttls = false;
  std::string ca_file;  // absolute; empty = the system's CA store
  std::string bind_dn;  // empty = anonymous search
  Secret bind_password;
  std::string base_dn;
  LdapScope scope = LdapScope::Sub;
  std::string filter = "(|(uid=%u)(mail=%u))";
  LdapAttributes attributes;
  unsigned connect_ms = 2000;
  unsigned request_ms = 3000;  // one whole authentication: search and bind
  unsigned max_in_flight = 256;
  unsigned bind_connections = 4;
  unsigned reconnect_min_ms = 100;
  unsigned reconnect_max_ms = 5000;
};

// Reads `value` (found at `pointer` in the configuration). Relative file names are resolved
// against `base_dir`; bind_password_file is read. nullopt if anything was appended to `errors`.
std::optional<LdapConfig> parseLdapConfig(const nlohmann::json& value, const std::string& pointer,
                                          const std::filesystem::path& base_dir,
                                          std::vector<ConfigError>& errors);

// For the configuration loader: validates `value` like parseLdapConfig and returns it as JSON text
// with its file names made absolute, so that the directory can re-read it without `base_dir`.
std::string checkLdapJson(const nlohmann::json& value, const std::string& pointer,
                          const std::filesystem::path& base_dir, std::vector<ConfigError>& errors);

}  // namespace gatehouse
