// The POP3 login replay. Dovecot's pop3-login offers XCLIENT in its greeting ("+OK [XCLIENT]")
// to clients from login_trusted_networks and then logs and authenticates with the forwarded
// address (rip=); the command and its fields are the ones Dovecot's own POP3 proxy sends.
#include "backends/pop3_backend_login.h"

#include <openssl/mem.h>

#include "proxy/core/ascii.h"

namespace gatehouse {
namespace {

// RFC 2449 section 4: a command line is at most 255 octets; a longer AUTH PLAIN with its initial
// response is sent as "AUTH PLAIN" and the response on its own line (RFC 5034 section 4).
constexpr size_t kMaxCommandLine = 255;
// A back-end whose CAPA answer goes on longer than this is not a POP3 server we want to talk to.
constexpr unsigned kMaxCapaLines = 256;
// Proxy hop limit passed to Dovecot (its proxy_ttl default is 5, minus our own hop): a back-end
// that is itself a proxy refuses to loop forever.
constexpr unsigned kProxyTtl = 4;

// LearnedCapabilities bits for a POP3 back-end's CAPA answer.
constexpr uint32_t kSaslPlain = 1u << 0;
constexpr uint32_t kUser = 1u << 1;
constexpr uint32_t kAuthRespCode = 1u << 2;

bool startsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// An XCLIENT value must be one token: no space, no control character, nothing 8-bit.
bool isToken(std::string_view value) {
  if (value.empty()) return false;
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return false;
  }
  return true;
}

std::string xclientCommand(const BackendLoginRequest& r) {
  std::string cmd = "XCLIENT";
  auto field = [&cmd](std::string_view key, const std::string& value) {
    if (!isToken(value)) return;
    cmd += ' ';
    cmd += key;
    cmd += '=';
    cmd += value;
  };
  field("ADDR", r.client_ip);
  field("PORT", r.client_port);
  field("SESSION", r.session_id);
  field("TTL", std::to_string(kProxyTtl));
  cmd += "\r\n";
  return cmd;
}

// The RFC 3206 response code of "-ERR [CODE] text", upper-cased; empty if there is none.
std::string responseCode(std::string_view line) {
  if (!startsWith(line, "-ERR [")) return {};
  line.remove_prefix(6);
  const size_t close = line.find(']');
  if (close == std::string_view::npos) return {};
  return asciiUpper(line.substr(0, close));
}

// CR, LF or NUL would end or corrupt a USER/PASS line (and smuggle a second command).
bool fitsOnLine(std::string_view value) {
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

}  // namespace

void Pop3BackendLogin::onLine(std::string_view line) {
  switch (state_) {
    case State::Greeting:
      onGreeting(line);
      return;
    case State::Stls:
      if (!startsWith(line, "+OK")) {
        fail(BackendFailure::Unavailable, "back-end refused STLS");
        return;
      }
      upgradeToTls();
      afterTls();
      return;
    case State::Xclient:
      onXclientAnswer(line);
      return;
    case State::Capa:
    case State::CapaList:
      onCapaLine(line);
      return;
    case State::User:
    case State::Pass:
    case State::AuthContinue:
    case State::Auth:
      if (xclient_pending_) {
        xclient_pending_ = false;
        if (!startsWith(line, "+OK")) fail(BackendFailure::Unavailable, "back-end refused XCLIENT");
        return;
      }
      onLoginAnswer(line);
      return;
  }
}

void Pop3BackendLogin::onGreeting(std::string_view line) {
  if (!startsWith(line, "+OK")) {
    fail(BackendFailure::Unavailable, "unexpected back-end greeting");
    return;
  }
  xclient_ = startsWith(line, "+OK [XCLIENT]");
  if (wantsStartTls()) {
    state_ = State::Stls;
    send("STLS\r\n");
    return;
  }
  afterTls();
}

void Pop3BackendLogin::afterTls() {
  // Capabilities are only asked for now, inside TLS (RFC 2595 section 4: what was learnt before
  // STLS is discarded), and what is remembered of a back-end was learnt at this same point.
  if (auto remembered = backend_.pop3_capabilities.recall()) {
    adopt(*remembered);
    if (xclient_) {
      sendLoginBehindXclient();
    } else {
      sendLogin();
    }
    return;
  }
  // XCLIENT and CAPA go in one write, answered together by the same process.
  std::string batch = xclient_ ? xclientCommand(request_) : std::string();
  state_ = xclient_ ? State::Xclient : State::Capa;
  batch += "CAPA\r\n";
  send(std::move(batch));
}

void Pop3BackendLogin::onXclientAnswer(std::string_view line) {
  if (!startsWith(line, "+OK")) {
    fail(BackendFailure::Unavailable, "back-end refused XCLIENT");
    return;
  }
  state_ = State::Capa;  // its answer follows in the same flight
}

void Pop3BackendLogin::adopt(uint32_t learned) {
  from_memory_ = true;
  capa_ok_ = true;
  sasl_plain_ = (learned & kSaslPlain) != 0;
  user_ = (learned & kUser) != 0;
  auth_resp_code_ = (learned & kAuthRespCode) != 0;
}

uint32_t Pop3BackendLogin::learned() const {
  return (sasl_plain_ ? kSaslPlain : 0) | (user_ ? kUser : 0) |
         (auth_resp_code_ ? kAuthRespCode : 0);
}

void Pop3BackendLogin::onCapaLine(std::string_view line) {
  if (state_ == State::Capa) {
    if (startsWith(line, "+OK")) {
      capa_ok_ = true;
      state_ = State::CapaList;
    } else {
      sendLogin();  // no CAPA (RFC 1939 server): USER/PASS is all there is
    }
    return;
  }
  if (line == ".") {
    // Only a back-end with RFC 3206 codes can tell us that a login chosen from memory no longer
    // suits it (rather than the password being wrong): others are asked every time.
    if (auth_resp_code_) {
      backend_.pop3_capabilities.remember(learned());
    } else {
      backend_.pop3_capabilities.forget();
    }
    sendLogin();
    return;
  }
  if (++capa_lines_ > kMaxCapaLines) {
    fail(BackendFailure::Unavailable, "back-end CAPA answer too long");
    return;
  }
  const std::string cap = asciiUpper(line);
  if (cap == "USER") user_ = true;
  if (cap == "AUTH-RESP-CODE") auth_resp_code_ = true;
  if (startsWith(cap, "SASL ")) {
    std::string_view mechs = cap;
    mechs.remove_prefix(5);
    while (!mechs.empty()) {
      const size_t space = mechs.find(' ');
      if (mechs.substr(0, space) == "PLAIN") sasl_plain_ = true;
      if (space == std::string_view::npos) break;
      mechs.remove_prefix(space + 1);
    }
  }
}

std::string Pop3BackendLogin::loginCommand() {
  if (sasl_plain_) {
    if (std::optional<std::string> command = saslPlainLineWithin("AUTH PLAIN ", kMaxCommandLine)) {
      state_ = State::Auth;
      return std::move(*command);
    }
    state_ = State::AuthContinue;
    return "AUTH PLAIN\r\n";
  }
  if (capa_ok_ && !user_) {
    fail(BackendFailure::Unavailable, "back-end offers no way to send these credentials");
    return {};
  }
  if (!fitsOnLine(request_.user) || !fitsOnLine(request_.password.reveal())) {
    fail(BackendFailure::Unavailable, "credentials cannot be sent with USER/PASS");
    return {};
  }
  state_ = State::User;
  return "USER " + request_.user + "\r\n";
}

void Pop3BackendLogin::sendLogin() {
  std::string command = loginCommand();
  if (!command.empty()) send(std::move(command));
}

void Pop3BackendLogin::sendLoginBehindXclient() {
  std::string command = loginCommand();
  if (command.empty()) return;
  std::string batch = xclientCommand(request_);
  batch += command;  // a reallocation frees only XCLIENT's bytes
  OPENSSL_cleanse(command.data(), command.size());
  xclient_pending_ = true;
  sendPipelined(std::move(batch));
}

void Pop3BackendLogin::onLoginAnswer(std::string_view line) {
  if (state_ == State::AuthContinue && startsWith(line, "+ ")) {
    state_ = State::Auth;
    send(saslPlainLine(""));
    return;
  }
  if (!startsWith(line, "+OK")) {
    refused(line);
    return;
  }
  if (state_ == State::User) {
    state_ = State::Pass;
    std::string command = "PASS ";
    command.append(request_.password.reveal());
    command += "\r\n";
    send(std::move(command));
    return;
  }
  if (state_ == State::AuthContinue) {
    fail(BackendFailure::Unavailable, "back-end accepted AUTH without credentials");
    return;
  }
  succeed({});
}

void Pop3BackendLogin::refused(std::string_view line) {
  const std::string code = responseCode(line);
  // A refusal that is not about the user's credentials, after a login chosen from memory: the
  // back-end may have changed (no more SASL PLAIN). Ask it again next time.
  if (from_memory_ && code != "AUTH" && code != "IN-USE" && code != "LOGIN-DELAY") {
    backend_.pop3_capabilities.forget();
  }
  if (!startsWith(line, "-ERR")) {
    fail(BackendFailure::Unavailable, "unexpected back-end answer to login");
    return;
  }
  if (code == "AUTH") {
    fail(BackendFailure::AuthFailed, "back-end refused login: AUTH");
  } else if (code == "IN-USE") {
    fail(BackendFailure::InUse, "back-end mailbox in use");
  } else if (code == "SYS/PERM") {
    fail(BackendFailure::Permanent, "back-end login failed: SYS/PERM");
  } else if (code == "LOGIN-DELAY") {
    fail(BackendFailure::LoginDelay, "back-end login failed: LOGIN-DELAY");
  } else if (code.empty() && !auth_resp_code_) {
    // A server without RFC 3206 codes cannot say why; refused credentials is what it means.
    fail(BackendFailure::AuthFailed, "back-end refused login");
  } else {
    // The code is the back-end's text: bounded before it goes to the log.
    fail(BackendFailure::Unavailable,
         "back-end login failed: " + (code.empty() ? std::string("-ERR") : code.substr(0, 32)));
  }
}

}  // namespace gatehouse
