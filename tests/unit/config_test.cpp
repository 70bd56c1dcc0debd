// Tests for configuration loading: defaults, the example file, relative paths, and one test per
// kind of error, each checking the JSON pointer and the message.
#include "proxy/config/config.h"

#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

namespace gatehouse {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// slappasswd -h {SSHA} -s secret
constexpr const char* kSshaSecret = "{SSHA}hKA/q2Rho3mtLe8pwHNGmxe+Y0K7hyUu";

// A fresh directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "gatehouse-config-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  std::string write(const std::string& name, const std::string& content) const {
    fs::path file = path_ / name;
    fs::create_directories(file.parent_path());
    std::ofstream(file) << content;
    return file.string();
  }

 private:
  fs::path path_;
};

Json minimal() {
  return Json::parse(R"({"listeners": [{"address": "127.0.0.1", "port": 0, "protocol": "imap"}]})");
}

struct Outcome {
  std::shared_ptr<const Config> config;
  std::vector<ConfigError> errors;
};

Outcome parse(const std::string& text, const std::string& base_dir = "/nonexistent-gatehouse") {
  Outcome out;
  out.config = parseConfig(text, base_dir, out.errors);
  return out;
}

Outcome parse(const Json& json, const std::string& base_dir = "/nonexistent-gatehouse") {
  return parse(json.dump(), base_dir);
}

std::string describe(const std::vector<ConfigError>& errors) {
  std::string out;
  for (const auto& e : errors) out += "  " + e.pointer + ": " + e.message + "\n";
  return out;
}

// The configuration is rejected with exactly one error, at `pointer`, whose message is `message`.
void requireOnlyError(const Outcome& out, const std::string& pointer, const std::string& message) {
  INFO(describe(out.errors));
  CHECK(out.config == nullptr);
  REQUIRE(out.errors.size() == 1);
  CHECK(out.errors[0].pointer == pointer);
  CHECK(out.errors[0].message == message);
}

// Some error is at `pointer` and its message contains `part`.
bool hasError(const Outcome& out, const std::string& pointer, const std::string& part) {
  for (const auto& e : out.errors) {
    if (e.pointer == pointer && e.message.find(part) != std::string::npos) return true;
  }
  return false;
}

void requireValid(const Outcome& out) {
  INFO(describe(out.errors));
  REQUIRE(out.errors.empty());
  REQUIRE(out.config != nullptr);
}

TEST_CASE("config: protocol and ALPN names", "[config]") {
  CHECK(std::string(protocolName(Protocol::Imap)) == "imap");
  CHECK(std::string(protocolName(Protocol::Pop3)) == "pop3");
  CHECK(std::string(protocolName(Protocol::Submission)) == "submission");
  CHECK(std::string(protocolName(Protocol::Http)) == "http");
  CHECK(std::string(alpnName(Protocol::Submission)) == "smtp");
  CHECK(std::string(alpnName(Protocol::Http)) == "http/1.1");
}

TEST_CASE("config: defaults for everything left out", "[config]") {
  Outcome out = parse(minimal());
  requireValid(out);
  const Config& c = *out.config;
  CHECK(c.workers == std::max(1u, std::thread::hardware_concurrency()));
  CHECK(c.hostname == "gatehouse");
  CHECK(c.log_level == "info");
  CHECK(c.certificates.empty());
  CHECK(c.backends.empty());
  CHECK(c.directory.type == "static");
  CHECK(c.directory.users.empty());
  REQUIRE(c.listeners.size() == 1);
  CHECK(c.listeners[0].name == "imap-0");
  CHECK(c.listeners[0].port == 0);
  CHECK(c.listeners[0].tls == TlsMode::None);
  CHECK_FALSE(c.listeners[0].require_tls_for_auth);  // nothing else could work without TLS
  Limits limits;
  CHECK(c.limits.max_line == limits.max_line);
  CHECK(c.limits.max_auth_literal == limits.max_auth_literal);
  CHECK(c.limits.max_bad_commands == limits.max_bad_commands);
  CHECK(c.limits.max_auth_failures == limits.max_auth_failures);
  CHECK(c.limits.max_connections == limits.max_connections);
  CHECK(c.limits.max_connections_per_ip == limits.max_connections_per_ip);
  Timeouts timeouts;
  CHECK(c.timeouts.connect_ms == timeouts.connect_ms);
  CHECK(c.timeouts.greeting_ms == timeouts.greeting_ms);
  CHECK(c.timeouts.preauth_idle_ms == timeouts.preauth_idle_ms);
  CHECK(c.timeouts.session_idle_ms == timeouts.session_idle_ms);
  CHECK(c.timeouts.shutdown_grace_ms == timeouts.shutdown_grace_ms);
  CHECK(c.timeouts.proxy_header_ms == timeouts.proxy_header_ms);
  CHECK(c.timeouts.auth_failure_delay_ms == 2000);  // Dovecot's auth_failure_delay
  CHECK(c.timeouts.login_deadline_ms == 180000);    // Dovecot's login timeout
}

TEST_CASE("config: explicit values are kept", "[config]") {
  Json j = minimal();
  j["workers"] = 3;
  j["hostname"] = "mail.example.com";
  j["log"] = {{"level", "debug"}};
  j["limits"] = {{"max_line", 1000}, {"max_connections_per_ip", 0}, {"max_auth_failures", 5}};
  j["timeouts"] = {{"connect_ms", 250},
                   {"session_idle_ms", 60000},
                   {"proxy_header_ms", 900},
                   {"auth_failure_delay_ms", 0},
                   {"login_deadline_ms", 1500}};
  j["listeners"][0]["name"] = "imap-test";
  Outcome out = parse(j);
  requireValid(out);
  const Config& c = *out.config;
  CHECK(c.workers == 3);
  CHECK(c.hostname == "mail.example.com");
  CHECK(c.log_level == "debug");
  CHECK(c.limits.max_line == 1000);
  CHECK(c.limits.max_connections_per_ip == 0);
  CHECK(c.limits.max_auth_failures == 5);
  CHECK(c.limits.max_bad_commands == Limits{}.max_bad_commands);
  CHECK(c.timeouts.connect_ms == 250);
  CHECK(c.timeouts.session_idle_ms == 60000);
  CHECK(c.timeouts.proxy_header_ms == 900);
  CHECK(c.timeouts.auth_failure_delay_ms == 0);  // 0: no delay
  CHECK(c.timeouts.login_deadline_ms == 1500);
  CHECK(c.listeners[0].name == "imap-test");
}

// The shipped example, with its files created next to it and a real hash for its placeholder.
TEST_CASE("config: the example configuration loads, relative paths resolved", "[config]") {
  fs::path example = fs::path(__FILE__).parent_path() / "../../deploy/gatehouse.example.json";
  if (!fs::exists(example)) {
    WARN("example not found at " << example << "; skipped");
    return;
  }
  std::ifstream in(example);
  Json j = Json::parse(in);
  j["directory"]["users"][0]["password"] = kSshaSecret;  // the example carries "{SSHA}..."
  TempDir dir;
  dir.write("tls/mail.example.com.crt", "cert");
  dir.write("tls/mail.example.com.key", "key");
  dir.write("tls/backend-ca.crt", "ca");
  dir.write("tls/ticket-current.key", std::string(80, 'c'));  // openssl rand 80
  dir.write("tls/ticket-previous.key", std::string(80, 'p'));
  dir.write("users.json", Json{{"users",
                                {{{"login", "dave"},
                                  {"password", kSshaSecret},
                                  {"backend", "B"},
                                  {"protocols", {"imap"}}}}}}
                              .dump());
  std::string path = dir.write("gatehouse.json", j.dump(2));

  std::vector<ConfigError> errors;
  auto config = loadConfig(path, errors);
  INFO(describe(errors));
  REQUIRE(config != nullptr);
  const fs::path base = dir.path();
  REQUIRE(config->certificates.size() == 1);
  CHECK(config->certificates[0].cert_file == (base / "tls/mail.example.com.crt").string());
  CHECK(config->certificates[0].key_file == (base / "tls/mail.example.com.key").string());
  CHECK(config->certificates[0].names == std::vector<std::string>{"mail.example.com"});
  REQUIRE(config->session_ticket_keys.size() == 2);
  CHECK(config->session_ticket_keys[0].reveal() == std::string(80, 'c'));
  REQUIRE(config->listeners.size() >= 2);  // imap and imaps first; other protocols follow
  CHECK(config->listeners[0].tls == TlsMode::StartTls);
  CHECK(config->listeners[0].require_tls_for_auth);
  CHECK(config->listeners[1].port == 10993);
  CHECK(config->listeners[1].tls == TlsMode::Implicit);
  const auto behind_balancer =
      std::find_if(config->listeners.begin(), config->listeners.end(),
                   [](const ListenerConfig& l) { return !l.proxy_protocol_from.empty(); });
  REQUIRE(behind_balancer != config->listeners.end());
  CHECK(behind_balancer->proxy_protocol_from[0].containsAddress("10.0.0.9"));
  REQUIRE(config->backends.size() >= 2);  // A and B first; the submission relay follows
  CHECK(config->backends[0].ports.at(Protocol::Submission) == 587);
  CHECK(config->backends[0].server_name == "127.0.0.11");  // defaults to the address
  CHECK(config->backends[1].ca_file == (base / "tls/backend-ca.crt").string());
  CHECK(config->backends[1].server_name == "b.example.com");
  CHECK(config->backends[1].tls == TlsMode::StartTls);
  CHECK(config->directory.users_file == (base / "users.json").string());
  REQUIRE(config->directory.users.size() == 2);  // inline first, then the file's
  CHECK(config->directory.users[0].login == "carol");
  CHECK(config->directory.users[0].protocols ==
        std::vector<Protocol>{Protocol::Imap, Protocol::Pop3});
  CHECK(config->directory.users[1].login == "dave");
  CHECK(config->directory.users[1].backend_login == "dave");  // defaults to the login
}

TEST_CASE("config: relative paths follow the file, not the working directory", "[config]") {
  TempDir dir;
  dir.write("conf/certs/a.crt", "cert");
  dir.write("conf/certs/a.key", "key");
  Json j = minimal();
  j["tls"]["certificates"] = {{{"cert", "certs/a.crt"}, {"key", "./certs/../certs/a.key"}}};
  std::string path = dir.write("conf/gatehouse.json", j.dump());
  std::vector<ConfigError> errors;
  auto config = loadConfig(path, errors);
  INFO(describe(errors));
  REQUIRE(config != nullptr);
  CHECK(config->certificates[0].cert_file == (dir.path() / "conf/certs/a.crt").string());
  CHECK(config->certificates[0].key_file == (dir.path() / "conf/certs/a.key").string());

  SECTION("absolute paths are kept as they are") {
    j["tls"]["certificates"][0]["cert"] = (dir.path() / "conf/certs/a.crt").string();
    Outcome out = parse(j, "/");
    INFO(describe(out.errors));
    CHECK(hasError(out, "/tls/certificates/0/key", "cannot read \"/certs/a.key\""));
    CHECK(out.errors.size() == 1);
  }
}

TEST_CASE("config: a missing configuration file", "[config]") {
  std::vector<ConfigError> errors;
  CHECK(loadConfig("/nonexistent-gatehouse/gatehouse.json", errors) == nullptr);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].pointer.empty());
  CHECK(errors[0].message ==
        "cannot read configuration file \"/nonexistent-gatehouse/gatehouse.json\": "
        "No such file or directory");
}

TEST_CASE("config: syntax errors", "[config]") {
  Outcome out = parse(std::string(R"({"listeners": [)"));
  REQUIRE(out.errors.size() == 1);
  CHECK(out.errors[0].pointer.empty());
  CHECK(out.errors[0].message.rfind("invalid JSON: parse error at line 1", 0) == 0);
  requireOnlyError(parse(std::string("[]")), "", "must be an object");
}

TEST_CASE("config: nesting is bounded", "[config]") {
  std::string deep = R"({"directory": {"type": "ldap", "ldap": )" + std::string(100, '[') +
                     std::string(100, ']') + "}}";
  Outcome out = parse(deep);
  REQUIRE(out.errors.size() == 1);
  CHECK(out.errors[0].message == "nested deeper than 64 levels");
}

TEST_CASE("config: duplicate keys are errors", "[config]") {
  std::string text = R"({"listeners": [{"address": "127.0.0.1", "port": 143, "port": 0, )"
                     R"("protocol": "imap"}]})";
  requireOnlyError(parse(text), "/listeners/0/port", "duplicate key");
}

TEST_CASE("config: unknown keys are errors, wherever they are", "[config]") {
  Json j = minimal();
  j["listeners"][0]["prot"] = "imap";
  requireOnlyError(parse(j), "/listeners/0/prot",
                   "unknown key \"prot\" (expected name, address, port, protocol, tls, "
                   "require_tls_for_auth, proxy_protocol_from)");
  j = minimal();
  j["lmits"] = Json::object();
  {
    // Other sections may be added after "timeouts"; the known ones are listed first.
    Outcome out = parse(j);
    REQUIRE(out.errors.size() == 1);
    CHECK(out.errors[0].pointer == "/lmits");
    CHECK(out.errors[0].message.rfind("unknown key \"lmits\" (expected workers, hostname, log, "
                                      "tls, listeners, backends, directory, limits, timeouts",
                                      0) == 0);
  }
  j = minimal();
  j["timeouts"] = {{"connect", 5}};
  CHECK(hasError(parse(j), "/timeouts/connect", "unknown key \"connect\""));
  j = minimal();
  j["a/b~c"] = 1;  // RFC 6901 escaping in the pointer
  CHECK(hasError(parse(j), "/a~1b~0c", "unknown key \"a/b~c\""));
}

TEST_CASE("config: type errors", "[config]") {
  Json j = minimal();
  SECTION("port") {
    for (Json bad : {Json(70000), Json(-1), Json("143"), Json(143.5), Json(nullptr)}) {
      j["listeners"][0]["port"] = bad;
      requireOnlyError(parse(j), "/listeners/0/port", "must be an integer 0-65535");
    }
  }
  SECTION("string") {
    j["hostname"] = 5;
    requireOnlyError(parse(j), "/hostname", "must be a string");
  }
  SECTION("boolean") {
    j["listeners"][0]["require_tls_for_auth"] = "yes";
    requireOnlyError(parse(j), "/listeners/0/require_tls_for_auth", "must be true or false");
  }
  SECTION("array") {
    j["listeners"] = Json::object();
    requireOnlyError(parse(j), "/listeners", "must be an array");
  }
  SECTION("object") {
    j["limits"] = 5;
    requireOnlyError(parse(j), "/limits", "must be an object");
    j = minimal();
    j["listeners"][0] = "imap";
    requireOnlyError(parse(j), "/listeners/0", "must be an object");
  }
}

TEST_CASE("config: enumerations name the choices", "[config]") {
  Json j = minimal();
  j["listeners"][0]["protocol"] = "imapx";
  requireOnlyError(parse(j), "/listeners/0/protocol",
                   "unknown protocol \"imapx\" (expected imap, pop3, submission, http)");
  j = minimal();
  j["listeners"][0]["tls"] = "ssl";
  requireOnlyError(parse(j), "/listeners/0/tls",
                   "unknown tls mode \"ssl\" (expected none, starttls, implicit)");
  j = minimal();
  j["log"]["level"] = "verbose";
  requireOnlyError(parse(j), "/log/level",
                   "unknown log level \"verbose\" (expected debug, info, warn, error)");
  j = minimal();
  j["directory"]["type"] = "sql";
  requireOnlyError(parse(j), "/directory/type",
                   "unknown directory type \"sql\" (expected static, ldap)");
}

TEST_CASE("config: required keys", "[config]") {
  requireOnlyError(parse(std::string("{}")), "/listeners", "missing required key");
  requireOnlyError(parse(std::string(R"({"listeners": []})")), "/listeners",
                   "must list at least one listener");
  Outcome out = parse(std::string(R"({"listeners": [{}], "backends": [{}]})"));
  INFO(describe(out.errors));
  CHECK(out.errors.size() == 5);
  CHECK(hasError(out, "/listeners/0/address", "missing required key"));
  CHECK(hasError(out, "/listeners/0/port", "missing required key"));
  CHECK(hasError(out, "/listeners/0/protocol", "missing required key"));
  CHECK(hasError(out, "/backends/0/name", "missing required key"));
  CHECK(hasError(out, "/backends/0/address", "missing required key"));
}

TEST_CASE("config: addresses must be IP literals", "[config]") {
  Json j = minimal();
  j["listeners"][0]["address"] = "localhost";
  requireOnlyError(parse(j), "/listeners/0/address", "must be an IP address literal");
  j = minimal();
  j["listeners"][0]["address"] = "::";
  j["backends"] = {{{"name", "A"}, {"address", "10.0.0.1"}},
                   {{"name", "B"}, {"address", "2001:db8::1"}},
                   {{"name", "C"}, {"address", "mail.example.com"}}};
  requireOnlyError(parse(j), "/backends/2/address", "must be an IP address literal");
}

TEST_CASE("config: every error is reported, not just the first", "[config]") {
  Json j = Json::parse(R"({
    "workers": -2,
    "listeners": [
      {"address": "127.0.0.1", "port": 70000, "protocol": "imap"},
      {"address": "nowhere", "port": 143, "protocol": "imapx", "colour": "red"}
    ],
    "backends": [{"name": "A", "address": "10.0.0.1", "ports": {"imap": 0}}],
    "limits": {"max_line": 0}
  })");
  Outcome out = parse(j);
  INFO(describe(out.errors));
  CHECK(out.config == nullptr);
  CHECK(out.errors.size() == 7);
  CHECK(hasError(out, "/workers", "must be an integer 0-1024"));
  CHECK(hasError(out, "/listeners/0/port", "must be an integer 0-65535"));
  CHECK(hasError(out, "/listeners/1/address", "must be an IP address literal"));
  CHECK(hasError(out, "/listeners/1/protocol", "unknown protocol \"imapx\""));
  CHECK(hasError(out, "/listeners/1/colour", "unknown key"));
  CHECK(hasError(out, "/backends/0/ports/imap", "must be an integer 1-65535"));
  CHECK(hasError(out, "/limits/max_line", "must be an integer 1-4294967295"));
}

TEST_CASE("config: back-ends", "[config]") {
  Json j = minimal();
  SECTION("duplicate names") {
    j["backends"] = {{{"name", "A"}, {"address", "10.0.0.1"}},
                     {{"name", "B"}, {"address", "10.0.0.2"}},
                     {{"name", "A"}, {"address", "10.0.0.3"}}};
    requireOnlyError(parse(j), "/backends/2/name", "duplicate backend name \"A\"");
  }
  SECTION("names that differ only in case") {
    // mailHost values match back-end names without regard to case.
    j["backends"] = {{{"name", "mail-a"}, {"address", "10.0.0.1"}},
                     {{"name", "Mail-A"}, {"address", "10.0.0.2"}}};
    requireOnlyError(parse(j), "/backends/1/name",
                     "backend name \"Mail-A\" differs from another only in case (mailHost values "
                     "match names without regard to case)");
  }
  SECTION("ports name protocols") {
    j["backends"] = {{{"name", "A"}, {"address", "10.0.0.1"}, {"ports", {{"imaps", 993}}}}};
    requireOnlyError(parse(j), "/backends/0/ports/imaps",
                     "unknown protocol \"imaps\" (expected imap, pop3, submission, http)");
  }
  SECTION("a back-end may lack a protocol's port") {
    j["backends"] = {{{"name", "A"}, {"address", "10.0.0.1"}, {"ports", {{"imap", 143}}}}};
    Outcome out = parse(j);
    requireValid(out);
    CHECK(out.config->backends[0].ports.count(Protocol::Pop3) == 0);
    CHECK(out.config->backends[0].verify);
    CHECK(out.config->backends[0].tls == TlsMode::None);
  }
  SECTION("a missing CA file") {
    j["backends"] = {{{"name", "A"}, {"address", "10.0.0.1"}, {"ca_file", "ca.pem"}}};
    requireOnlyError(parse(j, "/nonexistent-gatehouse"), "/backends/0/ca_file",
                     "cannot read \"/nonexistent-gatehouse/ca.pem\": No such file or directory");
  }
  SECTION("a CA 'file' that is a directory") {
    TempDir dir;
    fs::create_directory(dir.path() / "ca.d");
    j["backends"] = {{{"name", "A"}, {"address", "10.0.0.1"}, {"ca_file", "ca.d"}}};
    requireOnlyError(parse(j, dir.path().string()), "/backends/0/ca_file",
                     "cannot read \"" + (dir.path() / "ca.d").string() + "\": not a regular file");
  }
  SECTION("verifying a TLS back-end needs a CA file") {
    j["backends"] = {{{"name", "A"}, {"address", "10.0.0.1"}, {"tls", "implicit"}}};
    requireOnlyError(parse(j), "/backends/0/ca_file",
                     "missing: tls \"implicit\" with verify true needs the CA to verify against");
    j["backends"][0]["verify"] = false;
    requireValid(parse(j));
  }
  SECTION("starttls does not exist for http") {
    j["backends"] = {{{"name", "A"},
                      {"address", "10.0.0.1"},
                      {"tls", "starttls"},
                      {"verify", false},
                      {"ports", {{"imap", 143}, {"http", 80}}}}};
    requireOnlyError(parse(j), "/backends/0/tls",
                     "starttls cannot apply to the http port (http has no STARTTLS)");
  }
}

TEST_CASE("config: listeners", "[config]") {
  Json j = minimal();
  SECTION("the same address and port twice") {
    j["listeners"] = Json::parse(R"([
      {"address": "::1", "port": 143, "protocol": "imap"},
      {"address": "127.0.0.1", "port": 143, "protocol": "imap"},
      {"address": "0:0::1", "port": 143, "protocol": "pop3"}])");
    requireOnlyError(parse(j), "/listeners/2/port",
                     "duplicate listener 0:0::1 port 143 (also /listeners/0)");
  }
  SECTION("port 0 twice is fine: each gets its own ephemeral port") {
    j["listeners"].push_back(j["listeners"][0]);
    requireValid(parse(j));
  }
  SECTION("TLS listeners need a certificate") {
    j["listeners"][0]["tls"] = "implicit";
    requireOnlyError(parse(j), "/listeners/0/tls",
                     "tls \"implicit\" needs at least one certificate in /tls/certificates");
    j["listeners"][0]["tls"] = "starttls";
    CHECK(hasError(parse(j), "/listeners/0/tls", "tls \"starttls\" needs at least one"));
  }
  SECTION("http has no STARTTLS") {
    TempDir dir;
    dir.write("c.pem", "x");
    j["tls"]["certificates"] = {{{"cert", "c.pem"}, {"key", "c.pem"}}};
    j["listeners"][0]["protocol"] = "http";
    j["listeners"][0]["tls"] = "starttls";
    requireOnlyError(parse(j, dir.path().string()), "/listeners/0/tls",
                     "http has no STARTTLS (use \"none\" or \"implicit\")");
  }
  SECTION("load balancers that send the PROXY protocol") {
    j["listeners"][0]["proxy_protocol_from"] = {"10.0.0.0/24", "::1"};
    Outcome out = parse(j);
    requireValid(out);
    const auto& networks = out.config->listeners[0].proxy_protocol_from;
    REQUIRE(networks.size() == 2);
    CHECK(networks[0].containsAddress("10.0.0.200"));
    CHECK(networks[1].containsAddress("::1"));
    CHECK(parse(minimal()).config->listeners[0].proxy_protocol_from.empty());
    j["listeners"][0]["proxy_protocol_from"] = {"10.0.0.1/24", 3};
    Outcome bad = parse(j);
    INFO(describe(bad.errors));
    CHECK(bad.errors.size() == 2);
    CHECK(hasError(bad, "/listeners/0/proxy_protocol_from/0", "host bits clear"));
    CHECK(hasError(bad, "/listeners/0/proxy_protocol_from/1", "must be an IP address or network"));
    j["listeners"][0]["proxy_protocol_from"] = Json::array();
    requireOnlyError(parse(j), "/listeners/0/proxy_protocol_from",
                     "must list the load balancers' addresses or networks");
  }
  SECTION("requiring TLS for logins on a plain listener is a contradiction") {
    j["listeners"][0]["require_tls_for_auth"] = true;
    requireOnlyError(parse(j), "/listeners/0/require_tls_for_auth",
                     "cannot be true on a listener with tls \"none\" (no login could ever "
                     "succeed)");
  }
  SECTION("a name with control characters") {
    j["listeners"][0]["name"] = "imap\n";
    requireOnlyError(parse(j), "/listeners/0/name",
                     "must be a non-empty string without control characters");
  }
}

TEST_CASE("config: certificates", "[config]") {
  Json j = minimal();
  SECTION("missing files are named with their absolute path") {
    TempDir dir;
    dir.write("good.key", "k");
    j["tls"]["certificates"] = {{{"cert", "missing.crt"}, {"key", "good.key"}}};
    requireOnlyError(
        parse(j, dir.path().string()), "/tls/certificates/0/cert",
        "cannot read \"" + (dir.path() / "missing.crt").string() + "\": No such file or directory");
  }
  SECTION("cert and key are required, names must be DNS names") {
    j["tls"]["certificates"] = {{{"names",
                                  {"mail.example.com", "*.example.com", "bad name", ".", "a..b",
                                   "*.", "mail.example.com.", std::string(64, 'x') + ".com"}}}};
    Outcome out = parse(j);
    INFO(describe(out.errors));
    CHECK(out.errors.size() == 7);
    CHECK(hasError(out, "/tls/certificates/0/cert", "missing required key"));
    CHECK(hasError(out, "/tls/certificates/0/key", "missing required key"));
    CHECK(hasError(out, "/tls/certificates/0/names/2", "must be a DNS name"));
    CHECK(hasError(out, "/tls/certificates/0/names/3", "must be a DNS name"));  // selects nothing
    CHECK(hasError(out, "/tls/certificates/0/names/4", "must be a DNS name"));
    CHECK(hasError(out, "/tls/certificates/0/names/5", "must be a DNS name"));
    CHECK(hasError(out, "/tls/certificates/0/names/7", "must be a DNS name"));  // 64-byte label
  }
  SECTION("an unreadable file") {
    if (geteuid() == 0) return;  // root reads everything
    TempDir dir;
    std::string key = dir.write("secret.key", "k");
    dir.write("c.crt", "c");
    fs::permissions(key, fs::perms::none);
    j["tls"]["certificates"] = {{{"cert", "c.crt"}, {"key", "secret.key"}}};
    requireOnlyError(parse(j, dir.path().string()), "/tls/certificates/0/key",
                     "cannot read \"" + key + "\": Permission denied");
  }
}

TEST_CASE("config: session ticket key files", "[config]") {
  Json j = minimal();
  TempDir dir;
  std::string current(80, 'c');
  std::string previous(48, 'p');
  dir.write("current.key", current);
  dir.write("previous.key", previous);
  SECTION("read in order, relative to the file; the first seals") {
    j["tls"]["session_ticket_key_files"] = {"current.key", dir.path().string() + "/previous.key"};
    Outcome out = parse(j, dir.path().string());
    requireValid(out);
    REQUIRE(out.config->session_ticket_keys.size() == 2);
    CHECK(out.config->session_ticket_keys[0].reveal() == current);
    CHECK(out.config->session_ticket_keys[1].reveal() == previous);
  }
  SECTION("none by default") {
    Outcome out = parse(j);
    requireValid(out);
    CHECK(out.config->session_ticket_keys.empty());
  }
  SECTION("a key of the wrong size, like one written with openssl rand -hex") {
    dir.write("hex.key", std::string(160, 'a') + "\n");
    j["tls"]["session_ticket_key_files"] = {"hex.key"};
    requireOnlyError(
        parse(j, dir.path().string()), "/tls/session_ticket_key_files/0",
        "cannot use \"" + (dir.path() / "hex.key").string() + "\": larger than 80 bytes");
    dir.write("short.key", std::string(47, 'a'));
    j["tls"]["session_ticket_key_files"] = {"current.key", "short.key"};
    requireOnlyError(parse(j, dir.path().string()), "/tls/session_ticket_key_files/1",
                     "cannot use \"" + (dir.path() / "short.key").string() +
                         "\": a session ticket key file holds 48 or 80 random bytes (openssl "
                         "rand 80 > FILE), not 47");
  }
  SECTION("a missing file, or something that is not a file name") {
    j["tls"]["session_ticket_key_files"] = {"missing.key", 7, ""};
    Outcome out = parse(j, dir.path().string());
    INFO(describe(out.errors));
    CHECK(out.errors.size() == 3);
    CHECK(hasError(
        out, "/tls/session_ticket_key_files/0",
        "cannot use \"" + (dir.path() / "missing.key").string() + "\": No such file or directory"));
    CHECK(hasError(out, "/tls/session_ticket_key_files/1", "must be a file name"));
    CHECK(hasError(out, "/tls/session_ticket_key_files/2", "must be a file name"));
  }
  SECTION("two keys with one name: a ticket could not say which sealed it") {
    dir.write("copy.key", std::string(16, 'c') + std::string(64, 'x'));
    j["tls"]["session_ticket_key_files"] = {"current.key", "copy.key"};
    requireOnlyError(parse(j, dir.path().string()), "/tls/session_ticket_key_files/1",
                     "\"" + (dir.path() / "copy.key").string() +
                         "\" has the same key name (first 16 bytes) as "
                         "/tls/session_ticket_key_files/0");
  }
  SECTION("must be an array") {
    j["tls"]["session_ticket_key_files"] = "current.key";
    CHECK(hasError(parse(j, dir.path().string()), "/tls/session_ticket_key_files", "array"));
  }
}

TEST_CASE("config: workers, hostname, limits and timeouts", "[config]") {
  Json j = minimal();
  j["workers"] = 5000;
  requireOnlyError(parse(j), "/workers", "must be an integer 0-1024");
  j = minimal();
  j["hostname"] = "mail.example.com\r\n250 injected";
  requireOnlyError(parse(j), "/hostname", "must be a DNS name (letters, digits, '-', '.')");
  j = minimal();
  j["limits"]["max_bad_commands"] = 0;
  requireOnlyError(parse(j), "/limits/max_bad_commands", "must be an integer 1-4294967295");
  j = minimal();
  j["limits"]["max_connections_per_ip"] = -1;
  requireOnlyError(parse(j), "/limits/max_connections_per_ip", "must be an integer 0-4294967295");
  j = minimal();
  j["timeouts"]["greeting_ms"] = 0;
  requireOnlyError(parse(j), "/timeouts/greeting_ms", "must be an integer 1-4294967295");
  j = minimal();
  j["timeouts"]["session_idle_ms"] = 1.5;
  requireOnlyError(parse(j), "/timeouts/session_idle_ms", "must be an integer 1-4294967295");
}

Json withUsers(Json users) {
  Json j = minimal();
  j["backends"] = {{{"name", "A"}, {"address", "10.0.0.1"}}};
  j["directory"] = {{"type", "static"}, {"users", std::move(users)}};
  return j;
}

TEST_CASE("config: static users", "[config]") {
  SECTION("a valid user, backend_login defaulting to the login") {
    Outcome out =
        parse(withUsers({{{"login", "carol"}, {"password", kSshaSecret}, {"backend", "A"}}}));
    requireValid(out);
    REQUIRE(out.config->directory.users.size() == 1);
    CHECK(out.config->directory.users[0].backend_login == "carol");
    CHECK(out.config->directory.users[0].protocols.empty());
  }
  SECTION("the backend must be configured") {
    requireOnlyError(
        parse(withUsers({{{"login", "carol"}, {"password", kSshaSecret}, {"backend", "Z"}}})),
        "/directory/users/0/backend", "unknown backend \"Z\" (not in /backends)");
  }
  SECTION("the password must be a supported hash, and is not repeated") {
    Outcome out =
        parse(withUsers({{{"login", "carol"}, {"password", "{PLAIN}hunter2"}, {"backend", "A"}}}));
    REQUIRE(out.errors.size() == 1);
    CHECK(out.errors[0].pointer == "/directory/users/0/password");
    CHECK(out.errors[0].message.rfind("unsupported or malformed password hash (expected {SSHA}",
                                      0) == 0);
    CHECK(out.errors[0].message.find("hunter2") == std::string::npos);
  }
  SECTION("protocols are checked one by one") {
    requireOnlyError(parse(withUsers({{{"login", "carol"},
                                       {"password", kSshaSecret},
                                       {"backend", "A"},
                                       {"protocols", {"imap", "smtp"}}}})),
                     "/directory/users/0/protocols/1",
                     "unknown protocol \"smtp\" (expected imap, pop3, submission, http)");
  }
  SECTION("logins are unique regardless of ASCII case") {
    requireOnlyError(
        parse(withUsers({{{"login", "carol"}, {"password", kSshaSecret}, {"backend", "A"}},
                         {{"login", "Carol"}, {"password", kSshaSecret}, {"backend", "A"}}})),
        "/directory/users/1/login",
        "duplicate login \"Carol\" (also /directory/users/0/login, logins are matched "
        "case-insensitively)");
  }
  SECTION("required user keys") {
    Outcome out = parse(withUsers({Json::object()}));
    CHECK(out.errors.size() == 3);
    CHECK(hasError(out, "/directory/users/0/login", "missing required key"));
    CHECK(hasError(out, "/directory/users/0/password", "missing required key"));
    CHECK(hasError(out, "/directory/users/0/backend", "missing required key"));
  }
}

TEST_CASE("config: users file", "[config]") {
  TempDir dir;
  Json j = withUsers(Json::array());
  j["directory"]["users_file"] = "users.json";
  std::string file = (dir.path() / "users.json").string();

  SECTION("errors inside it point into it and name it") {
    dir.write(
        "users.json",
        Json{{"users", {{{"login", "x"}, {"password", kSshaSecret}, {"backend", "Q"}}}}}.dump());
    requireOnlyError(parse(j, dir.path().string()), "/directory/users_file/users/0/backend",
                     "unknown backend \"Q\" (not in /backends) (in users file \"" + file + "\")");
  }
  SECTION("a login in both places is a duplicate") {
    j["directory"]["users"] = {{{"login", "x"}, {"password", kSshaSecret}, {"backend", "A"}}};
    dir.write(
        "users.json",
        Json{{"users", {{{"login", "X"}, {"password", kSshaSecret}, {"backend", "A"}}}}}.dump());
    CHECK(hasError(parse(j, dir.path().string()), "/directory/users_file/users/0/login",
                   "duplicate login \"X\" (also /directory/users/0/login"));
  }
  SECTION("its shape is checked") {
    dir.write("users.json", R"({"user": []})");
    Outcome out = parse(j, dir.path().string());
    INFO(describe(out.errors));
    CHECK(out.errors.size() == 2);
    CHECK(hasError(out, "/directory/users_file/user", "unknown key \"user\""));
    CHECK(hasError(out, "/directory/users_file/users", "missing required key"));
  }
  SECTION("invalid JSON in it") {
    dir.write("users.json", "{");
    Outcome out = parse(j, dir.path().string());
    REQUIRE(out.errors.size() == 1);
    CHECK(out.errors[0].pointer == "/directory/users_file");
    CHECK(out.errors[0].message.rfind("invalid JSON", 0) == 0);
  }
  SECTION("a missing file") {
    requireOnlyError(parse(j, dir.path().string()), "/directory/users_file",
                     "cannot read \"" + file + "\": No such file or directory");
  }
}

TEST_CASE("config: LDAP directory settings are passed through", "[config]") {
  Json j = minimal();
  j["directory"] = Json::parse(
      R"({"type": "ldap", "ldap": {"uris": ["ldap://127.0.0.1"], "base_dn": "dc=example,dc=com"}})");
  Outcome out = parse(j);
  requireValid(out);
  CHECK(out.config->directory.type == "ldap");
  CHECK(Json::parse(out.config->directory.ldap_json) ==
        Json::parse(R"({"uris": ["ldap://127.0.0.1"], "base_dn": "dc=example,dc=com"})"));

  j["directory"] = {{"type", "ldap"}, {"users", Json::array()}};
  Outcome mixed = parse(j);
  INFO(describe(mixed.errors));
  CHECK(mixed.errors.size() == 2);
  CHECK(hasError(mixed, "/directory/users", "only used with type \"static\""));
  CHECK(hasError(mixed, "/directory/ldap", "missing required key"));

  j["directory"] = {{"ldap", Json::object()}};
  requireOnlyError(parse(j), "/directory/ldap", "only used with type \"ldap\"");

  j["directory"] = {{"type", "ldap"}, {"hash_threads", 2}, {"ldap", Json::object()}};
  CHECK(hasError(parse(j), "/directory/hash_threads", "only used with type \"static\""));
}

TEST_CASE("config: the static directory's hash threads and queue", "[config]") {
  Json j = minimal();
  Outcome defaults = parse(j);
  requireValid(defaults);
  CHECK(defaults.config->directory.hash_threads == 2);
  CHECK(defaults.config->directory.hash_queue == 1000);

  j["directory"] = {{"hash_threads", 4}, {"hash_queue", 10}};
  Outcome set = parse(j);
  requireValid(set);
  CHECK(set.config->directory.hash_threads == 4);
  CHECK(set.config->directory.hash_queue == 10);

  j["directory"] = {{"hash_threads", 0}};
  requireOnlyError(parse(j), "/directory/hash_threads", "must be an integer 1-64");
  j["directory"] = {{"hash_queue", 0}};
  requireOnlyError(parse(j), "/directory/hash_queue", "must be an integer 1-1000000");
}

}  // namespace
}  // namespace gatehouse
