// The validated configuration: plain data, built once by loadConfig() and then shared read-only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/core/secret.h"
#include "proxy/net/ip_network.h"

namespace gatehouse {

enum class Protocol { Imap, Pop3, Submission, Http };
enum class TlsMode { None, StartTls, Implicit };

const char* protocolName(Protocol p);  // "imap", "pop3", "submission", "http"
const char* alpnName(Protocol p);      // "imap", "pop3", "smtp", "http/1.1"

struct CertificateConfig {
  std::string cert_file;           // PEM chain
  std::string key_file;            // PEM private key
  std::vector<std::string> names;  // SNI names served by it; the first certificate is the default
};

struct ListenerConfig {
  std::string name;  // for logs; defaults to "<protocol>-<port>"
  std::string address;
  uint16_t port = 0;
  Protocol protocol = Protocol::Imap;
  TlsMode tls = TlsMode::None;
  bool require_tls_for_auth = true;  // LOGINDISABLED until STARTTLS on a starttls listener
  // Non-empty: connections come from these load balancers only, each starting with a PROXY
  // protocol header (v1 or v2) that names the real client.
  std::vector<IpNetwork> proxy_protocol_from;
};

struct BackendConfig {
  std::string name;                    // what the directory's route names
  std::string address;                 // IP literal; Gatehouse never resolves names from LDAP
  std::map<Protocol, uint16_t> ports;  // per protocol
  TlsMode tls = TlsMode::None;
  std::string ca_file;      // verify the back-end's certificate against this CA
  std::string server_name;  // SNI and name to verify; defaults to address
  bool verify = true;
};

struct StaticUser {
  std::string login;
  std::string password_hash;  // {SSHA}, {SSHA512}, {CRYPT}$6$... or $6$...
  std::string backend;
  std::string backend_login;        // what the back-end is told; defaults to login
  std::vector<Protocol> protocols;  // empty = all
};

// How typed logins are rewritten before any look-up (directory/login_normalizer.h).
struct LoginNormalizationConfig {
  bool lowercase = true;                  // ASCII only; LDAP matches uid/mail case-insensitively
  bool accept_backslash_domain = false;   // `EXAMPLE\alice` -> `alice`
  std::vector<std::string> strip_domain;  // `alice@<one of these>` -> `alice`; "*" = any domain
  std::string default_domain;             // appended as `@domain` to a login without '@'
};

// The authentication cache in front of the directory (directory/cached_directory.h).
struct DirectoryCacheConfig {
  bool enabled = true;
  unsigned ttl_s = 60;          // Ok and Disabled answers; an old password works at most this long
  unsigned negative_ttl_s = 5;  // wrong passwords, so a retry after a typo reaches the directory
  unsigned stale_max_s = 3600;  // while the directory fails, positives this old still let users in
  size_t max_entries = 100000;  // (login, protocol) entries, least recently used evicted first
  // Entries holding only wrong passwords, in an LRU of their own: guessing cannot evict positives.
  size_t max_negative_entries = 10000;
};

struct DirectoryConfig {
  std::string type = "static";    // "static" | "ldap"
  std::vector<StaticUser> users;  // static: inline users, plus those of users_file
  std::string users_file;         // absolute path; its users are already in `users`
  unsigned hash_threads = 2;      // static: threads that check crypt(3) hashes (bcrypt, ...)
  size_t hash_queue = 1000;       // static: checks waiting for them; beyond, a temporary failure
  std::string ldap_json;  // ldap: the "ldap" object as JSON text, read by the LDAP directory
  DirectoryCacheConfig cache;
  LoginNormalizationConfig login;
};

struct Limits {
  size_t max_line = 8192;             // one command line before login (bytes)
  size_t max_auth_literal = 8192;     // a literal in a pre-auth command
  unsigned max_bad_commands = 10;     // BAD answers before the session is ended
  unsigned max_auth_failures = 3;     // failed logins before the session is ended
  size_t max_connections = 10000;     // per process
  size_t max_connections_per_ip = 0;  // 0 = unlimited
};

struct Timeouts {
  unsigned connect_ms = 5000;        // TCP connect to a back-end
  unsigned greeting_ms = 5000;       // back-end greeting, STARTTLS and login replay, each step
  unsigned preauth_idle_ms = 60000;  // client silent before login
  // From connect to login, however busy the client keeps it (Dovecot's 3 min login timeout): a
  // byte a minute or an endless string of EHLOs must not hold a connection slot for ever.
  unsigned login_deadline_ms = 180000;
  unsigned session_idle_ms =
      1800000;  // relayed session with no traffic either way (RFC 3501: 30 min)
  unsigned shutdown_grace_ms = 10000;     // on SIGTERM, how long sessions may finish
  unsigned proxy_header_ms = 5000;        // a load balancer's PROXY protocol header after connect
  unsigned auth_failure_delay_ms = 2000;  // before answering a failed login (Dovecot's default)
};

// SMTP submission (proxy/smtp/): where messages go and the RFC 5321 4.5.3.2 server timeouts.
struct SubmissionConfig {
  // Back-ends (names from /backends, each with a submission port) that take every submission,
  // whoever the user is; empty: the user's home back-end's submission port.
  std::vector<std::string> relay_backends;
  uint64_t max_message_size = 0;         // SIZE in EHLO; 0: "SIZE" without a number (RFC 1870)
  unsigned command_timeout_ms = 300000;  // client silent before AUTH (RFC 5321 4.5.3.2.7: 5 min)
  unsigned relay_idle_ms = 600000;  // relayed, no traffic (>= the 10 min DATA termination wait)
  // NOOP, RSET, HELP, VRFY and EXPN before AUTH beyond this many each count as an error (Postfix's
  // smtpd_junk_command_limit): a client cannot hold a connection with them forever.
  unsigned junk_command_limit = 100;
};

struct Config {
  unsigned workers = 0;  // 0 = one per core
  std::string hostname = "gatehouse";
  std::vector<CertificateConfig> certificates;
  // Contents of tls.session_ticket_key_files (validated by TicketKeys::problemWith); the first
  // seals.
  std::vector<Secret> session_ticket_keys;
  std::vector<ListenerConfig> listeners;
  std::vector<BackendConfig> backends;
  DirectoryConfig directory;
  Limits limits;
  Timeouts timeouts;
  std::string log_level = "info";
  SubmissionConfig submission;
};

struct ConfigError {
  std::string pointer;  // RFC 6901 JSON pointer, e.g. "/listeners/0/port"; "" is the whole file.
                        // Inside the users file: "/directory/users_file/users/2/backend".
  std::string message;
};

// Parses and validates. On failure returns nullptr and appends to `errors` (one per problem).
// File names in the result are absolute (relative ones are resolved against the configuration
// file's directory, or `base_dir`), and the files were readable at load time.
std::shared_ptr<const Config> loadConfig(const std::string& path, std::vector<ConfigError>& errors);
std::shared_ptr<const Config> parseConfig(const std::string& json_text, const std::string& base_dir,
                                          std::vector<ConfigError>& errors);

}  // namespace gatehouse
