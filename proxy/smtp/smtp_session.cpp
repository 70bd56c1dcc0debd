// SMTP submission session: EHLO/HELO, STARTTLS (RFC 3207), AUTH PLAIN/LOGIN (RFC 4954) against
// the directory, 530 for any mail transaction before AUTH, then the guarded relay.
#include "proxy/smtp/smtp_session.h"

#include "backends/smtp_backend_login.h"
#include "proxy/log/log.h"

namespace gatehouse {
namespace {

// RFC 5321 4.5.3.1.2: a domain name is at most 255 octets; an address literal is shorter.
constexpr size_t kMaxHeloName = 255;

// An EHLO/HELO argument we keep and forward (XCLIENT HELO=): one printable ASCII word.
bool isHeloName(std::string_view name) {
  if (name.empty() || name.size() > kMaxHeloName) return false;
  for (char c : name) {
    if (c <= ' ' || c > '~') return false;
  }
  return true;
}

}  // namespace

std::unique_ptr<Session> makeSmtpSession(SessionContext context, std::unique_ptr<Stream> client) {
  return std::make_unique<SmtpSession>(std::move(context), std::move(client));
}

SmtpSession::SmtpSession(SessionContext context, std::unique_ptr<Stream> client)
    : ProxySession(std::move(context), std::move(client), Protocol::Submission),
      hostname_(ctx_.config->hostname),
      // RFC 5321 4.5.3.1.4 allows 512 bytes, but AUTH lines with an initial response may be up
      // to 12288 (RFC 4954 4): the configured line limit covers both.
      parser_(std::make_unique<smtp::CommandParser>(ctx_.config->limits.max_line)) {}

void SmtpSession::onStart() {
  reply("220 " + hostname_ + " ESMTP Gatehouse\r\n");
}

std::string SmtpSession::goodbye(Goodbye reason) const {
  switch (reason) {
    case Goodbye::PreauthTimeout:
    case Goodbye::IdleTimeout:
      return "421 4.4.2 " + hostname_ + " Error: timeout exceeded\r\n";
    case Goodbye::Shutdown:
      return "421 4.3.2 " + hostname_ + " Service shutting down\r\n";
    case Goodbye::BackendLost:
      return "421 4.4.2 " + hostname_ + " Connection to the mail server lost\r\n";
    case Goodbye::TooManyErrors:
      return "421 4.7.0 " + hostname_ + " Error: too many errors\r\n";
    case Goodbye::TooManyAuthFailures:
      return "421 4.7.0 " + hostname_ + " Error: too many authentication failures\r\n";
    case Goodbye::TooManyConnections:
      return "421 4.7.0 " + hostname_ + " Error: too many connections, try again later\r\n";
  }
  return {};
}

std::vector<std::string> SmtpSession::backendsFor(const std::string& home) const {
  const auto& pool = ctx_.config->submission.relay_backends;
  if (pool.empty()) return {home};
  // Sessions spread over the pool without shared state; each member is tried once, in turn.
  std::vector<std::string> order;
  order.reserve(pool.size());
  for (size_t i = 0; i < pool.size(); ++i) order.push_back(pool[(ctx_.id + i) % pool.size()]);
  return order;
}

unsigned SmtpSession::preauthIdleMs() const {
  return ctx_.config->submission.command_timeout_ms;
}

unsigned SmtpSession::relayIdleMs() const {
  return ctx_.config->submission.relay_idle_ms;
}

void SmtpSession::onClientData(std::string_view data) {
  parser_->feed(data);
  processInput();
}

void SmtpSession::processInput() {
  auto alive = alive_;
  while (*alive && acceptingCommands()) {
    smtp::Result r = saslActive() ? parser_->nextLine() : parser_->next();
    if (r.kind == smtp::ResultKind::NeedMore) break;
    if (r.kind == smtp::ResultKind::Error) {
      bool in_auth = saslActive();
      cancelSasl();
      if (r.error == smtp::ErrorKind::LineTooLong) {
        refuse(in_auth ? "500 5.5.6 Authentication Exchange line is too long\r\n"
                       : "500 5.5.2 Error: line too long\r\n");
      } else if (r.error == smtp::ErrorKind::BadCharacter) {
        refuse("500 5.5.2 Error: invalid character in command\r\n");
      } else {
        refuse("500 5.5.2 Error: bad syntax\r\n");
      }
      continue;
    }
    if (saslActive()) {
      continueSasl(r.command.args);
    } else {
      dispatch(r.command);
    }
  }
}

void SmtpSession::refuse(std::string_view text) {
  reply(text);
  countBadCommand();
}

void SmtpSession::junk(std::string_view text) {
  reply(text);
  if (++junk_commands_ > ctx_.config->submission.junk_command_limit) countBadCommand();
}

void SmtpSession::dispatch(const smtp::Command& c) {
  const std::string& verb = c.verb;
  if (verb == "EHLO" || verb == "HELO") {
    cmdEhlo(c, verb == "EHLO");
  } else if (verb == "STARTTLS") {
    cmdStartTls(c);
  } else if (verb == "AUTH") {
    cmdAuth(c);
  } else if (verb == "MAIL" || verb == "RCPT" || verb == "DATA" || verb == "BDAT") {
    // Never an open relay: nothing of a mail transaction happens before AUTH.
    refuse("530 5.7.0 Authentication required\r\n");
    // A refused BDAT's chunk still comes: it is data, never commands (Postfix skips it too).
    if (verb == "BDAT") {
      if (auto size = smtp::bdatChunkSize(c.args)) parser_->skip(*size);
    }
  } else if (verb == "NOOP" || verb == "RSET") {
    junk("250 2.0.0 OK\r\n");
  } else if (verb == "QUIT") {
    reply("221 2.0.0 " + hostname_ + " Bye\r\n");
    finish(std::string_view(), "quit");
  } else if (verb == "HELP") {
    junk("214 2.0.0 See RFC 6409: EHLO, STARTTLS, AUTH, then MAIL, RCPT, DATA\r\n");
  } else if (verb == "VRFY" || verb == "EXPN") {
    // No look-ups for unauthenticated clients: nothing to harvest addresses with.
    junk("502 5.5.1 Error: command not implemented\r\n");
  } else {
    refuse("500 5.5.2 Error: command not recognized\r\n");
  }
}

bool SmtpSession::startTlsOffered() const {
  return ctx_.listener->tls == TlsMode::StartTls && tlsAvailable() && !tlsActive();
}

void SmtpSession::cmdEhlo(const smtp::Command& c, bool extended) {
  std::string_view name = std::string_view(c.args).substr(0, c.args.find(' '));
  if (!isHeloName(name)) {
    refuse(extended ? "501 5.5.4 Syntax: EHLO hostname\r\n"
                    : "501 5.5.4 Syntax: HELO hostname\r\n");
    return;
  }
  helo_ = std::string(name);  // EHLO also resets any transaction (RFC 5321 4.1.4): there is none
  if (!extended) {
    reply("250 " + hostname_ + "\r\n");
    return;
  }
  const SubmissionConfig& submission = ctx_.config->submission;
  std::string text = "250-" + hostname_ + "\r\n250-PIPELINING\r\n";
  text += submission.max_message_size == 0
              ? std::string("250-SIZE\r\n")
              : "250-SIZE " + std::to_string(submission.max_message_size) + "\r\n";
  if (startTlsOffered()) text += "250-STARTTLS\r\n";
  if (authAllowed()) text += "250-AUTH PLAIN LOGIN\r\n";
  text += "250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n";
  reply(text);
}

void SmtpSession::cmdStartTls(const smtp::Command& c) {
  if (tlsActive()) {
    refuse("554 5.5.1 Error: TLS already active\r\n");  // Postfix's answer
    return;
  }
  if (!startTlsOffered()) {
    refuse("502 5.5.1 Error: STARTTLS not available on this port\r\n");
    return;
  }
  if (!c.args.empty()) {
    refuse("501 5.5.4 Syntax: STARTTLS\r\n");
    return;
  }
  reply("220 2.0.0 Ready to start TLS\r\n");
  flush();
  // Whatever the client sent after STARTTLS in plaintext is dropped, never executed
  // (CVE-2011-0411); and all it said before counts for nothing now (RFC 3207 4.2).
  parser_->discardBuffered();
  helo_.clear();
  startTls();
}

void SmtpSession::cmdAuth(const smtp::Command& c) {
  if (helo_.empty()) {
    refuse("503 5.5.1 Error: send EHLO first\r\n");
    return;
  }
  if (!authAllowed()) {
    reply("538 5.7.11 Encryption required for requested authentication mechanism\r\n");
    return;
  }
  std::string_view args = c.args;
  size_t space = args.find(' ');
  std::string_view mechanism_name = args.substr(0, space);
  std::optional<std::string_view> initial;
  if (space != std::string_view::npos) initial = args.substr(space + 1);
  if (mechanism_name.empty() ||
      (initial && (initial->empty() || initial->find(' ') != std::string_view::npos))) {
    refuse("501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n");
    return;
  }
  auto mechanism = SaslServer::mechanismFrom(mechanism_name);
  if (!mechanism) {
    refuse("504 5.5.4 Unrecognized authentication type\r\n");
    return;
  }
  startSasl(*mechanism, initial);
}

std::string SmtpSession::saslChallenge(std::string_view challenge) const {
  return "334 " + std::string(challenge) + "\r\n";
}

void SmtpSession::onSaslAborted() {
  reply("501 5.7.0 Authentication aborted\r\n");
}

void SmtpSession::onSaslMalformed() {
  refuse("501 5.5.2 Cannot decode response\r\n");
}

void SmtpSession::onLoginFailed(LoginFailure failure) {
  switch (failure) {
    case LoginFailure::Denied:
      reply("535 5.7.8 Authentication credentials invalid\r\n");
      return;
    case LoginFailure::Disabled:
      reply("535 5.7.8 Mail submission is not enabled for this account\r\n");
      return;
    case LoginFailure::DirectoryTempFail:
      reply("454 4.7.0 Temporary authentication failure, try again later\r\n");
      return;
    case LoginFailure::BackendUnavailable:
    case LoginFailure::BackendInUse:
    case LoginFailure::BackendPermanent:
    case LoginFailure::BackendLoginDelay:
      reply(
          "454 4.7.0 Temporary authentication failure: mail server unavailable, try again "
          "later\r\n");
      return;
  }
}

std::string SmtpSession::onLoggedIn(const BackendLoginResult&) {
  reply("235 2.7.0 Authentication successful\r\n");
  std::string pipelined = parser_->takeRemainder();
  parser_.reset();
  return pipelined;
}

bool SmtpSession::onClientBytes(std::string_view data) {
  if (guard_.fromClient(data)) return true;
  log::warn("refused client command after login",
            {{"session", sessionId()}, {"user", user_}, {"verb", guard_.refusedVerb()}});
  finish("421 4.7.0 " + hostname_ + " Error: " + guard_.refusedVerb() +
             " not permitted, closing connection\r\n",
         "refused_command");
  return false;
}

std::string_view SmtpSession::rewriteBackendBytes(std::string_view data, std::string& scratch) {
  return guard_.fromBackend(data, scratch);
}

std::unique_ptr<BackendLogin> SmtpSession::makeBackendLogin(const Backend& backend,
                                                            BackendLoginRequest request,
                                                            BackendLogin::Callback done) {
  request.client_helo = helo_;
  return std::make_unique<SmtpBackendLogin>(ctx_.loop, backend, std::move(request),
                                            ctx_.config->timeouts, hostname_, std::move(done));
}

}  // namespace gatehouse
