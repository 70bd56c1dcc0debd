// Tests for the "directory.ldap" reader: defaults, every key, and errors named by JSON pointer;
// plus the route mapping of a found entry (back-end by name or address, protocols, disabled).
#include "directory/ldap_config.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "directory/ldap_route.h"

namespace gatehouse {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

struct Parsed {
  std::optional<LdapConfig> config;
  std::vector<ConfigError> errors;
};

Parsed parse(const std::string& text, const fs::path& base = "/nonexistent-gatehouse") {
  Parsed out;
  out.config = parseLdapConfig(Json::parse(text), "/directory/ldap", base, out.errors);
  return out;
}

bool hasError(const Parsed& p, const std::string& pointer, const std::string& fragment) {
  for (const ConfigError& e : p.errors) {
    if (e.pointer == pointer && e.message.find(fragment) != std::string::npos) return true;
  }
  return false;
}

std::string describe(const Parsed& p) {
  std::string out;
  for (const ConfigError& e : p.errors) out += e.pointer + ": " + e.message + "\n";
  return out;
}

TEST_CASE("ldap config: defaults", "[ldap_config]") {
  Parsed p = parse(R"({"uris": ["ldap://127.0.0.1:389"], "base_dn": "dc=example,dc=com"})");
  INFO(describe(p));
  REQUIRE(p.config);
  const LdapConfig& c = *p.config;
  CHECK(c.uris == std::vector<std::string>{"ldap://127.0.0.1:389"});
  CHECK_FALSE(c.starttls);
  CHECK(c.bind_dn.empty());
  CHECK(c.bind_password.empty());
  CHECK(c.scope == LdapScope::Sub);
  CHECK(c.filter == "(|(uid=%u)(mail=%u))");
  CHECK(c.attributes.backend == "mailHost");
  CHECK(c.attributes.login == "uid");
  CHECK(c.attributes.protocols.empty());
  CHECK(c.attributes.disabled.empty());
  CHECK(c.attributes.disabled_value == "TRUE");
  CHECK(c.connect_ms == 2000);
  CHECK(c.request_ms == 3000);
  CHECK(c.max_in_flight == 256);
  CHECK(c.bind_connections == 4);
  CHECK(c.reconnect_min_ms == 100);
  CHECK(c.reconnect_max_ms == 5000);
}

// A real certificate: the reader checks that the CA file holds PEM certificates.
void writeCaFile(const fs::path& path) {
  const std::string command =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=test-ca "
      "-days 2 -keyout /dev/null -out '" +
      path.string() + "' 2>/dev/null";
  REQUIRE(std::system(command.c_str()) == 0);
}

TEST_CASE("ldap config: every key", "[ldap_config]") {
  char pattern[] = "/tmp/gatehouse-ldap-XXXXXX";
  REQUIRE(mkdtemp(pattern) != nullptr);
  fs::path dir = pattern;
  writeCaFile(dir / "ca.pem");
  std::ofstream(dir / "bind.pw") << "s3cret\n";
  Parsed p = parse(R"J({
      "uris": ["ldaps://ldap1.example.com", "ldaps://ldap2.example.com:1636"],
      "ca_file": "ca.pem", "bind_dn": "cn=gatehouse,dc=example,dc=com",
      "bind_password_file": "bind.pw", "base_dn": "ou=people,dc=example,dc=com",
      "scope": "one", "filter": "(&(objectClass=inetOrgPerson)(uid=%u))",
      "attributes": {"backend": "mailRoutingAddress", "login": "mail",
                     "protocols": "gatehouseProtocol", "disabled": "gatehouseDisabled",
                     "disabled_value": "yes"},
      "timeouts": {"connect_ms": 500, "request_ms": 800},
      "max_in_flight": 10, "bind_connections": 2,
      "reconnect_backoff_ms": {"min": 50, "max": 60}})J",
                   dir);
  INFO(describe(p));
  REQUIRE(p.config);
  const LdapConfig& c = *p.config;
  CHECK(c.uris.size() == 2);
  CHECK(c.ca_file == (dir / "ca.pem").string());
  CHECK(c.bind_password.reveal() == "s3cret");  // the trailing newline is not part of it
  CHECK(c.scope == LdapScope::One);
  CHECK(c.attributes.protocols == "gatehouseProtocol");
  CHECK(c.attributes.disabled_value == "yes");
  CHECK(c.connect_ms == 500);
  CHECK(c.request_ms == 800);
  CHECK(c.max_in_flight == 10);
  CHECK(c.bind_connections == 2);
  CHECK(c.reconnect_min_ms == 50);
  CHECK(c.reconnect_max_ms == 60);

  std::vector<ConfigError> errors;
  Json normalised = Json::parse(checkLdapJson(
      Json::parse(R"({"uris": ["ldap://h"], "base_dn": "dc=x", "ca_file": "ca.pem"})"),
      "/directory/ldap", dir, errors));
  CHECK(errors.empty());
  CHECK(normalised["ca_file"] == (dir / "ca.pem").string());
  fs::remove_all(dir);
}

TEST_CASE("ldap config: errors name the JSON pointer", "[ldap_config]") {
  Parsed missing = parse(R"({})");
  CHECK(hasError(missing, "/directory/ldap/uris", "missing required key"));
  CHECK(hasError(missing, "/directory/ldap/base_dn", "missing required key"));

  Parsed bad = parse(R"J({
      "uris": ["http://x", "ldap://ok", "ldapi:///run/slapd.sock", 7, "ldap://h/dc=x??sub"],
      "base_dn": "not a dn", "scope": "base", "filter": "(uid=alice)",
      "attributes": {"backend": "mail host", "disabled_value": ""},
      "timeouts": {"connect_ms": 0}, "max_in_flight": 0, "bind_connections": 1000,
      "reconnect_backoff_ms": {"min": 500, "max": 100}, "colour": "blue"})J");
  INFO(describe(bad));
  CHECK_FALSE(bad.config);
  CHECK(hasError(bad, "/directory/ldap/uris/0", "must be ldap://host[:port] or ldaps://"));
  CHECK_FALSE(hasError(bad, "/directory/ldap/uris/1", ""));
  CHECK(hasError(bad, "/directory/ldap/uris/2", "must be ldap://"));
  CHECK(hasError(bad, "/directory/ldap/uris/3", "must be a string"));
  CHECK(hasError(bad, "/directory/ldap/uris/4", "must be ldap://"));
  CHECK(hasError(bad, "/directory/ldap/base_dn", "is not a valid DN"));
  CHECK(hasError(bad, "/directory/ldap/scope", "unknown scope \"base\" (expected sub, one)"));
  CHECK(hasError(bad, "/directory/ldap/filter", "must contain %u"));
  CHECK(hasError(bad, "/directory/ldap/attributes/backend", "must be an attribute name"));
  CHECK(hasError(bad, "/directory/ldap/attributes/disabled_value", "must not be empty"));
  CHECK(hasError(bad, "/directory/ldap/timeouts/connect_ms", ""));
  CHECK(hasError(bad, "/directory/ldap/max_in_flight", ""));
  CHECK(hasError(bad, "/directory/ldap/bind_connections", ""));
  CHECK(hasError(bad, "/directory/ldap/reconnect_backoff_ms/max", "must not be less than min"));
  CHECK(hasError(bad, "/directory/ldap/colour", ""));
}

TEST_CASE("ldap config: service account and TLS combinations", "[ldap_config]") {
  auto with = [](const std::string& extra) {
    return parse(R"({"uris": ["ldap://h"], "base_dn": "dc=x")" + extra + "}");
  };
  CHECK(hasError(with(R"(, "bind_dn": "cn=a,dc=x")"), "/directory/ldap/bind_dn",
                 "needs bind_password or bind_password_file"));
  CHECK(hasError(with(R"(, "bind_password": "pw")"), "/directory/ldap/bind_password",
                 "needs bind_dn"));
  CHECK(hasError(with(R"(, "bind_dn": "cn=a,dc=x", "bind_password": "")"),
                 "/directory/ldap/bind_password", "must not be empty"));
  CHECK(hasError(with(R"(, "bind_dn": "cn=a,dc=x", "bind_password_file": "nope.pw")"),
                 "/directory/ldap/bind_password_file", "cannot read"));
  CHECK(hasError(with(R"(, "ca_file": "/nonexistent/ca.pem")"), "/directory/ldap/ca_file",
                 "cannot read \"/nonexistent/ca.pem\""));
  CHECK(hasError(with(R"(, "bind_dn": "not a dn", "bind_password": "pw")"),
                 "/directory/ldap/bind_dn", "is not a valid DN"));
  // libldap takes C strings: a NUL would silently cut the DN.
  CHECK(hasError(with(R"(, "bind_dn": "cn=a\u0000,dc=evil", "bind_password": "pw")"),
                 "/directory/ldap/bind_dn", "must not contain a NUL byte"));
  CHECK(hasError(parse(R"({"uris": ["ldap://h"], "base_dn": "dc=x\u0000,dc=y"})"),
                 "/directory/ldap/base_dn", "must not contain a NUL byte"));
  {
    char pattern[] = "/tmp/gatehouse-ldap-XXXXXX";
    REQUIRE(mkdtemp(pattern) != nullptr);
    const fs::path dir = pattern;
    std::ofstream(dir / "junk.pem") << "not a certificate\n";
    Parsed junk = parse(R"({"uris": ["ldap://h"], "base_dn": "dc=x", "ca_file": "junk.pem"})", dir);
    CHECK(hasError(junk, "/directory/ldap/ca_file", "no PEM certificate found"));
    fs::remove_all(dir);
  }
  Parsed ok = with(R"(, "bind_dn": "cn=a,dc=x", "bind_password": "pw", "starttls": true)");
  INFO(describe(ok));
  REQUIRE(ok.config);
  CHECK(ok.config->bind_password.reveal() == "pw");
  Parsed both = parse(R"({"uris": ["ldaps://h"], "base_dn": "dc=x", "starttls": true})");
  CHECK(hasError(both, "/directory/ldap/starttls", "cannot be used with ldaps://"));
}

TEST_CASE("ldap config: errors never repeat the bind password", "[ldap_config]") {
  Parsed p = parse(R"({"uris": ["ldap://h"], "base_dn": "dc=x", "bind_password": "hunter2"})");
  for (const ConfigError& e : p.errors) CHECK(e.message.find("hunter2") == std::string::npos);
}

std::vector<BackendConfig> backends() {
  BackendConfig a;
  a.name = "A";
  a.address = "127.0.1.1";
  BackendConfig b;
  b.name = "mail-b.example.com";
  b.address = "::1";
  return {a, b};
}

LdapAttributes withPermissions() {
  LdapAttributes attributes;
  attributes.protocols = "gatehouseProtocol";
  attributes.disabled = "gatehouseDisabled";
  return attributes;
}

TEST_CASE("ldap route: mailHost names a configured back-end", "[ldap_route]") {
  LdapRouteMapper mapper(LdapAttributes{}, backends());
  CHECK(mapper.backendFor("A") == "A");
  CHECK(mapper.backendFor("127.0.1.1") == "A");
  CHECK(mapper.backendFor("MAIL-B.example.com") == "mail-b.example.com");
  CHECK(mapper.backendFor("0::1") == "mail-b.example.com");
  CHECK(mapper.backendFor("127.0.1.2").empty());
  CHECK(mapper.backendFor("evil.example.net").empty());
  CHECK(mapper.backendFor("").empty());

  LdapEntry entry{"uid=alice,dc=x", {"127.0.1.1"}, {"alice"}, {}, {}};
  AuthResult ok = mapper.decide(entry, "Alice@example.com", Protocol::Imap);
  CHECK(ok.status == AuthStatus::Ok);
  CHECK(ok.route.backend == "A");
  CHECK(ok.route.user == "alice");

  entry.login.clear();
  CHECK(mapper.decide(entry, "Alice@example.com", Protocol::Imap).route.user ==
        "Alice@example.com");

  entry.backend = {"10.9.9.9"};
  AuthResult unknown = mapper.decide(entry, "alice", Protocol::Imap);
  CHECK(unknown.status == AuthStatus::TempFail);
  CHECK(unknown.reason.find("names no configured back-end") != std::string::npos);

  entry.backend.clear();
  CHECK(mapper.decide(entry, "alice", Protocol::Imap).status == AuthStatus::TempFail);
}

TEST_CASE("ldap route: protocols and disabled accounts", "[ldap_route]") {
  LdapRouteMapper mapper(withPermissions(), backends());
  LdapEntry entry{"uid=carol,dc=x", {"A"}, {"carol"}, {"POP3", "submission"}, {}};
  CHECK(mapper.decide(entry, "carol", Protocol::Imap).status == AuthStatus::Disabled);
  CHECK(mapper.decide(entry, "carol", Protocol::Pop3).status == AuthStatus::Ok);
  entry.protocols.clear();  // absent: everything allowed
  CHECK(mapper.decide(entry, "carol", Protocol::Imap).status == AuthStatus::Ok);
  entry.disabled = {"true"};
  AuthResult disabled = mapper.decide(entry, "carol", Protocol::Imap);
  CHECK(disabled.status == AuthStatus::Denied);
  CHECK(disabled.reason == "account disabled");
  entry.disabled = {"FALSE"};
  CHECK(mapper.decide(entry, "carol", Protocol::Imap).status == AuthStatus::Ok);

  // Without the attributes configured, the values are not even looked at.
  LdapRouteMapper plain(LdapAttributes{}, backends());
  LdapEntry other{"uid=d,dc=x", {"A"}, {"d"}, {"pop3"}, {"TRUE"}};
  CHECK(plain.decide(other, "d", Protocol::Imap).status == AuthStatus::Ok);
}

}  // namespace
}  // namespace gatehouse
