#include "backends/imap_backend_login.h"

#include <openssl/mem.h>

#include "proxy/core/ascii.h"
#include "proxy/imap/imap_string.h"

namespace gatehouse {
namespace {

std::string idCommand(const BackendLoginRequest& r) {
  std::string cmd = "I ID (";
  auto field = [&cmd](std::string_view key, const std::string& value) {
    if (value.empty() || !imap::isQuotable(value)) return;
    if (cmd.back() != '(') cmd += ' ';
    imap::appendQuoted(cmd, key);
    cmd += ' ';
    imap::appendQuoted(cmd, value);
  };
  field("x-originating-ip", r.client_ip);
  field("x-originating-port", r.client_port);
  field("x-connected-ip", r.local_ip);
  field("x-connected-port", r.local_port);
  field("x-session-id", r.session_id);
  cmd += ")\r\n";
  return cmd;
}

// Whether a response code (or an untagged data line) starts with `keyword`, as servers may
// send keywords in any case (RFC 3501 section 9: "case-insensitive").
bool startsWithKeyword(std::string_view text, std::string_view keyword) {
  if (!asciiStartsWithIgnoreCase(text, keyword)) return false;
  return text.size() == keyword.size() || text[keyword.size()] == ' ';
}

bool isAlert(const imap::Response& r) {
  return startsWithKeyword(r.code, "ALERT");
}

// The line to the client is Gatehouse's own, so it must be valid IMAP whatever the back-end sent:
// text is 1*TEXT-CHAR, and NUL is no CHAR (RFC 3501 9). 8-bit bytes stay (UTF-8 in practice).
std::string alertLine(std::string_view prefix, std::string_view text) {
  std::string line(prefix);
  for (char c : text) {
    if (c != '\0') line += c;
  }
  line += "\r\n";
  return line;
}

}  // namespace

void ImapBackendLogin::onLine(std::string_view line) {
  auto response = imap::parseResponseLine(line);
  if (!response) {
    fail(BackendFailure::Unavailable, "unparsable back-end response");
    return;
  }
  if (response->kind == imap::ResponseKind::Untagged &&
      response->status == imap::ResponseStatus::Bye) {
    fail(BackendFailure::Unavailable, "back-end said BYE");
    return;
  }
  switch (state_) {
    case State::Greeting:
      onGreeting(*response);
      break;
    case State::StartTls:
      onStartTlsAnswer(*response);
      break;
    case State::Capability:
    case State::PostCapability:
      onCapabilityLine(*response);
      break;
    case State::Login:
    case State::LoginContinue:
    case State::LoginLiteral:
      onLoginAnswer(*response);
      break;
  }
}

void ImapBackendLogin::onGreeting(const imap::Response& r) {
  if (r.kind != imap::ResponseKind::Untagged || r.status != imap::ResponseStatus::Ok) {
    fail(BackendFailure::Unavailable, "unexpected back-end greeting");
    return;
  }
  if (startsWithKeyword(r.code, "CAPABILITY")) noteCapabilities(r.code);
  if (wantsStartTls()) {
    state_ = State::StartTls;
    send("S STARTTLS\r\n");
  } else if (capabilities_.empty()) {
    state_ = State::Capability;
    send("C CAPABILITY\r\n");
  } else {
    sendLogin();
  }
}

void ImapBackendLogin::onStartTlsAnswer(const imap::Response& r) {
  if (r.kind != imap::ResponseKind::Tagged) return;
  if (r.status != imap::ResponseStatus::Ok) {
    fail(BackendFailure::Unavailable, "back-end refused STARTTLS");
    return;
  }
  // Capabilities seen before TLS are not to be trusted after it (RFC 3501 6.2.1).
  capabilities_.clear();
  upgradeToTls();
  state_ = State::Capability;
  send("C CAPABILITY\r\n");
}

void ImapBackendLogin::onCapabilityLine(const imap::Response& r) {
  if (r.kind == imap::ResponseKind::Untagged && r.status == imap::ResponseStatus::None &&
      startsWithKeyword(r.text, "CAPABILITY")) {
    noteCapabilities(r.text);
    return;
  }
  if (state_ == State::PostCapability && r.kind == imap::ResponseKind::Untagged && isAlert(r)) {
    noteAlert(r);  // sent after the login's OK, before the answer to our CAPABILITY
    return;
  }
  if (r.kind != imap::ResponseKind::Tagged) return;
  if (r.status != imap::ResponseStatus::Ok || capabilities_.empty()) {
    fail(BackendFailure::Unavailable, "back-end CAPABILITY failed");
    return;
  }
  if (state_ == State::PostCapability) {
    succeed(capabilities_);
  } else {
    sendLogin();
  }
}

void ImapBackendLogin::noteAlert(const imap::Response& r) {
  // Meant for the user's eyes (RFC 3501 7.1: the client must show it), e.g. a quota warning.
  noteForClient(
      alertLine(r.status == imap::ResponseStatus::No ? "* NO [ALERT] " : "* OK [ALERT] ", r.text));
}

void ImapBackendLogin::noteCapabilities(const std::string& list) {
  auto caps = imap::splitCapabilities(list);
  capabilities_.clear();
  for (const auto& c : caps) {
    if (!capabilities_.empty()) capabilities_ += ' ';
    capabilities_ += c;
  }
}

void ImapBackendLogin::sendLogin() {
  auto caps = imap::splitCapabilities(capabilities_);
  if (imap::hasCapability(caps, "LOGINDISABLED") && !imap::hasCapability(caps, "AUTH=PLAIN")) {
    fail(BackendFailure::Unavailable, "back-end has LOGINDISABLED (needs TLS?)");
    return;
  }
  std::string batch = imap::hasCapability(caps, "ID") ? idCommand(request_) : std::string();
  std::string_view user = request_.user;
  std::string_view pass = request_.password.reveal();
  bool literal_plus = imap::hasCapability(caps, "LITERAL+");
  // LOGINDISABLED forbids LOGIN (RFC 3501 6.2.3), not AUTHENTICATE: PLAIN is used instead.
  bool login_allowed = !imap::hasCapability(caps, "LOGINDISABLED");
  state_ = State::Login;
  if (imap::hasCapability(caps, "AUTH=PLAIN") && imap::hasCapability(caps, "SASL-IR")) {
    std::string line = saslPlainLine("L AUTHENTICATE PLAIN ");
    batch += line;
    OPENSSL_cleanse(line.data(), line.size());
  } else if (login_allowed &&
             ((imap::isQuotable(user) && imap::isQuotable(pass)) || literal_plus)) {
    // Reserved up front: a reallocation would free a copy of the password that nobody wipes.
    batch.reserve(batch.size() + 8 + imap::astringCapacity(user) + 1 + imap::astringCapacity(pass) +
                  2);
    batch += "L LOGIN ";
    imap::appendAstring(batch, user, literal_plus);
    batch += ' ';
    imap::appendAstring(batch, pass, literal_plus);
    batch += "\r\n";
  } else if (imap::hasCapability(caps, "AUTH=PLAIN")) {
    batch += "L AUTHENTICATE PLAIN\r\n";
    state_ = State::LoginContinue;
  } else if (login_allowed) {
    // A plain IMAP4rev1 server (no LITERAL+, no SASL) and a value with 8-bit bytes, say.
    login_parts_ = loginWithLiterals();
    batch += login_parts_.front().reveal();
    login_parts_.pop_front();
    state_ = State::LoginLiteral;
  } else {
    fail(BackendFailure::Unavailable, "back-end offers no way to send these credentials");
    return;
  }
  send(std::move(batch));
}

std::deque<Secret> ImapBackendLogin::loginWithLiterals() const {
  std::deque<Secret> parts;
  std::string part = "L LOGIN ";
  bool first = true;
  for (std::string_view value : {std::string_view(request_.user), request_.password.reveal()}) {
    if (!first) part += ' ';
    first = false;
    if (imap::isQuotable(value)) {
      part.reserve(part.size() + imap::astringCapacity(value) + 3);  // no copy left unwiped
      imap::appendQuoted(part, value);
      continue;
    }
    part += '{' + std::to_string(value.size()) + "}\r\n";
    parts.push_back(Secret::adopt(std::move(part)));
    part = std::string();
    part.reserve(value.size() + 3);
    part.append(value);
  }
  part += "\r\n";
  parts.push_back(Secret::adopt(std::move(part)));
  return parts;
}

void ImapBackendLogin::onLoginAnswer(const imap::Response& r) {
  if (r.kind == imap::ResponseKind::Continuation && state_ == State::LoginContinue) {
    state_ = State::Login;
    send(saslPlainLine(""));
    return;
  }
  if (r.kind == imap::ResponseKind::Continuation && state_ == State::LoginLiteral) {
    send(std::string(login_parts_.front().reveal()));
    login_parts_.pop_front();
    if (login_parts_.empty()) state_ = State::Login;
    return;
  }
  if (r.kind == imap::ResponseKind::Untagged && isAlert(r)) {
    noteAlert(r);
    return;
  }
  if (r.kind != imap::ResponseKind::Tagged || r.tag != "L") return;  // ID's answer and data
  if (r.status != imap::ResponseStatus::Ok && isAlert(r)) {
    // Said untagged: the tagged answer stays Gatehouse's own generic one.
    noteForClient(alertLine("* NO [ALERT] ", r.text));
  }
  if (r.status == imap::ResponseStatus::Ok) {
    if (startsWithKeyword(r.code, "CAPABILITY")) {
      noteCapabilities(r.code);
      succeed(capabilities_);
    } else {
      capabilities_.clear();
      state_ = State::PostCapability;
      send("C CAPABILITY\r\n");
    }
    return;
  }
  // RFC 5530 codes that say "not now" rather than "not you": told as a wrong password, the
  // client would ask its user for one (Dovecot answers [LIMIT] past mail_max_userip_connections).
  if (r.status == imap::ResponseStatus::No && startsWithKeyword(r.code, "INUSE")) {
    fail(BackendFailure::InUse, "back-end mailbox in use: " + r.code);
  } else if (r.status == imap::ResponseStatus::No && !startsWithKeyword(r.code, "UNAVAILABLE") &&
             !startsWithKeyword(r.code, "SERVERBUG") && !startsWithKeyword(r.code, "LIMIT")) {
    fail(BackendFailure::AuthFailed, "back-end refused login: " + r.code);
  } else {
    fail(BackendFailure::Unavailable, "back-end login failed: " + r.code);
  }
}

}  // namespace gatehouse
