// SMTP login replay: EHLO, STARTTLS, XCLIENT or AUTH PLAIN, one expected reply per state.
#include "backends/smtp_backend_login.h"

namespace gatehouse {
namespace {

// A reply with more lines than this during login is not an SMTP server we want to talk to.
constexpr size_t kMaxReplyLines = 100;
// An SMTP command line, CRLF included (RFC 5321 4.5.3.1.4). An AUTH whose initial response would
// make it longer goes without one, the response following the 334 (RFC 4954 4).
constexpr size_t kMaxCommandLine = 512;

bool isTemporary(int code) {
  return code >= 400 && code < 500;
}

}  // namespace

void SmtpBackendLogin::onLine(std::string_view line) {
  auto reply = smtp::parseReplyLine(line);
  if (!reply) {
    fail(BackendFailure::Unavailable, "unparsable back-end reply");
    return;
  }
  if (lines_.empty()) code_ = reply->code;
  if (reply->code != code_ || lines_.size() >= kMaxReplyLines) {
    fail(BackendFailure::Unavailable, "malformed multi-line back-end reply");
    return;
  }
  lines_.emplace_back(reply->text);
  if (!reply->last) return;
  std::vector<std::string> lines;
  lines.swap(lines_);
  onReply(code_, lines);  // may end in `done`, which may destroy this object
}

void SmtpBackendLogin::onReply(int code, const std::vector<std::string>& lines) {
  std::string reason = std::to_string(code);
  switch (state_) {
    case State::Greeting:
      if (code != 220) {
        fail(BackendFailure::Unavailable, "back-end greeting " + reason);
        return;
      }
      sendEhlo(hostname_);
      return;
    case State::Ehlo:
      onEhlo(code, lines);
      return;
    case State::StartTls:
      if (code != 220) {
        fail(BackendFailure::Unavailable, "back-end refused STARTTLS: " + reason);
        return;
      }
      upgradeToTls();
      sendEhlo(hostname_);  // what was learnt before TLS no longer counts (RFC 3207 4.2)
      return;
    case State::Xclient:
      if (code == 220) {
        // XCLIENT restarts the session as if the client had connected: greet it again, with the
        // client's own EHLO name so that the Received header shows what the client said.
        xclient_done_ = true;
        sendEhlo(request_.client_helo.empty() ? hostname_ : request_.client_helo);
        return;
      }
      if (!isTemporary(code) && smtp::findKeyword(keywords_, "AUTH") != nullptr) {
        sendAuth();  // offered but not granted to us: fall back to the user's credentials
        return;
      }
      fail(BackendFailure::Unavailable, "back-end refused XCLIENT: " + reason);
      return;
    case State::AuthContinue:
      if (code == 334) {
        state_ = State::Auth;
        send(saslPlainLine(""));
        return;
      }
      fail(BackendFailure::Unavailable, "back-end refused AUTH PLAIN: " + reason);
      return;
    case State::Auth:
      if (code == 235) {
        succeed(keywordList());
      } else if (code == 535) {
        fail(BackendFailure::AuthFailed, "back-end refused AUTH: " + reason);
      } else {
        // 334 (we sent the initial response), 4xx, 534 too weak, 538 TLS needed: not the user's
        // fault, a temporary failure for them and a configuration problem for the operator.
        fail(BackendFailure::Unavailable, "back-end AUTH failed: " + reason);
      }
      return;
  }
}

void SmtpBackendLogin::onEhlo(int code, const std::vector<std::string>& lines) {
  if (code != 250) {
    fail(BackendFailure::Unavailable, "back-end refused EHLO: " + std::to_string(code));
    return;
  }
  keywords_.clear();
  for (size_t i = 1; i < lines.size(); ++i) {  // the first line is the server's name
    smtp::EhloKeyword keyword = smtp::parseEhloLine(lines[i]);
    if (!keyword.name.empty()) keywords_.push_back(std::move(keyword));
  }
  if (wantsStartTls()) {
    if (smtp::findKeyword(keywords_, "STARTTLS") == nullptr) {
      fail(BackendFailure::Unavailable, "back-end does not offer STARTTLS");
      return;
    }
    state_ = State::StartTls;
    send("STARTTLS\r\n");
    return;
  }
  if (xclient_done_) {
    succeed(keywordList());
    return;
  }
  present();
}

// Postfix advertises XCLIENT only to the hosts in smtpd_authorized_xclient_hosts: seeing it means
// the back-end trusts us to name the user and the client.
void SmtpBackendLogin::present() {
  const smtp::EhloKeyword* xclient = smtp::findKeyword(keywords_, "XCLIENT");
  if (xclient != nullptr && smtp::hasParam(*xclient, "LOGIN") && smtp::hasParam(*xclient, "ADDR") &&
      !request_.client_ip.empty()) {
    sendXclient();
    return;
  }
  const smtp::EhloKeyword* auth = smtp::findKeyword(keywords_, "AUTH");
  if (auth != nullptr && smtp::hasParam(*auth, "PLAIN")) {
    sendAuth();
    return;
  }
  fail(BackendFailure::Unavailable, "back-end offers neither XCLIENT nor AUTH PLAIN");
}

void SmtpBackendLogin::sendEhlo(const std::string& name) {
  state_ = State::Ehlo;
  send("EHLO " + name + "\r\n");
}

void SmtpBackendLogin::sendXclient() {
  const smtp::EhloKeyword& offered = *smtp::findKeyword(keywords_, "XCLIENT");
  std::string command = "XCLIENT LOGIN=" + smtp::xtext(request_.user);
  // Postfix wants IPv6 client addresses tagged (XCLIENT_README).
  bool v6 = request_.client_ip.find(':') != std::string::npos;
  command += " ADDR=" + smtp::xtext((v6 ? "IPV6:" : "") + request_.client_ip);
  auto attribute = [&](std::string_view name, const std::string& value, bool encode = true) {
    if (value.empty() || !smtp::hasParam(offered, name)) return;
    command += " " + std::string(name) + "=" + (encode ? smtp::xtext(value) : value);
  };
  attribute("PORT", request_.client_port);
  // We do no reverse look-up; without NAME the back-end would keep Gatehouse's own name.
  attribute("NAME", "[UNAVAILABLE]", false);
  attribute("HELO", request_.client_helo);
  bool local_v6 = request_.local_ip.find(':') != std::string::npos;
  attribute("DESTADDR", request_.local_ip.empty() || !local_v6 ? request_.local_ip
                                                               : "IPV6:" + request_.local_ip);
  attribute("DESTPORT", request_.local_port);
  state_ = State::Xclient;
  send(command + "\r\n");
}

void SmtpBackendLogin::sendAuth() {
  if (std::optional<std::string> command = saslPlainLineWithin("AUTH PLAIN ", kMaxCommandLine)) {
    state_ = State::Auth;
    send(std::move(*command));
    return;
  }
  state_ = State::AuthContinue;
  send("AUTH PLAIN\r\n");
}

std::string SmtpBackendLogin::keywordList() const {
  std::string list;
  for (const smtp::EhloKeyword& k : keywords_) {
    if (!list.empty()) list += ' ';
    list += k.name;
  }
  return list;
}

}  // namespace gatehouse
