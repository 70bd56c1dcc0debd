#include "proxy/core/proxy_session.h"

#include <algorithm>

#include "backends/backend_registry.h"
#include "proxy/log/log.h"
#include "proxy/net/proxy_header.h"
#include "proxy/net/tcp_stream.h"
#include "tls/tls_wrap.h"

namespace gatehouse {
namespace {

// How long a client may take to close after our goodbye before we close on it.
constexpr unsigned kLingerMs = 2000;

bool clientAskedToEnd(std::string_view outcome) {
  return outcome == "logout" || outcome == "quit";
}

const char* authStatusName(AuthStatus s) {
  switch (s) {
    case AuthStatus::Ok:
      return "ok";
    case AuthStatus::Denied:
      return "denied";
    case AuthStatus::Disabled:
      return "disabled";
    case AuthStatus::TempFail:
      return "tempfail";
  }
  return "?";
}

}  // namespace

ProxySession::ProxySession(SessionContext context, std::unique_ptr<Stream> client,
                           Protocol protocol)
    : ctx_(std::move(context)), protocol_(protocol), client_(std::move(client)), timer_(ctx_.loop) {
  started_ms_ = uv_now(ctx_.loop);
}

ProxySession::~ProxySession() {
  *alive_ = false;
  closeNow();
}

std::string ProxySession::sessionId() const {
  return formatSessionId(ctx_.id);
}

void ProxySession::start() {
  if (ctx_.over_limit) {
    refuseOverLimit();
    return;
  }
  if (!ctx_.listener->proxy_protocol_from.empty()) {
    phase_ = Phase::ProxyHeader;  // the load balancer speaks first
    client_->setHandler(this);
    client_->readStart();
    timer_.start(ctx_.config->timeouts.proxy_header_ms,
                 [this] { finish(std::string_view(), "proxy_header_timeout"); });
    return;
  }
  greet({});
}

void ProxySession::refuseOverLimit() {
  // Said in plaintext before anything else and closed at once, without lingering: a flood
  // over the limit must not hold sockets. (On implicit TLS nothing can be said before a
  // handshake we will not spend CPU on.) The client has sent nothing yet, so the close is a FIN.
  outcome_ = "connection_limit";
  if (ctx_.listener->tls != TlsMode::Implicit) reply(goodbye(Goodbye::TooManyConnections));
  flush();
  closeNow();
}

void ProxySession::greet(std::string received) {
  if (ctx_.listener->tls == TlsMode::Implicit && ctx_.tls) {
    client_ = wrapServerTls(std::move(client_), *ctx_.tls, ctx_.loop, std::move(received));
    received.clear();
  }
  client_->setHandler(this);
  client_->readStart();
  armPreauthTimer();
  onStart();
  flush();
  if (!received.empty()) onRead(received);  // commands the client sent before the greeting
}

void ProxySession::armPreauthTimer() {
  timer_.start(preauthWaitMs(), [this] {
    bool deadline = uv_now(ctx_.loop) - started_ms_ >= loginDeadlineMs();
    // Said as Dovecot says it in both cases: the client need not know which limit it hit.
    finish(Goodbye::PreauthTimeout, deadline ? "login_timeout" : "preauth_timeout");
  });
}

uint64_t ProxySession::loginDeadlineMs() const {
  // A deadline shorter than one silent wait would cut that wait short: submission's 5 minutes
  // (RFC 5321 4.5.3.2.7) would end after Dovecot's 3.
  return std::max<uint64_t>(ctx_.config->timeouts.login_deadline_ms, preauthIdleMs());
}

unsigned ProxySession::preauthWaitMs() const {
  uint64_t elapsed = uv_now(ctx_.loop) - started_ms_;
  uint64_t deadline = loginDeadlineMs();
  uint64_t left = elapsed < deadline ? deadline - elapsed : 0;
  return static_cast<unsigned>(std::min<uint64_t>(preauthIdleMs(), left));
}

void ProxySession::onProxyHeader(std::string_view data) {
  if (!proxy_header_.empty()) {
    proxy_header_.append(data);
    data = proxy_header_;
  }
  proxy_header::Result result = proxy_header::parse(data);
  if (result.status == proxy_header::Status::NeedMore) {
    if (proxy_header_.empty()) proxy_header_.assign(data);  // parse() bounds it
    return;
  }
  if (result.status == proxy_header::Status::Invalid) {
    log::warn("bad PROXY protocol header",
              {{"session", sessionId()}, {"client", ctx_.client_address}, {"error", result.error}});
    finish(std::string_view(), "bad_proxy_header");
    return;
  }
  std::string received(data.substr(result.consumed));  // data may point into proxy_header_
  std::string().swap(proxy_header_);
  const proxy_header::Header& header = result.header;
  if (!header.local) {  // LOCAL: the load balancer's own connection (a health check)
    ctx_.client_address = joinAddress(header.source_ip, header.source_port);
    ctx_.local_address = joinAddress(header.destination_ip, header.destination_port);
  }
  std::string client_ip, client_port;
  splitAddress(ctx_.client_address, client_ip, client_port);
  phase_ = Phase::PreAuth;
  timer_.stop();
  if (!ctx_.host->admitClient(ctx_.id, client_ip)) {
    refuseOverLimit();
    return;
  }
  greet(std::move(received));
}

void ProxySession::flush() {
  if (out_.empty() || !client_) return;
  preauth_bytes_out_ += out_.size();
  client_->write(out_);
  std::string().swap(out_);  // hold no buffer while waiting for the client
}

void ProxySession::startTls() {
  client_->setHandler(nullptr);
  client_ = wrapServerTls(std::move(client_), *ctx_.tls, ctx_.loop);
  client_->setHandler(this);
  client_->readStart();
}

void ProxySession::onRead(std::string_view data) {
  if (phase_ == Phase::ProxyHeader) {
    onProxyHeader(data);
    return;
  }
  if (phase_ == Phase::Authenticating) {
    holdDuringLogin(data);
    return;
  }
  if (phase_ != Phase::PreAuth) return;  // draining after the goodbye
  preauth_bytes_in_ += data.size();
  timer_.restart(preauthWaitMs());
  auto alive = alive_;
  onClientData(data);
  if (*alive) flush();
}

bool ProxySession::acceptingCommands() {
  if (phase_ != Phase::PreAuth || paused_for_client_) return false;
  if (out_.size() + client_->queuedBytes() <= Stream::kHighWatermark) return true;
  flush();
  if (client_->queuedBytes() <= Stream::kLowWatermark) return true;  // the kernel took it all
  // onWritable() resumes once the client has read down to the low watermark. Meanwhile the
  // client is silent as far as the pre-auth timeout is concerned: one that never reads is
  // disconnected by it.
  client_->readStop();
  paused_for_client_ = true;
  return false;
}

void ProxySession::onWritable() {
  if (!paused_for_client_ || phase_ != Phase::PreAuth) return;
  paused_for_client_ = false;
  client_->readStart();
  auto alive = alive_;
  onResume();
  if (*alive) flush();
}

bool ProxySession::countBadCommand() {
  if (++bad_commands_ < ctx_.config->limits.max_bad_commands) return true;
  finish(Goodbye::TooManyErrors, "too_many_errors");
  return false;
}

bool ProxySession::countAuthFailure() {
  if (++auth_failures_ < ctx_.config->limits.max_auth_failures) return true;
  finish(Goodbye::TooManyAuthFailures, "auth_failed");
  return false;
}

void ProxySession::startSasl(SaslServer::Mechanism mechanism,
                             std::optional<std::string_view> initial) {
  sasl_.emplace(mechanism);
  onSaslStep(sasl_->start(initial));
}

void ProxySession::onSaslStep(SaslServer::Step step) {
  if (step.outcome == SaslServer::Outcome::Challenge) {
    reply(saslChallenge(step.challenge));
    return;
  }
  sasl_.reset();
  switch (step.outcome) {
    case SaslServer::Outcome::Aborted:
      onSaslAborted();
      return;
    case SaslServer::Outcome::Malformed:
      onSaslMalformed();
      return;
    case SaslServer::Outcome::Refused:
      // Well-formed but unacceptable (an authzid for someone else): a failed login like any other.
      phase_ = Phase::Authenticating;
      loginFailed(LoginFailure::Denied);
      return;
    case SaslServer::Outcome::Done:
      authenticate(std::move(step.user), std::move(step.password));
      return;
    case SaslServer::Outcome::Challenge:
      return;
  }
}

void ProxySession::authenticate(std::string login, Secret password) {
  user_ = login;
  phase_ = Phase::Authenticating;
  // The client now waits for us, it is not idle: the directory and back-end steps have timeouts
  // of their own, each ending in an answer. The pre-login timer starts again after a failure.
  timer_.stop();
  flush();
  // Nothing with a NUL or without a password reaches the directory or a back-end.
  if (login.empty() || login.find('\0') != std::string::npos || password.empty() ||
      password.reveal().find('\0') != std::string_view::npos) {
    loginFailed(LoginFailure::Denied);
    return;
  }
  Credentials credentials;
  credentials.login = std::move(login);
  credentials.password = password;
  credentials.protocol = protocol_;
  std::string port;
  splitAddress(ctx_.client_address, credentials.client_ip, port);
  pending_auth_ = ctx_.directory->authenticate(
      ctx_.mailbox, std::move(credentials),
      [this, password = std::move(password)](AuthResult result) mutable {
        onAuthResult(std::move(result), std::move(password));
      });
}

void ProxySession::onAuthResult(AuthResult result, Secret password) {
  pending_auth_.reset();
  if (result.status != AuthStatus::Ok) {
    log::info("login refused", {{"session", sessionId()},
                                {"user", user_},
                                {"status", authStatusName(result.status)},
                                {"reason", result.reason}});
    loginFailed(result.status == AuthStatus::Denied     ? LoginFailure::Denied
                : result.status == AuthStatus::Disabled ? LoginFailure::Disabled
                                                        : LoginFailure::DirectoryTempFail);
    return;
  }
  user_ = result.route.user;
  BackendLoginRequest request;
  request.user = result.route.user;
  request.password = std::move(password);
  splitAddress(ctx_.client_address, request.client_ip, request.client_port);
  splitAddress(ctx_.local_address, request.local_ip, request.local_port);
  request.session_id = sessionId();
  attempts_ = std::make_unique<BackendAttempts>(
      BackendAttempts{std::move(request), backendsFor(result.route.backend)});
  loginToNextBackend();
}

void ProxySession::loginToNextBackend() {
  std::string name = std::move(attempts_->left.front());
  attempts_->left.erase(attempts_->left.begin());
  const Backend* backend = ctx_.backends->find(name);
  if (backend == nullptr || backend->port(protocol_) == 0) {
    // The directory named a host the configuration does not: never connect to it.
    log::error("route to unconfigured back-end", {{"session", sessionId()},
                                                  {"user", user_},
                                                  {"backend", name},
                                                  {"protocol", protocolName(protocol_)}});
    attempts_.reset();
    loginFailed(LoginFailure::BackendUnavailable);
    return;
  }
  backend_name_ = backend->config.name;
  login_ = makeBackendLogin(*backend, attempts_->request,
                            [this](BackendLoginResult r) { onBackendLogin(std::move(r)); });
  login_->start();
}

namespace {

LoginFailure loginFailureFor(BackendFailure failure) {
  switch (failure) {
    case BackendFailure::AuthFailed:
      return LoginFailure::Denied;
    case BackendFailure::InUse:
      return LoginFailure::BackendInUse;
    case BackendFailure::Permanent:
      return LoginFailure::BackendPermanent;
    case BackendFailure::LoginDelay:
      return LoginFailure::BackendLoginDelay;
    case BackendFailure::None:
    case BackendFailure::Unavailable:
      break;
  }
  return LoginFailure::BackendUnavailable;
}

}  // namespace

void ProxySession::onBackendLogin(BackendLoginResult result) {
  auto login = std::move(login_);  // destroyed when this call returns, not before
  if (result.failure == BackendFailure::None) {
    attempts_.reset();
    startRelay(std::move(result));
    return;
  }
  bool try_next = result.failure == BackendFailure::Unavailable && !attempts_->left.empty();
  log::warn("back-end login failed",
            {{"session", sessionId()},
             {"user", user_},
             {"backend", backend_name_},
             {"reason", result.reason},
             log::Field::unlessEmpty("next", try_next ? attempts_->left.front() : "")});
  backend_name_.clear();
  if (try_next) {
    loginToNextBackend();
    return;
  }
  attempts_.reset();
  reply(result.client_notice);
  loginFailed(loginFailureFor(result.failure));
}

void ProxySession::holdDuringLogin(std::string_view data) {
  // The client stays readable while the directory and the back-end answer: stopping and restarting
  // it would cost two epoll_ctl() calls per login. Beyond a command line's worth it is paused.
  held_input_.append(data);
  if (held_input_.size() > ctx_.config->limits.max_line) client_->readStop();
}

void ProxySession::loginFailed(LoginFailure failure) {
  unsigned delay = ctx_.config->timeouts.auth_failure_delay_ms;
  if (failure != LoginFailure::Denied || delay == 0) {
    answerLoginFailure(failure);
    return;
  }
  // As Dovecot's auth_failure_delay: a password guesser gets one answer per delay and
  // connection, not thousands a second. What the client sends meanwhile stays held.
  timer_.start(delay, [this, failure] { answerLoginFailure(failure); });
}

void ProxySession::answerLoginFailure(LoginFailure failure) {
  auto alive = alive_;
  onLoginFailed(failure);
  if (!*alive || ending()) return;
  if (failure == LoginFailure::Denied && !countAuthFailure()) return;
  phase_ = Phase::PreAuth;
  armPreauthTimer();
  if (!paused_for_client_) client_->readStart();
  onResume();  // commands the client pipelined behind the failed login
  if (!*alive) return;
  flush();
  std::string held = std::exchange(held_input_, {});
  if (!held.empty() && !ending()) onRead(held);  // held again if it starts another login
  if (*alive && held_end_ && phase_ == Phase::PreAuth) onEnd();
}

void ProxySession::startRelay(BackendLoginResult result) {
  backend_ = std::move(result.stream);
  phase_ = Phase::Relaying;
  reply(result.client_notice);
  std::string pipelined = onLoggedIn(result);
  // Counted as pre-login input when it was read; the relay counts it again as it goes through.
  preauth_bytes_in_ -= std::min<uint64_t>(preauth_bytes_in_, pipelined.size());
  pipelined += std::exchange(held_input_, {});
  flush();
  RelayObserver& observer = *this;
  relay_ = std::make_unique<Relay>(ctx_.loop, *client_, *backend_, observer);
  relay_->start();
  auto alive = alive_;
  if (!result.leftover.empty()) relay_->inject(RelaySide::Backend, result.leftover);
  if (*alive && !pipelined.empty() && phase_ == Phase::Relaying) {
    relay_->inject(RelaySide::Client, pipelined);
  }
  if (*alive && held_end_ && phase_ == Phase::Relaying) relay_->injectEnd(RelaySide::Client);
  if (*alive && phase_ == Phase::Relaying) armIdleTimer(relayIdleMs());
}

void ProxySession::armIdleTimer(unsigned ms) {
  timer_.start(ms, [this] {
    uint64_t idle_for = uv_now(ctx_.loop) - relay_->lastActivityMs();
    unsigned limit = relayIdleMs();
    if (idle_for < limit) {
      armIdleTimer(static_cast<unsigned>(limit - idle_for));
      return;
    }
    finish(Goodbye::IdleTimeout, "idle_timeout");
  });
}

bool ProxySession::mayForward(RelaySide from, std::string_view data) {
  if (from != RelaySide::Client || onClientBytes(data)) return true;
  if (!ending()) finish(std::string_view(), "refused_command");
  return false;
}

std::string_view ProxySession::rewrite(RelaySide from, std::string_view data,
                                       std::string& scratch) {
  return from == RelaySide::Backend ? rewriteBackendBytes(data, scratch) : data;
}

void ProxySession::onRelayBytes(RelaySide from, std::string_view data) {
  if (from == RelaySide::Backend) onBackendBytes(data);
}

void ProxySession::onRelayEnded(RelaySide side, bool error, std::string_view reason) {
  if (side == RelaySide::Client) {
    client_ended_ = true;
    if (error || relay_->bothEnded()) {
      finish(std::string_view(), error ? "client_error" : "client_closed");
      return;
    }
    relay_->passEnd(RelaySide::Client);  // let the back-end finish (e.g. after LOGOUT)
    return;
  }
  if (backendSaidGoodbye() || (client_ended_ && !backendOwesReplies())) {
    finish(std::string_view(), backendSaidGoodbye() ? "logout" : "client_closed");
    return;
  }
  log::warn(
      "back-end connection lost",
      {{"session", sessionId()}, {"backend", backend_name_}, {"reason", std::string(reason)}});
  finish(Goodbye::BackendLost, error ? "backend_error" : "backend_closed");
}

void ProxySession::onEnd() {
  if (phase_ == Phase::Authenticating) {
    held_end_ = true;  // after what it sent before: the login goes on, and so may the session
    return;
  }
  client_ended_ = true;
  if (phase_ == Phase::Closing) {
    if (client_->queuedBytes() == 0) closeNow();  // else linger() delivers the rest first
    return;
  }
  finish(std::string_view(), "client_closed");
}

void ProxySession::onError(std::string_view reason) {
  if (phase_ != Phase::Closing) {
    log::debug("client stream error", {{"session", sessionId()}, {"reason", std::string(reason)}});
  }
  if (outcome_.empty()) outcome_ = "client_error";
  closeNow();
}

void ProxySession::shutdown(bool final) {
  if (final && !linger_deadline_) linger_deadline_ = uv_now(ctx_.loop) + kLingerMs;
  if (final && phase_ == Phase::Closing) {
    linger();  // a client still reading its goodbye gets what is left of kLingerMs
    return;
  }
  if (ending()) return;
  if (phase_ == Phase::Relaying && !final) return;  // may finish within the grace period
  finish(Goodbye::Shutdown, "shutdown");
}

void ProxySession::finish(std::string_view bye, std::string outcome) {
  if (ending()) return;
  if (outcome_.empty()) outcome_ = std::move(outcome);
  pending_auth_.reset();
  login_.reset();
  attempts_.reset();
  if (relay_) relay_->detach();
  if (backend_) backend_->close();
  // An injected line must not land inside a back-end response (e.g. in a literal).
  // Nothing goes to a load balancer before its header (on implicit TLS it would be plaintext).
  // A client that ended its side during the relay may have half-closed and still read.
  bool may_write = (!client_ended_ || phase_ == Phase::Relaying) && phase_ != Phase::ProxyHeader &&
                   (phase_ != Phase::Relaying || atClientLineStart());
  phase_ = Phase::Closing;
  if (may_write && !bye.empty()) reply(bye);
  if (may_write) flush();
  std::string().swap(out_);
  // A half-closed client still reads: what the back-end sent before it ended (the rest of a
  // FETCH, the LOGOUT's OK) is delivered before the close, not cancelled with it.
  if (!client_ || (client_ended_ && client_->queuedBytes() == 0)) {
    closeNow();
    return;
  }
  // A client answered after its own LOGOUT or QUIT sends nothing more: if nothing of it is
  // unread, closing now cannot reset. Otherwise linger: FIN after the goodbye, then wait briefly
  // for the client's own close so that unread input does not turn into a reset that destroys
  // the goodbye in flight.
  if (!client_ended_ && clientAskedToEnd(outcome_) && client_->closeGracefully()) {
    closeNow();
    return;
  }
  client_->setHandler(this);
  client_->shutdownWrite();
  if (!client_ended_) client_->readStart();
  linger();
}

void ProxySession::linger() {
  // Closing cancels what is still queued for the client, and a close with unread input resets
  // what the kernel still holds: wait while the client goes on reading (progress between two
  // checks, as nginx's send_timeout, not a deadline for the whole), then as long again for its
  // own close. For a client that ended its side, the kernel sends the rest after close().
  // After the grace period, a slow reader does not keep the process alive: one last wait.
  uint64_t wait = kLingerMs;
  if (linger_deadline_) {
    uint64_t now = uv_now(ctx_.loop);
    if (now >= *linger_deadline_) {
      closeNow();
      return;
    }
    wait = std::min(wait, *linger_deadline_ - now);
  }
  const size_t unsent = client_->unsentBytes();
  timer_.start(static_cast<unsigned>(wait), [this, unsent] {
    const size_t now = client_->unsentBytes();
    if (client_ended_ && client_->queuedBytes() == 0) {
      closeNow();
    } else if ((now > 0 && now < unsent) || (now == 0 && unsent > 0 && !client_ended_)) {
      linger();
    } else {
      closeNow();
    }
  });
}

void ProxySession::closeNow() {
  if (phase_ == Phase::Closed) return;
  phase_ = Phase::Closed;
  timer_.release();
  pending_auth_.reset();
  login_.reset();
  attempts_.reset();
  uint64_t from_client = preauth_bytes_in_ + (relay_ ? relay_->bytesFromClient() : 0);
  uint64_t to_client = preauth_bytes_out_ + (relay_ ? relay_->bytesFromBackend() : 0);
  // The relay stays allocated until the session is freed: we may be inside one of its calls.
  if (relay_) relay_->detach();
  if (backend_) backend_->close();
  if (client_) client_->close();
  log::info("session end", {{"session", sessionId()},
                            {"protocol", protocolName(protocol_)},
                            {"listener", ctx_.listener->name},
                            {"client", ctx_.client_address},
                            {"tls", tlsActive()},
                            {"tls_resumed", client_ && client_->tlsResumed()},
                            {"user", user_},
                            {"backend", backend_name_},
                            {"bytes_in", from_client},
                            {"bytes_out", to_client},
                            {"duration_ms", uv_now(ctx_.loop) - started_ms_},
                            {"outcome", outcome_.empty() ? "closed" : outcome_}});
  ctx_.host->release(ctx_.id);
}

}  // namespace gatehouse
