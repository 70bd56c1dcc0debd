// One IMAP client connection: the pre-auth dialogue done by Gatehouse itself (CAPABILITY,
// STARTTLS, ID, LOGIN, AUTHENTICATE), the directory look-up, the back-end login, then the relay.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "backends/imap_backend_login.h"
#include "backends/imap_response.h"
#include "directory/directory.h"
#include "proxy/core/session.h"
#include "proxy/core/timer.h"
#include "proxy/imap/imap_parser.h"
#include "proxy/net/stream.h"
#include "proxy/relay/relay.h"

namespace gatehouse {

class ImapSession final : public Session, private StreamHandler, private RelayObserver {
 public:
  ImapSession(SessionContext context, std::unique_ptr<Stream> client);
  ~ImapSession() override;

  void start() override;
  void shutdown(bool final) override;

 private:
  enum class State {
    PreAuth,         // reading commands
    SaslResponse,    // AUTHENTICATE: waiting for the client's next continuation line
    Authenticating,  // directory look-up in flight; client reads paused
    BackendLogin,    // logging in to the back-end; client reads paused
    Relaying,
    Closing,         // goodbye written; waiting for the client to close (bounded)
    Closed,
  };
  enum class SaslMechanism { Plain, Login };

  // StreamHandler (client, before the relay and while closing)
  void onRead(std::string_view data) override;
  void onEnd() override;
  void onError(std::string_view reason) override;
  // RelayObserver
  void onRelayBytes(RelaySide from, std::string_view data) override;
  void onRelayEnded(RelaySide side, bool error, std::string_view reason) override;

  void processInput();
  void dispatch(const imap::Command& command);
  void handleSaslLine(std::string_view line);
  void cmdCapability(const imap::Command& c);
  void cmdStartTls(const imap::Command& c);
  void cmdId(const imap::Command& c);
  void cmdLogin(const imap::Command& c);
  void cmdAuthenticate(const imap::Command& c);
  bool authAllowed(const std::string& tag);
  void authenticate(std::string tag, std::string login, Secret password);
  void onAuthResult(AuthResult result, Secret password);
  void onBackendLogin(BackendLoginResult result);
  void authFailed(const std::string& tag, std::string_view answer);
  void resumePreAuth();
  void startRelay(BackendLoginResult result);
  void armRelayIdleTimer(unsigned ms);
  void badCommand(const std::string& tag, std::string_view message);

  std::string capabilities() const;
  bool tlsActive() const { return client_ && client_->isTls(); }
  void reply(std::string_view text);
  void flush();
  // Says goodbye (if `bye` is non-empty and the client may receive it) and ends the session.
  void finish(std::string_view bye, std::string outcome);
  void closeNow();

  SessionContext ctx_;
  std::unique_ptr<Stream> client_;
  std::unique_ptr<Stream> backend_;
  std::unique_ptr<imap::CommandParser> parser_;  // released once the relay starts
  std::string out_;
  Timer timer_;
  State state_ = State::PreAuth;
  std::unique_ptr<PendingAuth> pending_auth_;
  std::unique_ptr<ImapBackendLogin> login_;
  std::unique_ptr<Relay> relay_;
  imap::ResponseScanner scanner_;
  std::string auth_tag_;
  std::string sasl_user_;
  SaslMechanism sasl_mechanism_ = SaslMechanism::Plain;
  std::string user_;
  std::string backend_name_;
  std::string outcome_;
  unsigned bad_commands_ = 0;
  unsigned auth_failures_ = 0;
  uint64_t started_ms_ = 0;
  uint64_t preauth_bytes_in_ = 0;
  uint64_t preauth_bytes_out_ = 0;
  bool client_ended_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

std::unique_ptr<Session> makeImapSession(SessionContext context, std::unique_ptr<Stream> client);

}  // namespace gatehouse
