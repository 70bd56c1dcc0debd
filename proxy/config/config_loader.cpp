// Section readers for the configuration. Each reader reports every problem it sees and keeps
// going, so one run of `gatehouse --check` shows the operator the whole list.
#include "proxy/config/config_loader.h"

#include <fcntl.h>
#include <openssl/mem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <system_error>
#include <thread>

#include "directory/ldap_config.h"
#include "directory/password_hash.h"
#include "proxy/config/config_json.h"
#include "proxy/core/ascii.h"
#include "proxy/net/ip_address.h"
#include "tls/ticket_keys.h"

namespace gatehouse {
namespace {

namespace fs = std::filesystem;
using config_json::Json;
using config_json::Need;
using config_json::ObjectReader;
using config_json::pointerTo;
using config_json::quoteJson;

constexpr uint64_t kMaxPort = 65535;
// More worker threads than this is a typo, not a machine.
constexpr uint64_t kMaxWorkers = 1024;
// Limits and timeouts are stored in 32-bit fields at least.
constexpr uint64_t kMaxCount = 4294967295u;
// Configuration and users files are read whole; this keeps a wrong path (a disk image, a log)
// from being slurped into memory.
constexpr off_t kMaxFileSize = 64 << 20;

const std::vector<std::pair<std::string_view, Protocol>> kProtocols = {
    {"imap", Protocol::Imap},
    {"pop3", Protocol::Pop3},
    {"submission", Protocol::Submission},
    {"http", Protocol::Http},
};

const std::vector<std::pair<std::string_view, TlsMode>> kTlsModes = {
    {"none", TlsMode::None},
    {"starttls", TlsMode::StartTls},
    {"implicit", TlsMode::Implicit},
};

const std::vector<std::pair<std::string_view, std::string_view>> kLogLevels = {
    {"debug", "debug"},
    {"info", "info"},
    {"warn", "warn"},
    {"error", "error"},
};

// Directory cache bounds: a cached answer keeps an old password working for up to ttl_s, and
// stale answers outlive a password change by up to stale_max_s, so neither may be unbounded.
constexpr uint64_t kMaxCacheTtlSeconds = 86400;
constexpr uint64_t kMaxStaleSeconds = uint64_t{7} * 86400;
// Roughly 200 bytes an entry: this bounds the cache at a few GB, past any sensible setting.
constexpr uint64_t kMaxCacheEntries = 10000000;
// Static directory: threads for crypt(3) checks, and the checks that may wait for them.
constexpr uint64_t kMaxHashThreads = 64;
constexpr uint64_t kMaxHashQueue = 1000000;

const std::vector<std::pair<std::string_view, std::string_view>> kDirectoryTypes = {
    {"static", "static"},
    {"ldap", "ldap"},
};

std::string tlsModeName(TlsMode mode) {
  for (const auto& [name, value] : kTlsModes) {
    if (value == mode) return std::string(name);
  }
  return "?";
}

// Names and logins end up in logs and protocol commands: control characters have no place there.
bool isPrintable(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

// The hostname goes into greetings (IMAP "* OK", SMTP "220"), so it must be a plain DNS name:
// labels of letters, digits and '-', none empty (one trailing dot, the root, is allowed).
bool isHostname(std::string_view s) {
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  if (s.empty() || s.size() > 253) return false;
  size_t label = 0;
  for (char c : s) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok || ++label > 63) return false;
  }
  return label != 0;
}

// A name a certificate may be selected by (SNI): a DNS name or a wildcard "*.domain".
bool isCertificateName(std::string_view s) {
  if (s.rfind("*.", 0) == 0) s.remove_prefix(2);
  return isHostname(s);
}

std::optional<Protocol> protocolByName(std::string_view name) {
  for (const auto& [known, protocol] : kProtocols) {
    if (known == name) return protocol;
  }
  return std::nullopt;
}

std::string unknownProtocol(std::string_view name) {
  return "unknown protocol " + quoteJson(name) + " (expected imap, pop3, submission, http)";
}

std::string errnoText(int err) {
  return std::generic_category().message(err);
}

// Opens without blocking (a FIFO must not hang the loader) and requires a regular file.
int openRegularFile(const fs::path& path, off_t& size, std::string& problem) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    problem = errnoText(errno);
    return -1;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    problem = "not a regular file";
    ::close(fd);
    return -1;
  }
  size = st.st_size;
  return fd;
}

std::optional<std::string> readableProblem(const fs::path& path) {
  off_t size = 0;
  std::string problem;
  int fd = openRegularFile(path, size, problem);
  if (fd < 0) return problem;
  ::close(fd);
  return std::nullopt;
}

class Builder {
 public:
  Builder(fs::path base_dir, std::vector<ConfigError>& errors)
      : base_dir_(std::move(base_dir)), errors_(errors) {}

  Config build(const Json& root);

 private:
  void error(std::string pointer, std::string message) {
    errors_.push_back({std::move(pointer), std::move(message)});
  }

  void readLog(const Json& value, const std::string& pointer);
  void readTls(const Json& value, const std::string& pointer);
  void readCertificate(const Json& value, const std::string& pointer);
  void readTicketKeys(const Json& files, const std::string& pointer);
  void readListeners(const Json& value, const std::string& pointer);
  void readListener(const Json& value, const std::string& pointer);
  void readProxyProtocolFrom(const Json& networks, const std::string& pointer,
                             ListenerConfig& listener);
  void checkListenerTls(const ObjectReader& reader, std::optional<bool> require_tls,
                        ListenerConfig& listener);
  void checkDuplicateListeners(const std::vector<std::string>& pointers);
  void readBackends(const Json& value, const std::string& pointer);
  void readBackend(const Json& value, const std::string& pointer);
  void readPorts(const Json& value, const std::string& pointer, BackendConfig& backend);
  void readDirectory(const Json& value, const std::string& pointer);
  void readDirectoryCache(const Json& value, const std::string& pointer);
  void readLoginNormalization(const Json& value, const std::string& pointer);
  void readUsersFile(const std::string& path, const std::string& pointer);
  void readUsers(const Json& value, const std::string& pointer);
  void readUser(const Json& value, const std::string& pointer);
  void readProtocolList(const Json& value, const std::string& pointer,
                        std::vector<Protocol>& protocols);
  void readLimits(const Json& value, const std::string& pointer);
  void readTimeouts(const Json& value, const std::string& pointer);
  void readSubmission(const Json& value, const std::string& pointer);
  std::string absolutePath(const std::string& name) const;  // relative names: to base_dir_
  std::optional<std::string> readFile(const ObjectReader& reader, std::string_view key, Need need);
  std::optional<std::string> readName(const ObjectReader& reader, std::string_view key, Need need);
  std::optional<std::string> readAddress(const ObjectReader& reader, std::string_view key);

  template <typename T>
  void readCount(const ObjectReader& reader, std::string_view key, uint64_t min, T& field) {
    if (auto value = reader.integer(key, min, kMaxCount, Need::Optional)) {
      field = static_cast<T>(*value);
    }
  }

  fs::path base_dir_;
  std::vector<ConfigError>& errors_;
  Config config_;
  size_t certificates_declared_ = 0;
  std::set<std::string> backend_names_;
  std::set<std::string> backend_names_folded_;         // lower-cased
  std::map<std::string, std::string> login_pointers_;  // lower-case login -> where it was
};

Config Builder::build(const Json& root) {
  ObjectReader reader(root, "", errors_,
                      {"workers", "hostname", "log", "tls", "listeners", "backends", "directory",
                       "limits", "timeouts", "submission"});
  if (!reader.isObject()) return config_;
  if (auto workers = reader.integer("workers", 0, kMaxWorkers, Need::Optional)) {
    config_.workers = static_cast<unsigned>(*workers);
  }
  if (config_.workers == 0) config_.workers = std::max(1u, std::thread::hardware_concurrency());
  if (auto hostname = reader.string("hostname", Need::Optional)) {
    if (isHostname(*hostname)) {
      config_.hostname = *hostname;
    } else {
      error(reader.pointerOf("hostname"), "must be a DNS name (letters, digits, '-', '.')");
    }
  }
  // Sections are read in dependency order: listeners need the certificates, users the back-ends.
  if (const Json* log = reader.find("log")) readLog(*log, reader.pointerOf("log"));
  if (const Json* tls = reader.find("tls")) readTls(*tls, reader.pointerOf("tls"));
  if (const Json* listeners = reader.array("listeners", Need::Required)) {
    readListeners(*listeners, reader.pointerOf("listeners"));
  }
  if (const Json* backends = reader.array("backends", Need::Optional)) {
    readBackends(*backends, reader.pointerOf("backends"));
  }
  if (const Json* directory = reader.find("directory")) {
    readDirectory(*directory, reader.pointerOf("directory"));
  }
  if (const Json* limits = reader.find("limits")) readLimits(*limits, reader.pointerOf("limits"));
  if (const Json* timeouts = reader.find("timeouts")) {
    readTimeouts(*timeouts, reader.pointerOf("timeouts"));
  }
  if (const Json* submission = reader.find("submission")) {
    readSubmission(*submission, reader.pointerOf("submission"));
  }
  return config_;
}

void Builder::readLog(const Json& value, const std::string& pointer) {
  ObjectReader reader(value, pointer, errors_, {"level"});
  if (auto level = reader.choice("level", "log level", kLogLevels, Need::Optional)) {
    config_.log_level = std::string(*level);
  }
}

std::string Builder::absolutePath(const std::string& name) const {
  fs::path path = fs::path(name).is_absolute() ? fs::path(name) : base_dir_ / name;
  return path.lexically_normal().string();
}

std::optional<std::string> Builder::readFile(const ObjectReader& reader, std::string_view key,
                                             Need need) {
  auto name = reader.string(key, need);
  if (!name) return std::nullopt;
  if (!isFileName(*name)) {
    reader.error(reader.pointerOf(key), "must be a file name");
    return std::nullopt;
  }
  std::string absolute = absolutePath(*name);
  if (auto problem = readableProblem(absolute)) {
    reader.error(reader.pointerOf(key), "cannot read " + quoteJson(absolute) + ": " + *problem);
    return std::nullopt;
  }
  return absolute;
}

std::optional<std::string> Builder::readName(const ObjectReader& reader, std::string_view key,
                                             Need need) {
  auto name = reader.string(key, need);
  if (name && (name->empty() || !isPrintable(*name))) {
    reader.error(reader.pointerOf(key), "must be a non-empty string without control characters");
    return std::nullopt;
  }
  return name;
}

std::optional<std::string> Builder::readAddress(const ObjectReader& reader, std::string_view key) {
  auto address = reader.string(key, Need::Required);
  if (address && !ipAddressBytes(*address)) {
    reader.error(reader.pointerOf(key), "must be an IP address literal");
    return std::nullopt;
  }
  return address;
}

void Builder::readTls(const Json& value, const std::string& pointer) {
  ObjectReader reader(value, pointer, errors_, {"certificates", "session_ticket_key_files"});
  if (const Json* certificates = reader.array("certificates", Need::Optional)) {
    certificates_declared_ = certificates->size();
    for (size_t i = 0; i < certificates->size(); ++i) {
      readCertificate((*certificates)[i], pointerTo(reader.pointerOf("certificates"), i));
    }
  }
  if (const Json* files = reader.array("session_ticket_key_files", Need::Optional)) {
    readTicketKeys(*files, reader.pointerOf("session_ticket_key_files"));
  }
}

void Builder::readTicketKeys(const Json& files, const std::string& pointer) {
  std::vector<std::string> pointers;  // of the keys read so far, to name a duplicate's first use
  for (size_t i = 0; i < files.size(); ++i) {
    std::string at = pointerTo(pointer, i);
    const Json& name = files[i];
    if (!name.is_string() || !isFileName(name.get<std::string>())) {
      error(at, "must be a file name");
      continue;
    }
    std::string path = absolutePath(name.get<std::string>());
    std::string problem;
    std::optional<Secret> key = readSecretFile(path, TicketKeys::kMaxFileSize, problem);
    if (key) problem = TicketKeys::problemWith(key->reveal());
    if (!problem.empty()) {
      error(at, "cannot use " + quoteJson(path) + ": " + problem);
      continue;
    }
    for (size_t j = 0; j < config_.session_ticket_keys.size(); ++j) {
      if (TicketKeys::nameOf(config_.session_ticket_keys[j].reveal()) ==
          TicketKeys::nameOf(key->reveal())) {
        problem = "has the same key name (first 16 bytes) as " + pointers[j];
      }
    }
    if (!problem.empty()) {
      error(at, quoteJson(path) + " " + problem);
      continue;
    }
    config_.session_ticket_keys.push_back(std::move(*key));
    pointers.push_back(at);
  }
}

void Builder::readCertificate(const Json& value, const std::string& pointer) {
  ObjectReader reader(value, pointer, errors_, {"cert", "key", "names"});
  if (!reader.isObject()) return;
  CertificateConfig certificate;
  certificate.cert_file = readFile(reader, "cert", Need::Required).value_or("");
  certificate.key_file = readFile(reader, "key", Need::Required).value_or("");
  if (const Json* names = reader.array("names", Need::Optional)) {
    for (size_t i = 0; i < names->size(); ++i) {
      const Json& name = (*names)[i];
      if (name.is_string() && isCertificateName(name.get<std::string>())) {
        certificate.names.push_back(name.get<std::string>());
      } else {
        error(pointerTo(reader.pointerOf("names"), i), "must be a DNS name (or *.domain)");
      }
    }
  }
  config_.certificates.push_back(std::move(certificate));
}

void Builder::readListeners(const Json& value, const std::string& pointer) {
  if (value.empty()) error(pointer, "must list at least one listener");
  std::vector<std::string> pointers;
  for (size_t i = 0; i < value.size(); ++i) {
    size_t before = config_.listeners.size();
    readListener(value[i], pointerTo(pointer, i));
    if (config_.listeners.size() > before) pointers.push_back(pointerTo(pointer, i));
  }
  checkDuplicateListeners(pointers);
}

void Builder::readListener(const Json& value, const std::string& pointer) {
  ObjectReader reader(value, pointer, errors_,
                      {"name", "address", "port", "protocol", "tls", "require_tls_for_auth",
                       "proxy_protocol_from"});
  if (!reader.isObject()) return;
  ListenerConfig listener;
  auto address = readAddress(reader, "address");
  auto port = reader.integer("port", 0, kMaxPort, Need::Required);
  auto protocol = reader.choice("protocol", "protocol", kProtocols, Need::Required);
  auto name = readName(reader, "name", Need::Optional);
  auto tls = reader.choice("tls", "tls mode", kTlsModes, Need::Optional);
  auto require_tls = reader.boolean("require_tls_for_auth", Need::Optional);
  if (!address || !port || !protocol) return;
  listener.address = *address;
  listener.port = static_cast<uint16_t>(*port);
  listener.protocol = *protocol;
  listener.name = name.value_or(std::string(protocolName(*protocol)) + "-" + std::to_string(*port));
  listener.tls = tls.value_or(TlsMode::None);
  listener.require_tls_for_auth = require_tls.value_or(true);
  checkListenerTls(reader, require_tls, listener);
  if (const Json* networks = reader.array("proxy_protocol_from", Need::Optional)) {
    readProxyProtocolFrom(*networks, reader.pointerOf("proxy_protocol_from"), listener);
  }
  config_.listeners.push_back(std::move(listener));
}

void Builder::readProxyProtocolFrom(const Json& networks, const std::string& pointer,
                                    ListenerConfig& listener) {
  // An empty list would be a listener nobody may use: surely not what was meant.
  if (networks.empty()) error(pointer, "must list the load balancers' addresses or networks");
  for (size_t i = 0; i < networks.size(); ++i) {
    std::optional<IpNetwork> network;
    if (networks[i].is_string()) network = IpNetwork::parse(networks[i].get<std::string>());
    if (!network) {
      error(pointerTo(pointer, i),
            "must be an IP address or network (\"10.0.0.0/24\", \"fd00::/8\"), host bits clear");
      continue;
    }
    listener.proxy_protocol_from.push_back(std::move(*network));
  }
}

void Builder::checkListenerTls(const ObjectReader& reader, std::optional<bool> require_tls,
                               ListenerConfig& listener) {
  if (listener.tls != TlsMode::None && certificates_declared_ == 0) {
    reader.error(reader.pointerOf("tls"),
                 "tls " + quoteJson(tlsModeName(listener.tls)) +
                     " needs at least one certificate in /tls/certificates");
  }
  if (listener.protocol == Protocol::Http && listener.tls == TlsMode::StartTls) {
    reader.error(reader.pointerOf("tls"), "http has no STARTTLS (use \"none\" or \"implicit\")");
  }
  if (listener.tls == TlsMode::None) {
    // Nothing could ever satisfy the requirement on a plain listener: an explicit true is a
    // contradiction, and an absent key means plaintext logins were accepted when TLS was left out.
    if (require_tls.value_or(false)) {
      reader.error(reader.pointerOf("require_tls_for_auth"),
                   "cannot be true on a listener with tls \"none\" (no login could ever succeed)");
    }
    listener.require_tls_for_auth = false;
  }
}

void Builder::checkDuplicateListeners(const std::vector<std::string>& pointers) {
  std::map<std::pair<std::string, uint16_t>, std::string> seen;
  for (size_t i = 0; i < config_.listeners.size(); ++i) {
    const ListenerConfig& listener = config_.listeners[i];
    if (listener.port == 0) continue;  // each binds its own ephemeral port
    auto key = std::make_pair(ipAddressBytes(listener.address).value_or(""), listener.port);
    auto [it, inserted] = seen.emplace(key, pointers[i]);
    if (!inserted) {
      error(pointerTo(pointers[i], "port"), "duplicate listener " + listener.address + " port " +
                                                std::to_string(listener.port) + " (also " +
                                                it->second + ")");
    }
  }
}

void Builder::readBackends(const Json& value, const std::string& pointer) {
  for (size_t i = 0; i < value.size(); ++i) readBackend(value[i], pointerTo(pointer, i));
}

void Builder::readBackend(const Json& value, const std::string& pointer) {
  ObjectReader reader(value, pointer, errors_,
                      {"name", "address", "ports", "tls", "ca_file", "server_name", "verify"});
  if (!reader.isObject()) return;
  BackendConfig backend;
  auto name = readName(reader, "name", Need::Required);
  auto address = readAddress(reader, "address");
  if (const Json* ports = reader.find("ports"))
    readPorts(*ports, reader.pointerOf("ports"), backend);
  backend.tls = reader.choice("tls", "tls mode", kTlsModes, Need::Optional).value_or(TlsMode::None);
  backend.ca_file = readFile(reader, "ca_file", Need::Optional).value_or("");
  backend.server_name = readName(reader, "server_name", Need::Optional).value_or("");
  backend.verify = reader.boolean("verify", Need::Optional).value_or(true);
  // The back-end TLS context trusts only the configured CA, never the system store.
  if (backend.tls != TlsMode::None && backend.verify && !reader.has("ca_file")) {
    error(reader.pointerOf("ca_file"), "missing: tls " + quoteJson(tlsModeName(backend.tls)) +
                                           " with verify true needs the CA to verify against");
  }
  if (backend.tls == TlsMode::StartTls && backend.ports.count(Protocol::Http) != 0) {
    error(reader.pointerOf("tls"), "starttls cannot apply to the http port (http has no STARTTLS)");
  }
  if (!name) return;
  if (!backend_names_.insert(*name).second) {
    error(reader.pointerOf("name"), "duplicate backend name " + quoteJson(*name));
  } else if (!backend_names_folded_.insert(asciiLower(*name)).second) {
    error(reader.pointerOf("name"), "backend name " + quoteJson(*name) +
                                        " differs from another only in case (mailHost values "
                                        "match names without regard to case)");
  }
  backend.name = *name;
  backend.address = address.value_or("");
  if (backend.server_name.empty()) backend.server_name = backend.address;
  config_.backends.push_back(std::move(backend));
}

void Builder::readPorts(const Json& value, const std::string& pointer, BackendConfig& backend) {
  if (!value.is_object()) {
    error(pointer, "must be an object such as {\"imap\": 143}");
    return;
  }
  for (const auto& [key, port] : value.items()) {
    std::string at = pointerTo(pointer, key);
    std::optional<Protocol> protocol = protocolByName(key);
    if (!protocol) {
      error(at, unknownProtocol(key));
    } else if (!port.is_number_unsigned() || port.get<uint64_t>() < 1 ||
               port.get<uint64_t>() > kMaxPort) {
      error(at, "must be an integer 1-65535");
    } else {
      backend.ports[*protocol] = static_cast<uint16_t>(port.get<uint64_t>());
    }
  }
}

void Builder::readDirectory(const Json& value, const std::string& pointer) {
  ObjectReader reader(
      value, pointer, errors_,
      {"type", "users_file", "users", "ldap", "cache", "login", "hash_threads", "hash_queue"});
  if (!reader.isObject()) return;
  auto type = reader.choice("type", "directory type", kDirectoryTypes, Need::Optional);
  if (reader.has("type") && !type) return;  // reported; the other keys depend on it
  DirectoryConfig& directory = config_.directory;
  directory.type = std::string(type.value_or("static"));
  if (const Json* cache = reader.find("cache")) {
    readDirectoryCache(*cache, reader.pointerOf("cache"));
  }
  if (const Json* login = reader.find("login")) {
    readLoginNormalization(*login, reader.pointerOf("login"));
  }
  if (directory.type == "ldap") {
    for (std::string_view key : {"users", "users_file", "hash_threads", "hash_queue"}) {
      if (reader.has(key)) error(reader.pointerOf(key), "only used with type \"static\"");
    }
    if (const Json* ldap = reader.object("ldap", Need::Required)) {
      directory.ldap_json = checkLdapJson(*ldap, reader.pointerOf("ldap"), base_dir_, errors_);
    }
    return;
  }
  if (reader.has("ldap")) error(reader.pointerOf("ldap"), "only used with type \"ldap\"");
  if (const Json* users = reader.array("users", Need::Optional)) {
    readUsers(*users, reader.pointerOf("users"));
  }
  if (auto file = readFile(reader, "users_file", Need::Optional)) {
    directory.users_file = *file;
    readUsersFile(*file, reader.pointerOf("users_file"));
  }
  if (auto threads = reader.integer("hash_threads", 1, kMaxHashThreads, Need::Optional)) {
    directory.hash_threads = static_cast<unsigned>(*threads);
  }
  if (auto queue = reader.integer("hash_queue", 1, kMaxHashQueue, Need::Optional)) {
    directory.hash_queue = static_cast<size_t>(*queue);
  }
}

void Builder::readDirectoryCache(const Json& value, const std::string& pointer) {
  ObjectReader reader(
      value, pointer, errors_,
      {"enabled", "ttl_s", "negative_ttl_s", "stale_max_s", "max_entries", "max_negative_entries"});
  if (!reader.isObject()) return;
  DirectoryCacheConfig& cache = config_.directory.cache;
  cache.enabled = reader.boolean("enabled", Need::Optional).value_or(cache.enabled);
  if (auto ttl = reader.integer("ttl_s", 0, kMaxCacheTtlSeconds, Need::Optional)) {
    cache.ttl_s = static_cast<unsigned>(*ttl);
  }
  if (auto ttl = reader.integer("negative_ttl_s", 0, kMaxCacheTtlSeconds, Need::Optional)) {
    cache.negative_ttl_s = static_cast<unsigned>(*ttl);
  }
  if (auto stale = reader.integer("stale_max_s", 0, kMaxStaleSeconds, Need::Optional)) {
    cache.stale_max_s = static_cast<unsigned>(*stale);
  }
  if (auto entries = reader.integer("max_entries", 1, kMaxCacheEntries, Need::Optional)) {
    cache.max_entries = static_cast<size_t>(*entries);
  }
  if (auto entries = reader.integer("max_negative_entries", 1, kMaxCacheEntries, Need::Optional)) {
    cache.max_negative_entries = static_cast<size_t>(*entries);
  }
  if (cache.stale_max_s != 0 && cache.stale_max_s < cache.ttl_s) {
    error(reader.pointerOf("stale_max_s"),
          "must be 0 (no stale answers) or at least ttl_s (" + std::to_string(cache.ttl_s) + ")");
  }
}

void Builder::readLoginNormalization(const Json& value, const std::string& pointer) {
  ObjectReader reader(value, pointer, errors_,
                      {"lowercase", "accept_backslash_domain", "strip_domain", "default_domain"});
  if (!reader.isObject()) return;
  LoginNormalizationConfig& login = config_.directory.login;
  login.lowercase = reader.boolean("lowercase", Need::Optional).value_or(login.lowercase);
  login.accept_backslash_domain =
      reader.boolean("accept_backslash_domain", Need::Optional).value_or(false);
  // A list of domains, or "*" (alone or in the list) for any domain.
  if (const Json* strip = reader.find("strip_domain")) {
    std::string at = reader.pointerOf("strip_domain");
    if (strip->is_string() && strip->get<std::string>() == "*") {
      login.strip_domain = {"*"};
    } else if (!strip->is_array()) {
      error(at, "must be \"*\" or an array of domain names");
    } else {
      for (size_t i = 0; i < strip->size(); ++i) {
        const Json& domain = (*strip)[i];
        if (domain.is_string() &&
            (domain.get<std::string>() == "*" || isHostname(domain.get<std::string>()))) {
          login.strip_domain.push_back(domain.get<std::string>());
        } else {
          error(pointerTo(at, i), "must be a domain name or \"*\"");
        }
      }
    }
  }
  if (auto domain = reader.string("default_domain", Need::Optional)) {
    if (domain->empty() || isHostname(*domain)) {
      login.default_domain = *domain;
    } else {
      error(reader.pointerOf("default_domain"), "must be a domain name (or \"\" for none)");
    }
  }
}

// Errors inside the users file are reported as "/directory/users_file/users/3/backend": the
// pointer continues into the document that the key names, and the message names the file.
void Builder::readUsersFile(const std::string& path, const std::string& pointer) {
  std::string problem;
  auto text = readTextFile(path, problem);
  if (!text) {
    error(pointer, "cannot read " + quoteJson(path) + ": " + problem);
    return;
  }
  size_t first = errors_.size();
  if (auto document = config_json::parseDocument(*text, pointer, errors_)) {
    if (!document->is_object()) {
      error(pointer, "must hold a JSON object {\"users\": [...]}");
    } else {
      ObjectReader reader(*document, pointer, errors_, {"users"});
      if (const Json* users = reader.array("users", Need::Required)) {
        readUsers(*users, reader.pointerOf("users"));
      }
    }
  }
  for (size_t i = first; i < errors_.size(); ++i) {
    errors_[i].message += " (in users file " + quoteJson(path) + ")";
  }
}

void Builder::readUsers(const Json& value, const std::string& pointer) {
  for (size_t i = 0; i < value.size(); ++i) readUser(value[i], pointerTo(pointer, i));
}

void Builder::readUser(const Json& value, const std::string& pointer) {
  ObjectReader reader(value, pointer, errors_,
                      {"login", "password", "backend", "backend_login", "protocols"});
  if (!reader.isObject()) return;
  StaticUser user;
  auto login = readName(reader, "login", Need::Required);
  auto password = reader.string("password", Need::Required);
  auto backend = reader.string("backend", Need::Required);
  auto backend_login = readName(reader, "backend_login", Need::Optional);
  if (password && !isSupportedHash(*password)) {
    // The hash itself is not repeated: error output may end up in tickets and chat.
    error(reader.pointerOf("password"), "unsupported or malformed password hash (expected " +
                                            std::string(kSupportedHashes) + ")");
  }
  if (backend && backend_names_.count(*backend) == 0) {
    error(reader.pointerOf("backend"),
          "unknown backend " + quoteJson(*backend) + " (not in /backends)");
  }
  if (const Json* protocols = reader.array("protocols", Need::Optional)) {
    readProtocolList(*protocols, reader.pointerOf("protocols"), user.protocols);
  }
  if (!login || !password || !backend) return;
  auto [it, inserted] = login_pointers_.emplace(asciiLower(*login), reader.pointerOf("login"));
  if (!inserted) {
    error(reader.pointerOf("login"), "duplicate login " + quoteJson(*login) + " (also " +
                                         it->second + ", logins are matched case-insensitively)");
  }
  user.login = *login;
  user.password_hash = *password;
  user.backend = *backend;
  user.backend_login = backend_login.value_or(*login);
  config_.directory.users.push_back(std::move(user));
}

void Builder::readProtocolList(const Json& value, const std::string& pointer,
                               std::vector<Protocol>& protocols) {
  for (size_t i = 0; i < value.size(); ++i) {
    const Json& element = value[i];
    std::optional<Protocol> protocol;
    if (!element.is_string()) {
      error(pointerTo(pointer, i), "must be a string");
    } else if (!(protocol = protocolByName(element.get<std::string>()))) {
      error(pointerTo(pointer, i), unknownProtocol(element.get<std::string>()));
    } else {
      protocols.push_back(*protocol);
    }
  }
}

void Builder::readLimits(const Json& value, const std::string& pointer) {
  ObjectReader reader(value, pointer, errors_,
                      {"max_line", "max_auth_literal", "max_bad_commands", "max_auth_failures",
                       "max_connections", "max_connections_per_ip"});
  Limits& limits = config_.limits;
  readCount(reader, "max_line", 1, limits.max_line);
  readCount(reader, "max_auth_literal", 1, limits.max_auth_literal);
  readCount(reader, "max_bad_commands", 1, limits.max_bad_commands);
  readCount(reader, "max_auth_failures", 1, limits.max_auth_failures);
  readCount(reader, "max_connections", 1, limits.max_connections);
  readCount(reader, "max_connections_per_ip", 0, limits.max_connections_per_ip);  // 0 = unlimited
}

void Builder::readTimeouts(const Json& value, const std::string& pointer) {
  ObjectReader reader(
      value, pointer, errors_,
      {"connect_ms", "greeting_ms", "preauth_idle_ms", "login_deadline_ms", "session_idle_ms",
       "shutdown_grace_ms", "proxy_header_ms", "auth_failure_delay_ms"});
  Timeouts& timeouts = config_.timeouts;
  readCount(reader, "connect_ms", 1, timeouts.connect_ms);
  readCount(reader, "greeting_ms", 1, timeouts.greeting_ms);
  readCount(reader, "preauth_idle_ms", 1, timeouts.preauth_idle_ms);
  readCount(reader, "login_deadline_ms", 1, timeouts.login_deadline_ms);
  readCount(reader, "session_idle_ms", 1, timeouts.session_idle_ms);
  readCount(reader, "shutdown_grace_ms", 1, timeouts.shutdown_grace_ms);
  readCount(reader, "proxy_header_ms", 1, timeouts.proxy_header_ms);
  readCount(reader, "auth_failure_delay_ms", 0, timeouts.auth_failure_delay_ms);  // 0 = none
}

void Builder::readSubmission(const Json& value, const std::string& pointer) {
  ObjectReader reader(value, pointer, errors_,
                      {"relay_backends", "max_message_size", "command_timeout_ms", "relay_idle_ms",
                       "junk_command_limit"});
  if (!reader.isObject()) return;
  SubmissionConfig& submission = config_.submission;
  if (const Json* names = reader.array("relay_backends", Need::Optional)) {
    for (size_t i = 0; i < names->size(); ++i) {
      const Json& name = (*names)[i];
      std::string at = pointerTo(reader.pointerOf("relay_backends"), i);
      const BackendConfig* backend = nullptr;
      for (const BackendConfig& b : config_.backends) {
        if (name.is_string() && b.name == name.get<std::string>()) backend = &b;
      }
      if (!name.is_string()) {
        error(at, "must be a string");
      } else if (backend == nullptr) {
        error(at, "unknown backend " + quoteJson(name.get<std::string>()) + " (not in /backends)");
      } else if (backend->ports.count(Protocol::Submission) == 0) {
        error(at, "backend " + quoteJson(backend->name) + " has no submission port");
      } else {
        submission.relay_backends.push_back(backend->name);
      }
    }
  }
  if (auto size = reader.integer("max_message_size", 0, kMaxCount, Need::Optional)) {
    submission.max_message_size = *size;
  }
  readCount(reader, "command_timeout_ms", 1, submission.command_timeout_ms);
  readCount(reader, "relay_idle_ms", 1, submission.relay_idle_ms);
  readCount(reader, "junk_command_limit", 0, submission.junk_command_limit);
}

}  // namespace

Config buildConfig(const nlohmann::json& root, const std::filesystem::path& base_dir,
                   std::vector<ConfigError>& errors) {
  return Builder(base_dir, errors).build(root);
}

std::optional<std::string> readTextFile(const std::filesystem::path& path, std::string& problem) {
  off_t size = 0;
  int fd = openRegularFile(path, size, problem);
  if (fd < 0) return std::nullopt;
  if (size > kMaxFileSize) {
    ::close(fd);
    problem = "larger than " + std::to_string(kMaxFileSize >> 20) + " MiB";
    return std::nullopt;
  }
  std::string text;
  std::array<char, 65536> buffer;
  while (true) {
    ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      problem = errnoText(errno);
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    text.append(buffer.data(), static_cast<size_t>(n));
    if (text.size() > static_cast<size_t>(kMaxFileSize)) break;  // grew while we read
  }
  ::close(fd);
  return text;
}

std::optional<Secret> readSecretFile(const std::filesystem::path& path, size_t max_size,
                                     std::string& problem) {
  off_t size = 0;
  int fd = openRegularFile(path, size, problem);
  if (fd < 0) return std::nullopt;
  // Sized once, one byte over the limit, so that neither a read nor the size check reallocates.
  std::string buffer(max_size + 1, '\0');
  size_t used = 0;
  while (used < buffer.size()) {
    ssize_t n = ::read(fd, buffer.data() + used, buffer.size() - used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      problem = errnoText(errno);
      ::close(fd);
      OPENSSL_cleanse(buffer.data(), used);
      return std::nullopt;
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  ::close(fd);
  if (used > max_size) {
    problem = "larger than " + std::to_string(max_size) + " bytes";
    OPENSSL_cleanse(buffer.data(), used);
    return std::nullopt;
  }
  buffer.resize(used);
  return Secret::adopt(std::move(buffer));
}

}  // namespace gatehouse
