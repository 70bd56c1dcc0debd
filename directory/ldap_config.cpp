// Reader for "directory.ldap": URIs, TLS, service account, search, attribute names, timeouts and
// pool sizes, with the same pointer-named errors as the rest of the configuration.
#include "directory/ldap_config.h"

#include <ldap.h>
#include <openssl/mem.h>

#include "directory/ldap_filter.h"
#include "proxy/config/config_json.h"
#include "proxy/config/config_loader.h"
#include "tls/pem_file.h"

namespace gatehouse {
namespace {

namespace fs = std::filesystem;
using config_json::Json;
using config_json::Need;
using config_json::ObjectReader;
using config_json::pointerTo;
using config_json::quoteJson;

// Timeouts are libuv timer values; a day is already far beyond any useful LDAP wait.
constexpr uint64_t kMaxTimeoutMs = 86400000;
// Each in-flight request holds a timer and a little memory; beyond this it is a typo.
constexpr uint64_t kMaxInFlight = 1000000;
// Each bind connection is a socket (and a TLS session) held open on every LDAP server.
constexpr uint64_t kMaxBindConnections = 256;
// A password file is a line; anything this large is the wrong file.
constexpr size_t kMaxBindPasswordFile = 4096;

const std::vector<std::pair<std::string_view, LdapScope>> kScopes = {
    {"sub", LdapScope::Sub},
    {"one", LdapScope::One},
};

// An attribute description as RFC 4512 allows it (name or OID, options): nothing a filter or a
// log could be confused by.
bool isAttributeName(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == ';';
    if (!ok) return false;
  }
  return true;
}

bool checkDn(const ObjectReader& reader, std::string_view key, const std::string& dn) {
  // libldap takes C strings: a NUL would cut the DN short without a word.
  if (dn.find('\0') != std::string::npos) {
    reader.error(reader.pointerOf(key), "must not contain a NUL byte");
    return false;
  }
  LDAPDN parsed = nullptr;
  const bool valid = ldap_str2dn(dn.c_str(), &parsed, LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS;
  if (parsed != nullptr) ldap_dnfree(parsed);
  if (!valid) reader.error(reader.pointerOf(key), "is not a valid DN");
  return valid;
}

class LdapReader {
 public:
  LdapReader(fs::path base_dir, std::vector<ConfigError>& errors)
      : base_dir_(std::move(base_dir)), errors_(errors) {}

  LdapConfig read(const Json& value, const std::string& pointer);
  Json& normalised() { return normalised_; }

 private:
  void readUris(const ObjectReader& reader);
  void readCredentials(const ObjectReader& reader);
  void readAttributes(const Json& value, const std::string& pointer);
  void readTimeouts(const Json& value, const std::string& pointer);
  void readBackoff(const Json& value, const std::string& pointer);
  std::optional<std::string> readFile(const ObjectReader& reader, std::string_view key,
                                      const char* normalised_key);
  void unsigned32(const ObjectReader& reader, std::string_view key, uint64_t min, uint64_t max,
                  unsigned& field) {
    if (auto v = reader.integer(key, min, max, Need::Optional)) field = static_cast<unsigned>(*v);
  }

  fs::path base_dir_;
  std::vector<ConfigError>& errors_;
  LdapConfig config_;
  Json normalised_;
};

LdapConfig LdapReader::read(const Json& value, const std::string& pointer) {
  normalised_ = value;
  ObjectReader reader(value, pointer, errors_,
                      {"uris", "starttls", "ca_file", "bind_dn", "bind_password",
                       "bind_password_file", "base_dn", "scope", "filter", "attributes", "timeouts",
                       "max_in_flight", "bind_connections", "reconnect_backoff_ms"});
  if (!reader.isObject()) return config_;
  readUris(reader);
  config_.starttls = reader.boolean("starttls", Need::Optional).value_or(false);
  if (config_.starttls) {
    for (const std::string& uri : config_.uris) {
      if (uri.rfind("ldaps://", 0) == 0) {
        reader.error(reader.pointerOf("starttls"),
                     "cannot be used with ldaps:// URIs (" + uri + " is already TLS)");
        break;
      }
    }
  }
  config_.ca_file = readFile(reader, "ca_file", "ca_file").value_or("");
  if (!config_.ca_file.empty()) {
    std::string problem = pemCertificatesProblem(config_.ca_file);
    if (!problem.empty()) {
      reader.error(reader.pointerOf("ca_file"), quoteJson(config_.ca_file) + ": " + problem);
    }
  }
  readCredentials(reader);
  if (auto base = reader.string("base_dn", Need::Required)) {
    if (base->empty()) {
      reader.error(reader.pointerOf("base_dn"), "must be a DN such as \"dc=example,dc=com\"");
    } else if (checkDn(reader, "base_dn", *base)) {
      config_.base_dn = *base;
    }
  }
  config_.scope = reader.choice("scope", "scope", kScopes, Need::Optional).value_or(LdapScope::Sub);
  if (auto filter = reader.string("filter", Need::Optional)) {
    std::string problem;
    if (isValidFilterTemplate(*filter, problem)) {
      config_.filter = *filter;
    } else {
      reader.error(reader.pointerOf("filter"), problem);
    }
  }
  if (const Json* attributes = reader.object("attributes", Need::Optional)) {
    readAttributes(*attributes, reader.pointerOf("attributes"));
  }
  if (const Json* timeouts = reader.object("timeouts", Need::Optional)) {
    readTimeouts(*timeouts, reader.pointerOf("timeouts"));
  }
  unsigned32(reader, "max_in_flight", 1, kMaxInFlight, config_.max_in_flight);
  unsigned32(reader, "bind_connections", 1, kMaxBindConnections, config_.bind_connections);
  if (const Json* backoff = reader.object("reconnect_backoff_ms", Need::Optional)) {
    readBackoff(*backoff, reader.pointerOf("reconnect_backoff_ms"));
  }
  return config_;
}

void LdapReader::readUris(const ObjectReader& reader) {
  const Json* uris = reader.array("uris", Need::Required);
  if (uris == nullptr) return;
  if (uris->empty()) reader.error(reader.pointerOf("uris"), "must list at least one URI");
  for (size_t i = 0; i < uris->size(); ++i) {
    std::string at = pointerTo(reader.pointerOf("uris"), i);
    const Json& uri = (*uris)[i];
    if (!uri.is_string()) {
      reader.error(at, "must be a string");
      continue;
    }
    std::string text = uri.get<std::string>();
    bool scheme_ok = text.rfind("ldap://", 0) == 0 || text.rfind("ldaps://", 0) == 0;
    LDAPURLDesc* desc = nullptr;
    bool parsed = scheme_ok && text.find_first_of(" \t\r\n", 0) == std::string::npos &&
                  ldap_url_parse(text.c_str(), &desc) == LDAP_URL_SUCCESS;
    bool plain = parsed && (desc->lud_dn == nullptr || desc->lud_dn[0] == '\0') &&
                 desc->lud_attrs == nullptr && desc->lud_filter == nullptr &&
                 desc->lud_host != nullptr && desc->lud_host[0] != '\0';
    if (desc != nullptr) ldap_free_urldesc(desc);
    if (!plain) {
      reader.error(at, "must be ldap://host[:port] or ldaps://host[:port], got " + quoteJson(text));
      continue;
    }
    config_.uris.push_back(std::move(text));
  }
}

void LdapReader::readCredentials(const ObjectReader& reader) {
  auto dn = reader.string("bind_dn", Need::Optional);
  auto password = reader.string("bind_password", Need::Optional);
  auto file = readFile(reader, "bind_password_file", "bind_password_file");
  bool password_read = false;
  if (password && reader.has("bind_password_file")) {
    reader.error(reader.pointerOf("bind_password"),
                 "give bind_password or bind_password_file, "
                 "not both");
  }
  if (file) {
    std::string problem;
    if (auto secret = readSecretFile(*file, kMaxBindPasswordFile, problem)) {
      secret->trimTrailingNewlines();
      config_.bind_password = std::move(*secret);
      password_read = true;
    } else {
      reader.error(reader.pointerOf("bind_password_file"),
                   "cannot read " + quoteJson(*file) + ": " + problem);
    }
  } else if (password) {
    config_.bind_password = Secret(*password);
    password_read = true;
  }
  if (dn && dn->empty()) {
    reader.error(reader.pointerOf("bind_dn"), "must be a DN (leave it out for anonymous search)");
  } else if (dn && checkDn(reader, "bind_dn", *dn)) {
    config_.bind_dn = *dn;
  }
  bool has_password = reader.has("bind_password") || reader.has("bind_password_file");
  if (dn && !has_password) {
    reader.error(reader.pointerOf("bind_dn"),
                 "needs bind_password or bind_password_file (an empty password is an "
                 "unauthenticated bind)");
  }
  if (!dn && has_password) {
    reader.error(
        reader.pointerOf(reader.has("bind_password") ? "bind_password" : "bind_password_file"),
        "needs bind_dn");
  }
  if (dn && password_read && config_.bind_password.empty()) {
    reader.error(
        reader.pointerOf(reader.has("bind_password") ? "bind_password" : "bind_password_file"),
        "must not be empty (an empty password is an unauthenticated bind)");
  }
}

std::optional<std::string> LdapReader::readFile(const ObjectReader& reader, std::string_view key,
                                                const char* normalised_key) {
  auto name = reader.string(key, Need::Optional);
  if (!name) return std::nullopt;
  if (!isFileName(*name)) {
    reader.error(reader.pointerOf(key), "must be a file name");
    return std::nullopt;
  }
  fs::path path = fs::path(*name).is_absolute() ? fs::path(*name) : base_dir_ / *name;
  std::string absolute = path.lexically_normal().string();
  std::string problem;
  std::optional<std::string> text = readTextFile(absolute, problem);
  if (!text) {
    reader.error(reader.pointerOf(key), "cannot read " + quoteJson(absolute) + ": " + problem);
    return std::nullopt;
  }
  // Read to see that it can be; it may be the bind password, which is read again into a Secret.
  std::string& content = *text;
  OPENSSL_cleanse(content.data(), content.size());
  normalised_[normalised_key] = absolute;
  return absolute;
}

void LdapReader::readAttributes(const Json& value, const std::string& pointer) {
  ObjectReader reader(value, pointer, errors_,
                      {"backend", "login", "protocols", "disabled", "disabled_value"});
  LdapAttributes& attributes = config_.attributes;
  auto name = [&](std::string_view key, std::string& field) {
    if (auto v = reader.string(key, Need::Optional)) {
      if (isAttributeName(*v)) {
        field = *v;
      } else {
        reader.error(reader.pointerOf(key), "must be an attribute name such as \"mailHost\"");
      }
    }
  };
  name("backend", attributes.backend);
  name("login", attributes.login);
  name("protocols", attributes.protocols);
  name("disabled", attributes.disabled);
  if (auto v = reader.string("disabled_value", Need::Optional)) {
    if (v->empty()) {
      reader.error(reader.pointerOf("disabled_value"), "must not be empty");
    } else {
      attributes.disabled_value = *v;
    }
  }
  if (reader.has("disabled_value") && attributes.disabled.empty()) {
    reader.error(reader.pointerOf("disabled_value"), "needs attributes/disabled");
  }
}

void LdapReader::readTimeouts(const Json& value, const std::string& pointer) {
  ObjectReader reader(value, pointer, errors_, {"connect_ms", "request_ms"});
  unsigned32(reader, "connect_ms", 1, kMaxTimeoutMs, config_.connect_ms);
  unsigned32(reader, "request_ms", 1, kMaxTimeoutMs, config_.request_ms);
}

void LdapReader::readBackoff(const Json& value, const std::string& pointer) {
  ObjectReader reader(value, pointer, errors_, {"min", "max"});
  unsigned32(reader, "min", 1, kMaxTimeoutMs, config_.reconnect_min_ms);
  unsigned32(reader, "max", 1, kMaxTimeoutMs, config_.reconnect_max_ms);
  if (config_.reconnect_max_ms < config_.reconnect_min_ms) {
    reader.error(reader.pointerOf("max"),
                 "must not be less than min (" + std::to_string(config_.reconnect_min_ms) + ")");
  }
}

}  // namespace

std::optional<LdapConfig> parseLdapConfig(const nlohmann::json& value, const std::string& pointer,
                                          const std::filesystem::path& base_dir,
                                          std::vector<ConfigError>& errors) {
  size_t before = errors.size();
  LdapReader reader(base_dir, errors);
  LdapConfig config = reader.read(value, pointer);
  if (errors.size() != before) return std::nullopt;
  return config;
}

std::string checkLdapJson(const nlohmann::json& value, const std::string& pointer,
                          const std::filesystem::path& base_dir, std::vector<ConfigError>& errors) {
  LdapReader reader(base_dir, errors);
  reader.read(value, pointer);
  return reader.normalised().dump();
}

}  // namespace gatehouse
