#include "proxy/imap/imap_session.h"

#include "backends/imap_backend_login.h"
#include "proxy/imap/imap_id.h"

namespace gatehouse {

std::unique_ptr<Session> makeImapSession(SessionContext context, std::unique_ptr<Stream> client) {
  return std::make_unique<ImapSession>(std::move(context), std::move(client));
}

ImapSession::ImapSession(SessionContext context, std::unique_ptr<Stream> client)
    : ProxySession(std::move(context), std::move(client), Protocol::Imap) {
  const Limits& limits = ctx_.config->limits;
  imap::ParserLimits parser_limits;
  parser_limits.max_line = limits.max_line;
  parser_limits.max_literal = limits.max_auth_literal;
  parser_limits.max_command = limits.max_line + 2 * limits.max_auth_literal;
  parser_ = std::make_unique<imap::CommandParser>(parser_limits);
}

void ImapSession::onStart() {
  reply("* OK [CAPABILITY " + capabilities() + "] " + ctx_.config->hostname +
        " IMAP proxy ready.\r\n");
}

std::string ImapSession::capabilities() const {
  std::string caps = "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE";
  if (ctx_.listener->tls == TlsMode::StartTls && tlsAvailable() && !tlsActive())
    caps += " STARTTLS";
  caps += authAllowed() ? " AUTH=PLAIN AUTH=LOGIN" : " LOGINDISABLED";
  return caps;
}

std::string ImapSession::goodbye(Goodbye reason) const {
  switch (reason) {
    case Goodbye::PreauthTimeout:
      return "* BYE Disconnected for inactivity.\r\n";
    case Goodbye::IdleTimeout:
      return "* BYE Autologout; idle for too long.\r\n";
    case Goodbye::Shutdown:
      return "* BYE [UNAVAILABLE] Server shutting down.\r\n";
    case Goodbye::BackendLost:
      return "* BYE [UNAVAILABLE] Connection to the mailbox server lost.\r\n";
    case Goodbye::TooManyErrors:
      return "* BYE Too many invalid commands.\r\n";
    case Goodbye::TooManyAuthFailures:
      return "* BYE Too many authentication failures.\r\n";
    case Goodbye::TooManyConnections:
      return "* BYE [UNAVAILABLE] Too many connections, try again later.\r\n";
  }
  return {};
}

void ImapSession::onClientData(std::string_view data) {
  parser_->feed(data);
  processInput();
}

void ImapSession::processInput() {
  auto alive = alive_;
  while (*alive && acceptingCommands()) {
    imap::Result r = saslActive() ? parser_->nextLine() : parser_->next();
    if (r.kind == imap::ResultKind::NeedMore) break;
    if (r.kind == imap::ResultKind::Continue) {
      reply("+ OK\r\n");
      continue;
    }
    if (r.kind == imap::ResultKind::Error) {
      if (r.error.fatal) {
        finish("* BYE " + r.error.message + "\r\n", "protocol_error");
        return;
      }
      std::string tag = saslActive() ? auth_tag_ : r.error.tag;
      cancelSasl();
      badCommand(tag, r.error.message);
      continue;
    }
    if (saslActive()) {
      continueSasl(r.command.name);
    } else {
      dispatch(r.command);
    }
  }
}

void ImapSession::badCommand(const std::string& tag, std::string_view message) {
  reply((tag.empty() ? std::string("*") : tag) + " BAD " + std::string(message) + "\r\n");
  countBadCommand();
}

void ImapSession::dispatch(const imap::Command& c) {
  const std::string& name = c.name;
  if (name == "CAPABILITY") {
    cmdCapability(c);
  } else if (name == "NOOP") {
    reply(c.tag + " OK NOOP completed.\r\n");
  } else if (name == "LOGOUT") {
    reply("* BYE Logging out.\r\n" + c.tag + " OK Logout completed.\r\n");
    finish(std::string_view(), "logout");
  } else if (name == "STARTTLS") {
    cmdStartTls(c);
  } else if (name == "ID") {
    cmdId(c);
  } else if (name == "ENABLE") {
    // Advertised (clients look for it before login) but only meaningful once authenticated
    // (RFC 5161 3.1): answered as Dovecot's login process does, and asked again after login.
    reply("* ENABLED\r\n" + c.tag + " OK ENABLE ignored in non-authenticated state.\r\n");
  } else if (name == "LOGIN") {
    cmdLogin(c);
  } else if (name == "AUTHENTICATE") {
    cmdAuthenticate(c);
  } else {
    badCommand(c.tag, "Command not allowed before login.");
  }
}

void ImapSession::cmdCapability(const imap::Command& c) {
  reply("* CAPABILITY " + capabilities() + "\r\n" + c.tag + " OK Capability completed.\r\n");
}

void ImapSession::cmdId(const imap::Command& c) {
  if (!imap::isValidIdArgument(c.args)) {
    badCommand(c.tag, "Invalid ID arguments.");
    return;
  }
  reply("* ID (\"name\" \"Gatehouse\")\r\n" + c.tag + " OK ID completed.\r\n");
}

void ImapSession::cmdStartTls(const imap::Command& c) {
  if (ctx_.listener->tls != TlsMode::StartTls || !tlsAvailable()) {
    badCommand(c.tag, "STARTTLS is not available on this port.");
    return;
  }
  if (tlsActive()) {
    badCommand(c.tag, "TLS is already active.");
    return;
  }
  reply(c.tag + " OK Begin TLS negotiation now.\r\n");
  flush();
  // Whatever the client sent after STARTTLS in plaintext is dropped, never executed
  // (CVE-2011-0411): commands only count once they arrive inside TLS.
  parser_->discardBuffered();
  startTls();
}

bool ImapSession::refuseUnlessAuthAllowed(const std::string& tag) {
  if (authAllowed()) return false;
  reply(tag +
        " NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure connections.\r\n");
  return true;
}

void ImapSession::cmdLogin(const imap::Command& c) {
  if (c.args.size() != 2 || !imap::isAstring(c.args[0]) || !imap::isAstring(c.args[1])) {
    badCommand(c.tag, "LOGIN expects a user name and a password.");
    return;
  }
  if (refuseUnlessAuthAllowed(c.tag)) return;
  auth_tag_ = c.tag;
  authenticate(c.args[0].value, Secret(c.args[1].value));
}

void ImapSession::cmdAuthenticate(const imap::Command& c) {
  if (c.args.empty() || c.args.size() > 2 || c.args[0].kind != imap::TokenKind::Atom ||
      (c.args.size() == 2 && c.args[1].kind != imap::TokenKind::Atom)) {
    badCommand(c.tag, "AUTHENTICATE expects a mechanism and an optional initial response.");
    return;
  }
  if (refuseUnlessAuthAllowed(c.tag)) return;
  auto mechanism = SaslServer::mechanismFrom(c.args[0].value);
  if (!mechanism) {
    reply(c.tag + " NO Unsupported authentication mechanism.\r\n");
    return;
  }
  auth_tag_ = c.tag;
  std::optional<std::string_view> initial;
  if (c.args.size() == 2) initial = c.args[1].value;  // SASL-IR, RFC 4959
  startSasl(*mechanism, initial);
}

std::string ImapSession::saslChallenge(std::string_view challenge) const {
  return "+ " + std::string(challenge) + "\r\n";
}

void ImapSession::onSaslAborted() {
  reply(auth_tag_ + " BAD Authentication aborted by client.\r\n");
}

void ImapSession::onSaslMalformed() {
  badCommand(auth_tag_, "Invalid SASL response.");
}

void ImapSession::onLoginFailed(LoginFailure failure) {
  switch (failure) {
    case LoginFailure::Denied:
      reply(auth_tag_ + " NO [AUTHENTICATIONFAILED] Authentication failed.\r\n");
      return;
    case LoginFailure::Disabled:
      reply(auth_tag_ + " NO [AUTHORIZATIONFAILED] IMAP access is disabled for this account.\r\n");
      return;
    case LoginFailure::DirectoryTempFail:
      reply(
          auth_tag_ +
          " NO [UNAVAILABLE] Authentication service temporarily unavailable, try again later.\r\n");
      return;
    case LoginFailure::BackendUnavailable:
    case LoginFailure::BackendPermanent:  // POP3's codes: an IMAP back-end does not send them
    case LoginFailure::BackendLoginDelay:
      reply(auth_tag_ +
            " NO [UNAVAILABLE] Mailbox server temporarily unavailable, try again later.\r\n");
      return;
    case LoginFailure::BackendInUse:
      reply(auth_tag_ + " NO [INUSE] Mailbox is in use, try again later.\r\n");
      return;
  }
}

std::string ImapSession::onLoggedIn(const BackendLoginResult& result) {
  reply(auth_tag_ + " OK [CAPABILITY " + result.capabilities + "] Logged in.\r\n");
  std::string pipelined = parser_->takeRemainder();
  parser_.reset();
  return pipelined;
}

std::unique_ptr<BackendLogin> ImapSession::makeBackendLogin(const Backend& backend,
                                                            BackendLoginRequest request,
                                                            BackendLogin::Callback done) {
  return std::make_unique<ImapBackendLogin>(ctx_.loop, backend, std::move(request),
                                            ctx_.config->timeouts, std::move(done));
}

}  // namespace gatehouse
