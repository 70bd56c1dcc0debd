// The POP3 AUTHORIZATION state (RFC 1939, CAPA RFC 2449, STLS RFC 2595, AUTH RFC 5034) answered
// by Gatehouse, with RFC 3206 response codes on every refusal; then the relay.
#include "proxy/pop3/pop3_session.h"

#include "backends/pop3_backend_login.h"

namespace gatehouse {
namespace {

constexpr std::string_view kAuthFailed = "-ERR [AUTH] Authentication failed.\r\n";

}  // namespace

std::unique_ptr<Session> makePop3Session(SessionContext context, std::unique_ptr<Stream> client) {
  return std::make_unique<Pop3Session>(std::move(context), std::move(client));
}

Pop3Session::Pop3Session(SessionContext context, std::unique_ptr<Stream> client)
    : ProxySession(std::move(context), std::move(client), Protocol::Pop3) {
  pop3::ParserLimits limits;
  limits.max_line = ctx_.config->limits.max_line;
  parser_ = std::make_unique<pop3::CommandParser>(limits);
}

void Pop3Session::onStart() {
  // No APOP timestamp in the greeting: APOP needs the clear password on our side.
  reply("+OK " + ctx_.config->hostname + " POP3 proxy ready.\r\n");
}

std::string Pop3Session::goodbye(Goodbye reason) const {
  switch (reason) {
    case Goodbye::PreauthTimeout:
      return "-ERR Disconnected for inactivity.\r\n";
    case Goodbye::IdleTimeout:
      return "-ERR Disconnected for inactivity.\r\n";
    case Goodbye::Shutdown:
      return "-ERR [SYS/TEMP] Server shutting down.\r\n";
    case Goodbye::BackendLost:
      return "-ERR [SYS/TEMP] Connection to the mailbox server lost.\r\n";
    case Goodbye::TooManyErrors:
      return "-ERR Too many invalid commands.\r\n";
    case Goodbye::TooManyAuthFailures:
      return "-ERR [AUTH] Too many authentication failures.\r\n";
    case Goodbye::TooManyConnections:
      return "-ERR [SYS/TEMP] Too many connections, try again later.\r\n";
  }
  return {};
}

void Pop3Session::onClientData(std::string_view data) {
  parser_->feed(data);
  processInput();
}

void Pop3Session::processInput() {
  auto alive = alive_;
  // Commands are answered one by one, in order; a login stops the loop until it is decided
  // (phase Authenticating), so what the client pipelined behind it waits in the parser.
  while (*alive && acceptingCommands()) {
    pop3::Result r = saslActive() ? parser_->nextLine() : parser_->next();
    if (r.kind == pop3::ResultKind::NeedMore) break;
    if (r.kind == pop3::ResultKind::Error) {
      cancelSasl();
      badCommand(r.error);
      continue;
    }
    if (saslActive()) {
      continueSasl(r.line);
    } else {
      dispatch(r.command);
    }
  }
}

void Pop3Session::badCommand(std::string_view message) {
  if (!nextBadCommandIsLast()) reply("-ERR " + std::string(message) + "\r\n");
  countBadCommand();
}

void Pop3Session::dispatch(const pop3::Command& c) {
  const std::string& name = c.name;
  // A USER is only good for the PASS right after it (RFC 1939 section 7).
  std::optional<std::string> user_name = std::move(user_name_);
  user_name_.reset();
  if (name == "CAPA") {
    cmdCapa();
  } else if (name == "QUIT") {
    reply("+OK Logging out.\r\n");
    finish(std::string_view(), "logout");
  } else if (name == "STLS") {
    cmdStls();
  } else if (name == "USER") {
    cmdUser(c);
  } else if (name == "PASS") {
    if (!user_name) {
      badCommand("No user name given.");
      return;
    }
    cmdPass(c, std::move(*user_name));
  } else if (name == "AUTH") {
    cmdAuth(c);
  } else if (name == "APOP") {
    // Not offered (no timestamp in the greeting): refused as Dovecot does, not a bad command.
    reply("-ERR APOP not enabled.\r\n");
  } else {
    // NOOP, STAT, RETR...: valid in the TRANSACTION state only, which starts at the back-end.
    badCommand("Unknown command.");
  }
}

bool Pop3Session::stlsOffered() const {
  return ctx_.listener->tls == TlsMode::StartTls && tlsAvailable() && !tlsActive();
}

void Pop3Session::cmdCapa() {
  // Only what Gatehouse itself does before login, nothing a back-end may lack (TOP and UIDL are
  // optional in RFC 1939, unlike Dovecot's own list): after login the client asks again (RFC 2449
  // section 5) and gets the back-end's list through the relay.
  std::string capa = "+OK Capability list follows.\r\n";
  if (stlsOffered()) capa += "STLS\r\n";
  if (authAllowed()) capa += "USER\r\nSASL PLAIN LOGIN\r\n";
  capa += "RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nIMPLEMENTATION Gatehouse\r\n.\r\n";
  reply(capa);
}

void Pop3Session::cmdStls() {
  if (tlsActive()) {
    badCommand("TLS is already active.");
    return;
  }
  if (!stlsOffered()) {
    badCommand("STLS is not available on this port.");
    return;
  }
  reply("+OK Begin TLS negotiation now.\r\n");
  flush();
  // Whatever the client sent after STLS in plaintext is dropped, never executed (CVE-2011-0411):
  // commands only count once they arrive inside TLS.
  parser_->discardBuffered();
  startTls();
}

bool Pop3Session::refuseUnlessAuthAllowed() {
  if (authAllowed()) return false;
  reply("-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\r\n");
  return true;
}

void Pop3Session::cmdUser(const pop3::Command& c) {
  if (c.args.empty()) {
    badCommand("USER expects a user name.");
    return;
  }
  if (refuseUnlessAuthAllowed()) return;
  // The rest of the line, as Dovecot takes it: the directory decides whether such a name exists.
  user_name_ = c.rest;
  reply("+OK\r\n");
}

void Pop3Session::cmdPass(const pop3::Command& c, std::string login) {
  if (refuseUnlessAuthAllowed()) return;
  // The password is the rest of the line: it may hold spaces (RFC 1939 section 7).
  authenticate(std::move(login), Secret(c.rest));
}

void Pop3Session::cmdAuth(const pop3::Command& c) {
  if (refuseUnlessAuthAllowed()) return;
  if (c.args.empty()) {
    // Bare AUTH lists the mechanisms: not in RFC 5034 but in the older RFC 1734 practice that
    // clients still probe with (Dovecot and Cyrus answer it too).
    reply("+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n");
    return;
  }
  if (c.args.size() > 2) {
    badCommand("AUTH expects a mechanism and an optional initial response.");
    return;
  }
  auto mechanism = SaslServer::mechanismFrom(c.args[0]);
  if (!mechanism) {
    reply("-ERR Unsupported authentication mechanism.\r\n");
    return;
  }
  std::optional<std::string_view> initial;
  if (c.args.size() == 2) initial = c.args[1];  // "=" is an empty initial response
  startSasl(*mechanism, initial);
}

std::string Pop3Session::saslChallenge(std::string_view challenge) const {
  return "+ " + std::string(challenge) + "\r\n";
}

void Pop3Session::onSaslAborted() {
  reply("-ERR Authentication aborted by client.\r\n");
}

void Pop3Session::onSaslMalformed() {
  badCommand("Invalid SASL response.");
}

void Pop3Session::onLoginFailed(LoginFailure failure) {
  switch (failure) {
    case LoginFailure::Denied:
      if (!nextAuthFailureIsLast()) reply(kAuthFailed);  // else the goodbye is the answer
      return;
    case LoginFailure::Disabled:
      reply("-ERR [AUTH] POP3 access is disabled for this account.\r\n");
      return;
    case LoginFailure::DirectoryTempFail:
      reply("-ERR [SYS/TEMP] Authentication service temporarily unavailable, try again later.\r\n");
      return;
    case LoginFailure::BackendUnavailable:
      reply("-ERR [SYS/TEMP] Mailbox server temporarily unavailable, try again later.\r\n");
      return;
    case LoginFailure::BackendInUse:
      reply("-ERR [IN-USE] Mailbox is in use by another POP3 session, try again later.\r\n");
      return;
    case LoginFailure::BackendPermanent:
      reply("-ERR [SYS/PERM] The mailbox server refused access, contact your administrator.\r\n");
      return;
    case LoginFailure::BackendLoginDelay:
      reply("-ERR [LOGIN-DELAY] Minimum time between logins not reached, try again later.\r\n");
      return;
  }
}

std::string Pop3Session::onLoggedIn(const BackendLoginResult&) {
  reply("+OK Logged in.\r\n");
  std::string pipelined = parser_->takeRemainder();
  parser_.reset();
  return pipelined;
}

std::unique_ptr<BackendLogin> Pop3Session::makeBackendLogin(const Backend& backend,
                                                            BackendLoginRequest request,
                                                            BackendLogin::Callback done) {
  return std::make_unique<Pop3BackendLogin>(ctx_.loop, backend, std::move(request),
                                            ctx_.config->timeouts, std::move(done));
}

}  // namespace gatehouse
