// One IMAP client connection: the pre-auth dialogue Gatehouse answers itself (CAPABILITY, NOOP,
// LOGOUT, STARTTLS, ID, LOGIN, AUTHENTICATE); the login pipeline and relay come from ProxySession.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "backends/imap_response.h"
#include "proxy/core/proxy_session.h"
#include "proxy/core/sasl_server.h"
#include "proxy/imap/imap_command_counter.h"
#include "proxy/imap/imap_parser.h"

namespace gatehouse {

class ImapSession final : public ProxySession {
 public:
  ImapSession(SessionContext context, std::unique_ptr<Stream> client);

 private:
  void onStart() override;
  void onClientData(std::string_view data) override;
  void onResume() override { processInput(); }
  void onLoginFailed(LoginFailure failure) override;
  std::string onLoggedIn(const BackendLoginResult& result) override;
  std::unique_ptr<BackendLogin> makeBackendLogin(const Backend& backend,
                                                 BackendLoginRequest request,
                                                 BackendLogin::Callback done) override;
  std::string goodbye(Goodbye reason) const override;
  void onBackendBytes(std::string_view data) override { scanner_.feed(data); }
  bool atClientLineStart() const override { return scanner_.atLineStart(); }
  bool backendSaidGoodbye() const override { return scanner_.sawBye(); }
  bool onClientBytes(std::string_view data) override {
    commands_.feed(data);
    return true;
  }
  // A client that ended its side may still wait for answers: the back-end's close is then a loss.
  bool backendOwesReplies() const override {
    return commands_.awaitedAnswers() > scanner_.taggedResponses();
  }

  void processInput();
  void dispatch(const imap::Command& command);
  void badCommand(const std::string& tag, std::string_view message);
  void cmdCapability(const imap::Command& c);
  void cmdStartTls(const imap::Command& c);
  void cmdId(const imap::Command& c);
  void cmdLogin(const imap::Command& c);
  void cmdAuthenticate(const imap::Command& c);
  std::string saslChallenge(std::string_view challenge) const override;
  void onSaslAborted() override;
  void onSaslMalformed() override;
  bool refuseUnlessAuthAllowed(const std::string& tag);
  std::string capabilities() const;

  std::unique_ptr<imap::CommandParser> parser_;  // released once the relay starts
  imap::ResponseScanner scanner_;
  imap::CommandCounter commands_;
  std::string auth_tag_;
};

std::unique_ptr<Session> makeImapSession(SessionContext context, std::unique_ptr<Stream> client);

}  // namespace gatehouse
