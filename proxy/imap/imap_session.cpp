#include "proxy/imap/imap_session.h"

#include <openssl/mem.h>

#include "backends/backend_registry.h"
#include "proxy/imap/imap_string.h"
#include "proxy/log/log.h"
#include "proxy/net/tcp_stream.h"
#include "tls/tls_wrap.h"

namespace gatehouse {
namespace {

// How long a client may take to close after our goodbye before we close on it.
constexpr unsigned kLingerMs = 2000;

constexpr std::string_view kAuthFailed = "NO [AUTHENTICATIONFAILED] Authentication failed.";
constexpr std::string_view kAuthUnavailable =
    "NO [UNAVAILABLE] Authentication service temporarily unavailable, try again later.";
constexpr std::string_view kBackendUnavailable =
    "NO [UNAVAILABLE] Mailbox server temporarily unavailable, try again later.";

bool isStringToken(const imap::Token& t) {
  return t.kind == imap::TokenKind::Atom || t.kind == imap::TokenKind::String;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(a[i])) != std::toupper(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// RFC 4616: [authzid] NUL authcid NUL passwd. We log in as authcid only; an authzid naming
// someone else would be a request to act as another user, which we never grant.
bool splitSaslPlain(std::string_view decoded, std::string& user, Secret& password) {
  auto first = decoded.find('\0');
  if (first == std::string_view::npos) return false;
  auto second = decoded.find('\0', first + 1);
  if (second == std::string_view::npos) return false;
  std::string_view authzid = decoded.substr(0, first);
  std::string_view authcid = decoded.substr(first + 1, second - first - 1);
  std::string_view passwd = decoded.substr(second + 1);
  if (authcid.empty() || passwd.find('\0') != std::string_view::npos) return false;
  if (!authzid.empty() && authzid != authcid) return false;
  user = std::string(authcid);
  password = Secret(passwd);
  return true;
}

}  // namespace

std::unique_ptr<Session> makeImapSession(SessionContext context, std::unique_ptr<Stream> client) {
  return std::make_unique<ImapSession>(std::move(context), std::move(client));
}

ImapSession::ImapSession(SessionContext context, std::unique_ptr<Stream> client)
    : ctx_(std::move(context)), client_(std::move(client)), timer_(ctx_.loop) {
  const Limits& limits = ctx_.config->limits;
  imap::ParserLimits parser_limits;
  parser_limits.max_line = limits.max_line;
  parser_limits.max_literal = limits.max_auth_literal;
  parser_limits.max_command = limits.max_line + 2 * limits.max_auth_literal;
  parser_ = std::make_unique<imap::CommandParser>(parser_limits);
  started_ms_ = uv_now(ctx_.loop);
}

ImapSession::~ImapSession() {
  *alive_ = false;
  closeNow();
}

void ImapSession::start() {
  if (ctx_.listener->tls == TlsMode::Implicit && ctx_.tls) {
    client_ = wrapServerTls(std::move(client_), *ctx_.tls, ctx_.loop);
  }
  client_->setHandler(this);
  client_->readStart();
  reply("* OK [CAPABILITY " + capabilities() + "] " + ctx_.config->hostname +
        " IMAP proxy ready.\r\n");
  flush();
  timer_.start(ctx_.config->timeouts.preauth_idle_ms,
               [this] { finish("* BYE Disconnected for inactivity.\r\n", "preauth_timeout"); });
}

std::string ImapSession::capabilities() const {
  std::string caps = "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE";
  bool can_starttls = ctx_.listener->tls == TlsMode::StartTls && !tlsActive();
  if (can_starttls) caps += " STARTTLS";
  if (ctx_.listener->require_tls_for_auth && !tlsActive()) {
    caps += " LOGINDISABLED";
  } else {
    caps += " AUTH=PLAIN AUTH=LOGIN";
  }
  return caps;
}

void ImapSession::reply(std::string_view text) { out_.append(text); }

void ImapSession::flush() {
  if (out_.empty() || !client_) return;
  preauth_bytes_out_ += out_.size();
  client_->write(out_);
  std::string().swap(out_);  // hold no buffer while waiting for the client
}

void ImapSession::onRead(std::string_view data) {
  if (state_ == State::Closing || state_ == State::Closed) return;  // draining after goodbye
  preauth_bytes_in_ += data.size();
  parser_->feed(data);
  timer_.restart(ctx_.config->timeouts.preauth_idle_ms);
  processInput();
}

void ImapSession::processInput() {
  auto alive = alive_;
  while (*alive && (state_ == State::PreAuth || state_ == State::SaslResponse)) {
    bool sasl = state_ == State::SaslResponse;
    imap::Result r = sasl ? parser_->nextLine() : parser_->next();
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
      if (sasl) {
        state_ = State::PreAuth;
        badCommand(auth_tag_, r.error.message);
      } else {
        badCommand(r.error.tag, r.error.message);
      }
      continue;
    }
    if (sasl) {
      handleSaslLine(r.command.name);
    } else {
      dispatch(r.command);
    }
  }
  if (*alive) flush();
}

void ImapSession::badCommand(const std::string& tag, std::string_view message) {
  reply((tag.empty() ? std::string("*") : tag) + " BAD " + std::string(message) + "\r\n");
  if (++bad_commands_ >= ctx_.config->limits.max_bad_commands) {
    finish("* BYE Too many invalid commands.\r\n", "too_many_errors");
  }
}

void ImapSession::dispatch(const imap::Command& c) {
  const std::string& name = c.name;
  if (name == "CAPABILITY") {
    cmdCapability(c);
  } else if (name == "NOOP") {
    reply(c.tag + " OK NOOP completed.\r\n");
  } else if (name == "LOGOUT") {
    reply("* BYE Logging out.\r\n" + c.tag + " OK Logout completed.\r\n");
    finish({}, "logout");
  } else if (name == "STARTTLS") {
    cmdStartTls(c);
  } else if (name == "ID") {
    cmdId(c);
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
  bool valid = c.args.size() == 1 && c.args[0].kind == imap::TokenKind::Nil;
  if (!valid && !c.args.empty() && c.args.front().kind == imap::TokenKind::ListStart &&
      c.args.back().kind == imap::TokenKind::ListEnd) {
    valid = true;
    for (size_t i = 1; i + 1 < c.args.size(); ++i) {
      if (c.args[i].kind == imap::TokenKind::ListStart || c.args[i].kind == imap::TokenKind::ListEnd) {
        valid = false;
      }
    }
  }
  if (!valid) {
    badCommand(c.tag, "Invalid ID arguments.");
    return;
  }
  reply("* ID (\"name\" \"Gatehouse\")\r\n" + c.tag + " OK ID completed.\r\n");
}

void ImapSession::cmdStartTls(const imap::Command& c) {
  if (ctx_.listener->tls != TlsMode::StartTls || !ctx_.tls) {
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
  client_->setHandler(nullptr);
  client_ = wrapServerTls(std::move(client_), *ctx_.tls, ctx_.loop);
  client_->setHandler(this);
  client_->readStart();
}

bool ImapSession::authAllowed(const std::string& tag) {
  if (ctx_.listener->require_tls_for_auth && !tlsActive()) {
    reply(tag +
          " NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure connections.\r\n");
    return false;
  }
  return true;
}

void ImapSession::cmdLogin(const imap::Command& c) {
  if (c.args.size() != 2 || !isStringToken(c.args[0]) || !isStringToken(c.args[1])) {
    badCommand(c.tag, "LOGIN expects a user name and a password.");
    return;
  }
  if (!authAllowed(c.tag)) return;
  authenticate(c.tag, c.args[0].value, Secret(c.args[1].value));
}

void ImapSession::cmdAuthenticate(const imap::Command& c) {
  if (c.args.empty() || c.args.size() > 2 || c.args[0].kind != imap::TokenKind::Atom ||
      (c.args.size() == 2 && c.args[1].kind != imap::TokenKind::Atom)) {
    badCommand(c.tag, "AUTHENTICATE expects a mechanism and an optional initial response.");
    return;
  }
  if (!authAllowed(c.tag)) return;
  const std::string& mechanism = c.args[0].value;
  auth_tag_ = c.tag;
  sasl_user_.clear();
  if (iequals(mechanism, "PLAIN")) {
    sasl_mechanism_ = SaslMechanism::Plain;
  } else if (iequals(mechanism, "LOGIN")) {
    sasl_mechanism_ = SaslMechanism::Login;
  } else {
    reply(c.tag + " NO Unsupported authentication mechanism.\r\n");
    return;
  }
  state_ = State::SaslResponse;
  if (c.args.size() == 2) {
    // SASL-IR (RFC 4959): "=" stands for an empty initial response.
    handleSaslLine(c.args[1].value == "=" ? std::string_view() : std::string_view(c.args[1].value));
    return;
  }
  reply(sasl_mechanism_ == SaslMechanism::Plain ? "+ \r\n" : "+ VXNlcm5hbWU6\r\n");
}

void ImapSession::handleSaslLine(std::string_view line) {
  if (line == "*") {
    state_ = State::PreAuth;
    reply(auth_tag_ + " BAD Authentication aborted by client.\r\n");
    return;
  }
  auto decoded = imap::base64Decode(line);
  if (!decoded) {
    state_ = State::PreAuth;
    badCommand(auth_tag_, "Invalid base64 data.");
    return;
  }
  if (decoded->find('\0') != std::string::npos && sasl_mechanism_ == SaslMechanism::Login) {
    OPENSSL_cleanse(decoded->data(), decoded->size());
    state_ = State::PreAuth;
    authFailed(auth_tag_, kAuthFailed);
    return;
  }
  if (sasl_mechanism_ == SaslMechanism::Login) {
    if (sasl_user_.empty() && !decoded->empty()) {
      sasl_user_ = std::move(*decoded);
      reply("+ UGFzc3dvcmQ6\r\n");
      return;
    }
    if (sasl_user_.empty()) {
      state_ = State::PreAuth;
      authFailed(auth_tag_, kAuthFailed);
      return;
    }
    Secret password(*decoded);
    OPENSSL_cleanse(decoded->data(), decoded->size());
    authenticate(auth_tag_, std::move(sasl_user_), std::move(password));
    return;
  }
  std::string user;
  Secret password;
  bool ok = splitSaslPlain(*decoded, user, password);
  OPENSSL_cleanse(decoded->data(), decoded->size());
  if (!ok) {
    state_ = State::PreAuth;
    authFailed(auth_tag_, kAuthFailed);
    return;
  }
  authenticate(auth_tag_, std::move(user), std::move(password));
}

void ImapSession::authenticate(std::string tag, std::string login, Secret password) {
  auth_tag_ = std::move(tag);
  user_ = login;
  // Nothing with a NUL reaches the directory or a back-end (IMAP strings cannot carry one).
  if (login.empty() || login.find('\0') != std::string::npos ||
      password.reveal().find('\0') != std::string_view::npos) {
    state_ = State::PreAuth;
    authFailed(auth_tag_, kAuthFailed);
    return;
  }
  state_ = State::Authenticating;
  client_->readStop();
  flush();
  Credentials credentials;
  credentials.login = std::move(login);
  credentials.password = password;
  credentials.protocol = Protocol::Imap;
  std::string port;
  splitAddress(ctx_.client_address, credentials.client_ip, port);
  pending_auth_ = ctx_.directory->authenticate(
      ctx_.mailbox, std::move(credentials),
      [this, password = std::move(password)](AuthResult result) mutable {
        onAuthResult(std::move(result), std::move(password));
      });
}

void ImapSession::onAuthResult(AuthResult result, Secret password) {
  pending_auth_.reset();
  switch (result.status) {
    case AuthStatus::Denied:
      log::info("auth denied", {{"session", formatSessionId(ctx_.id)}, {"user", user_},
                                {"reason", result.reason}});
      authFailed(auth_tag_, kAuthFailed);
      resumePreAuth();
      return;
    case AuthStatus::Disabled:
      authFailed(auth_tag_, "NO [AUTHORIZATIONFAILED] IMAP access is disabled for this account.");
      resumePreAuth();
      return;
    case AuthStatus::TempFail:
      log::warn("auth tempfail", {{"session", formatSessionId(ctx_.id)}, {"user", user_},
                                  {"reason", result.reason}});
      reply(auth_tag_ + " " + std::string(kAuthUnavailable) + "\r\n");
      resumePreAuth();
      return;
    case AuthStatus::Ok: break;
  }
  const Backend* backend = ctx_.backends->find(result.route.backend);
  if (backend == nullptr || backend->port(Protocol::Imap) == 0) {
    // The directory named a host the configuration does not: never connect to it.
    log::error("route to unknown back-end", {{"session", formatSessionId(ctx_.id)},
                                             {"user", user_}, {"backend", result.route.backend}});
    reply(auth_tag_ + " " + std::string(kBackendUnavailable) + "\r\n");
    resumePreAuth();
    return;
  }
  user_ = result.route.user;
  backend_name_ = backend->config.name;
  state_ = State::BackendLogin;
  BackendLoginRequest request;
  request.user = result.route.user;
  request.password = std::move(password);
  splitAddress(ctx_.client_address, request.client_ip, request.client_port);
  splitAddress(ctx_.local_address, request.local_ip, request.local_port);
  request.session_id = formatSessionId(ctx_.id);
  login_ = std::make_unique<ImapBackendLogin>(
      ctx_.loop, *backend, std::move(request), ctx_.config->timeouts,
      [this](BackendLoginResult r) { onBackendLogin(std::move(r)); });
  login_->start();
}

void ImapSession::onBackendLogin(BackendLoginResult result) {
  auto login = std::move(login_);  // destroyed when this call returns, not before
  if (result.failure == BackendFailure::None) {
    startRelay(std::move(result));
    return;
  }
  log::warn("back-end login failed", {{"session", formatSessionId(ctx_.id)}, {"user", user_},
                                      {"backend", backend_name_}, {"reason", result.reason}});
  if (result.failure == BackendFailure::AuthFailed) {
    authFailed(auth_tag_, kAuthFailed);
  } else {
    reply(auth_tag_ + " " + std::string(kBackendUnavailable) + "\r\n");
  }
  backend_name_.clear();
  resumePreAuth();
}

void ImapSession::authFailed(const std::string& tag, std::string_view answer) {
  reply(tag + " " + std::string(answer) + "\r\n");
  if (++auth_failures_ >= ctx_.config->limits.max_auth_failures) {
    finish("* BYE Too many authentication failures.\r\n", "auth_failed");
  }
}

void ImapSession::resumePreAuth() {
  if (state_ == State::Closing || state_ == State::Closed) return;
  state_ = State::PreAuth;
  client_->readStart();
  processInput();  // commands the client pipelined behind the failed login
}

void ImapSession::startRelay(BackendLoginResult result) {
  backend_ = std::move(result.stream);
  state_ = State::Relaying;
  reply(auth_tag_ + " OK [CAPABILITY " + result.capabilities + "] Logged in.\r\n");
  flush();
  std::string pipelined = parser_->takeRemainder();
  parser_.reset();
  RelayObserver& observer = *this;
  relay_ = std::make_unique<Relay>(ctx_.loop, *client_, *backend_, observer);
  relay_->start();
  auto alive = alive_;
  if (!result.leftover.empty()) relay_->inject(RelaySide::Backend, result.leftover);
  if (*alive && !pipelined.empty() && state_ == State::Relaying) {
    relay_->inject(RelaySide::Client, pipelined);
  }
  if (*alive && state_ == State::Relaying) armRelayIdleTimer(ctx_.config->timeouts.session_idle_ms);
}

void ImapSession::armRelayIdleTimer(unsigned ms) {
  timer_.start(ms, [this] {
    uint64_t idle_for = uv_now(ctx_.loop) - relay_->lastActivityMs();
    unsigned limit = ctx_.config->timeouts.session_idle_ms;
    if (idle_for < limit) {
      armRelayIdleTimer(static_cast<unsigned>(limit - idle_for));
      return;
    }
    finish("* BYE Autologout; idle for too long.\r\n", "idle_timeout");
  });
}

void ImapSession::onRelayBytes(RelaySide from, std::string_view data) {
  if (from == RelaySide::Backend) scanner_.feed(data);
}

void ImapSession::onRelayEnded(RelaySide side, bool error, std::string_view reason) {
  if (side == RelaySide::Client) {
    client_ended_ = true;
    if (error || relay_->bothEnded()) {
      finish({}, error ? "client_error" : "client_closed");
      return;
    }
    relay_->passEnd(RelaySide::Client);  // let the back-end finish (e.g. after LOGOUT)
    return;
  }
  if (client_ended_ || scanner_.sawBye()) {
    finish({}, scanner_.sawBye() ? "logout" : "client_closed");
    return;
  }
  log::warn("back-end connection lost", {{"session", formatSessionId(ctx_.id)},
                                         {"backend", backend_name_}, {"reason", std::string(reason)}});
  finish("* BYE [UNAVAILABLE] Connection to the mailbox server lost.\r\n",
         error ? "backend_error" : "backend_closed");
}

void ImapSession::onEnd() {
  client_ended_ = true;
  if (state_ == State::Closing) {
    closeNow();
    return;
  }
  finish({}, "client_closed");
}

void ImapSession::onError(std::string_view reason) {
  if (state_ != State::Closing) {
    log::debug("client stream error", {{"session", formatSessionId(ctx_.id)}, {"reason", std::string(reason)}});
  }
  if (outcome_.empty()) outcome_ = "client_error";
  closeNow();
}

void ImapSession::shutdown(bool final) {
  if (state_ == State::Closing || state_ == State::Closed) return;
  if (state_ == State::Relaying && !final) return;  // let it finish within the grace period
  finish("* BYE [UNAVAILABLE] Server shutting down.\r\n", "shutdown");
}

void ImapSession::finish(std::string_view bye, std::string outcome) {
  if (state_ == State::Closing || state_ == State::Closed) return;
  if (outcome_.empty()) outcome_ = std::move(outcome);
  pending_auth_.reset();
  login_.reset();
  if (relay_) relay_->detach();
  if (backend_) backend_->close();
  state_ = State::Closing;
  // An injected line must not land inside a back-end response (e.g. in a literal).
  bool may_write = !client_ended_ && (!relay_ || scanner_.atLineStart());
  if (may_write && !bye.empty()) reply(bye);
  if (may_write) flush();
  std::string().swap(out_);
  if (client_ended_ || !client_) {
    closeNow();
    return;
  }
  // Lingering close: FIN after the goodbye, then wait briefly for the client's own close so
  // that unread input does not turn into a reset that destroys the goodbye in flight.
  client_->setHandler(this);
  client_->shutdownWrite();
  client_->readStart();
  timer_.start(kLingerMs, [this] { closeNow(); });
}

void ImapSession::closeNow() {
  if (state_ == State::Closed) return;
  state_ = State::Closed;
  timer_.release();
  pending_auth_.reset();
  login_.reset();
  uint64_t from_client = preauth_bytes_in_ + (relay_ ? relay_->bytesFromClient() : 0);
  uint64_t to_client = preauth_bytes_out_ + (relay_ ? relay_->bytesFromBackend() : 0);
  // The relay stays allocated until the session is freed: we may be inside one of its calls.
  if (relay_) relay_->detach();
  if (backend_) backend_->close();
  if (client_) client_->close();
  {
    log::info("session end", {{"session", formatSessionId(ctx_.id)},
                              {"protocol", "imap"},
                              {"listener", ctx_.listener->name},
                              {"client", ctx_.client_address},
                              {"tls", tlsActive()},
                              {"user", user_},
                              {"backend", backend_name_},
                              {"bytes_in", from_client},
                              {"bytes_out", to_client},
                              {"duration_ms", uv_now(ctx_.loop) - started_ms_},
                              {"outcome", outcome_.empty() ? "closed" : outcome_}});
  }
  ctx_.host->release(ctx_.id);
}

}  // namespace gatehouse
