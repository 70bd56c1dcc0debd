// What every protocol's session shares: implicit TLS and STARTTLS on the client stream, the
// login pipeline (directory → configured back-end → back-end login → relay), timeouts, the
// goodbye and lingering close, and the one log line at the end. Protocols supply the dialogue.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backends/backend_login.h"
#include "directory/directory.h"
#include "proxy/core/sasl_server.h"
#include "proxy/core/session.h"
#include "proxy/core/timer.h"
#include "proxy/net/stream.h"
#include "proxy/relay/relay.h"

namespace gatehouse {

enum class LoginFailure {
  Denied,              // wrong password, unknown user: one generic answer for all of them
  Disabled,            // this protocol is not allowed for the user
  DirectoryTempFail,   // the directory could not answer
  BackendUnavailable,  // back-end down, unknown or failed during login
  BackendInUse,        // the mailbox is locked by another session
  BackendPermanent,    // the back-end says retrying will not help
  BackendLoginDelay,   // the back-end says the user logged in too recently
};

enum class Goodbye {
  PreauthTimeout,
  IdleTimeout,
  Shutdown,
  BackendLost,
  TooManyErrors,
  TooManyAuthFailures,
  TooManyConnections,  // over limits.max_connections(_per_ip): said instead of the greeting
};

class ProxySession : public Session, protected StreamHandler, protected RelayObserver {
 public:
  ProxySession(SessionContext context, std::unique_ptr<Stream> client, Protocol protocol);
  ~ProxySession() override;

  void start() final;
  void shutdown(bool final) final;

 protected:
  // ProxyHeader: a load balancer's PROXY protocol header is awaited; nothing is said before it.
  enum class Phase { ProxyHeader, PreAuth, Authenticating, Relaying, Closing, Closed };

  // --- what a protocol supplies ---
  virtual void onStart() = 0;                            // write the greeting
  virtual void onClientData(std::string_view data) = 0;  // pre-auth bytes from the client
  virtual void onResume() = 0;                           // login failed: go on with buffered input
  virtual void onLoginFailed(LoginFailure failure) = 0;  // answer the pending login command
  // Back-end login succeeded: answer the client; return the client bytes that were pipelined
  // behind the login command (they go to the back-end).
  virtual std::string onLoggedIn(const BackendLoginResult& result) = 0;
  virtual std::unique_ptr<BackendLogin> makeBackendLogin(const Backend& backend,
                                                         BackendLoginRequest request,
                                                         BackendLogin::Callback done) = 0;
  // SASL answers: a challenge line ("+ ..." / "334 ..."), the client's "*", an undecodable line.
  virtual std::string saslChallenge(std::string_view challenge) const = 0;
  virtual void onSaslAborted() = 0;
  virtual void onSaslMalformed() = 0;
  // The line to send before closing for `reason` (empty for none), with CRLF.
  virtual std::string goodbye(Goodbye reason) const = 0;
  // Back-end bytes on their way to the client (framing, e.g. to see where lines start).
  virtual void onBackendBytes(std::string_view) {}
  // The back-end bytes to send the client in place of `data` (new bytes kept in `scratch`).
  virtual std::string_view rewriteBackendBytes(std::string_view data, std::string& /*scratch*/) {
    return data;
  }
  // Client bytes after login on their way to the back-end. False refuses them: they are not
  // forwarded, and the protocol has called finish() (else the session ends without a goodbye).
  virtual bool onClientBytes(std::string_view) { return true; }
  // Whether a line may be injected into the client stream now (not inside a back-end response).
  virtual bool atClientLineStart() const { return true; }
  // Whether the back-end already said goodbye itself (IMAP BYE, POP3 +OK after QUIT, SMTP 221).
  virtual bool backendSaidGoodbye() const { return false; }
  // Whether the back-end still owes the client replies (SMTP, POP3: commands not answered yet).
  // Its close is then a loss even after the client has ended its side, which it may only have
  // half-closed while it waits for them.
  virtual bool backendOwesReplies() const { return false; }
  // The configured back-ends to log in to, in order, for a user whose home is `home`: the next
  // is tried when one is unavailable. IMAP and POP3: the home only. SMTP: a relay pool.
  virtual std::vector<std::string> backendsFor(const std::string& home) const { return {home}; }
  // How long the client may be silent before login (and never beyond loginDeadlineMs() from
  // connect), and a relayed session idle either way.
  virtual unsigned preauthIdleMs() const { return ctx_.config->timeouts.preauth_idle_ms; }
  virtual unsigned relayIdleMs() const { return ctx_.config->timeouts.session_idle_ms; }

  // --- services for the protocol ---
  void reply(std::string_view text) { out_.append(text); }
  void flush();
  // Puts TLS under the client stream; call after the "go ahead" reply was flushed and the
  // protocol dropped what it had buffered (CVE-2011-0411).
  void startTls();
  bool tlsActive() const { return client_ && client_->isTls(); }
  bool tlsAvailable() const { return ctx_.tls != nullptr; }
  // Whether this listener lets the client authenticate now (TLS required and not yet up).
  bool authAllowed() const { return !ctx_.listener->require_tls_for_auth || tlsActive(); }
  // Directory, back-end and relay; ends in onLoginFailed() or onLoggedIn().
  void authenticate(std::string login, Secret password);
  // A SASL exchange (IMAP AUTHENTICATE, POP3 AUTH, SMTP AUTH); while saslActive() the protocol
  // passes each client line to continueSasl(). It ends in authenticate() or one of the hooks.
  void startSasl(SaslServer::Mechanism mechanism, std::optional<std::string_view> initial);
  void continueSasl(std::string_view line) { onSaslStep(sasl_->respond(line)); }
  bool saslActive() const { return sasl_.has_value(); }
  void cancelSasl() { sasl_.reset(); }
  // Whether the protocol may take the next pre-auth command. False while the client has more than
  // Stream::kHighWatermark of answers unread: its input pauses (what was read stays in the
  // parser) and onResume() is called once it has read them. A client that pipelines CAPABILITY
  // without ever reading must not grow our memory.
  bool acceptingCommands();
  // Counts a failed login; ends the session when the limit is reached. Returns false then.
  bool countAuthFailure();
  // Whether the next countBadCommand() / countAuthFailure() ends the session. POP3 has one answer
  // per command, so there the goodbye answers the last one instead of coming after its answer.
  bool nextBadCommandIsLast() const {
    return bad_commands_ + 1 >= ctx_.config->limits.max_bad_commands;
  }
  bool nextAuthFailureIsLast() const {
    return auth_failures_ + 1 >= ctx_.config->limits.max_auth_failures;
  }
  // Counts a bad command; ends the session when the limit is reached. Returns false then.
  bool countBadCommand();
  // Says the goodbye (if any and if the client may receive it) and ends the session. No goodbye is
  // std::string_view(): `{}` would convert to Goodbye (PreauthTimeout), not to an empty view.
  void finish(std::string_view bye, std::string outcome);
  void finish(Goodbye reason, std::string outcome) { finish(goodbye(reason), std::move(outcome)); }
  Phase phase() const { return phase_; }
  bool ending() const { return phase_ == Phase::Closing || phase_ == Phase::Closed; }
  std::string sessionId() const;

  SessionContext ctx_;
  const Protocol protocol_;
  std::string user_;  // as typed, then canonical after the directory answered
  std::string backend_name_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // false once destroyed

 private:
  void onRead(std::string_view data) final;
  void onEnd() final;
  void onError(std::string_view reason) final;
  void onWritable() final;
  void onRelayBytes(RelaySide from, std::string_view data) final;
  bool mayForward(RelaySide from, std::string_view data) final;
  std::string_view rewrite(RelaySide from, std::string_view data, std::string& scratch) final;
  void onRelayEnded(RelaySide side, bool error, std::string_view reason) final;

  void greet(std::string received);
  void refuseOverLimit();
  void onProxyHeader(std::string_view data);
  void onSaslStep(SaslServer::Step step);
  void onAuthResult(AuthResult result, Secret password);
  void onBackendLogin(BackendLoginResult result);
  void loginToNextBackend();
  void loginFailed(LoginFailure failure);
  void answerLoginFailure(LoginFailure failure);
  void linger();
  void armPreauthTimer();
  // timeouts.login_deadline_ms, or one preauthIdleMs() if that is longer.
  uint64_t loginDeadlineMs() const;
  unsigned preauthWaitMs() const;
  void holdDuringLogin(std::string_view data);
  void startRelay(BackendLoginResult result);
  void armIdleTimer(unsigned ms);
  void closeNow();

  std::unique_ptr<Stream> client_;
  std::unique_ptr<Stream> backend_;
  std::string out_;
  std::string proxy_header_;  // a PROXY protocol header split over reads, until complete
  // What the client sent while its login was being checked, and whether it closed meanwhile:
  // for the back-end after a successful login, for the parser after a failed one.
  std::string held_input_;
  bool held_end_ = false;
  Timer timer_;
  Phase phase_ = Phase::PreAuth;
  std::optional<SaslServer> sasl_;  // set while a SASL exchange is in progress
  std::unique_ptr<PendingAuth> pending_auth_;
  std::unique_ptr<BackendLogin> login_;
  // While back-end logins run: the request again and the back-ends still to try if one fails.
  // Held by pointer and freed after the login: a relayed or idle session carries none of it.
  struct BackendAttempts {
    BackendLoginRequest request;
    std::vector<std::string> left;
  };
  std::unique_ptr<BackendAttempts> attempts_;
  std::unique_ptr<Relay> relay_;
  std::string outcome_;
  unsigned bad_commands_ = 0;
  unsigned auth_failures_ = 0;
  uint64_t started_ms_ = 0;
  uint64_t preauth_bytes_in_ = 0;
  uint64_t preauth_bytes_out_ = 0;
  bool client_ended_ = false;
  // Set when the shutdown's grace period is over: lingering ends by then, however the client reads.
  std::optional<uint64_t> linger_deadline_;
  bool paused_for_client_ = false;  // input stopped until the client reads its answers
};

}  // namespace gatehouse
