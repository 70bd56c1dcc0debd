// One POP3 client connection: the AUTHORIZATION state Gatehouse answers itself (CAPA, STLS,
// USER/PASS, AUTH, QUIT); the login pipeline and the relay come from ProxySession.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "proxy/core/proxy_session.h"
#include "proxy/core/sasl_server.h"
#include "proxy/pop3/pop3_parser.h"
#include "proxy/pop3/pop3_relay_tracker.h"

namespace gatehouse {

class Pop3Session final : public ProxySession {
 public:
  Pop3Session(SessionContext context, std::unique_ptr<Stream> client);

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
  void onBackendBytes(std::string_view data) override { tracker_.fromBackend(data); }
  bool onClientBytes(std::string_view data) override {
    tracker_.fromClient(data);
    return true;
  }
  bool atClientLineStart() const override { return tracker_.betweenResponses(); }
  bool backendSaidGoodbye() const override { return tracker_.quitAnswered(); }
  bool backendOwesReplies() const override { return tracker_.awaitingResponses(); }

  void processInput();
  void dispatch(const pop3::Command& command);
  void badCommand(std::string_view message);
  void cmdCapa();
  void cmdStls();
  void cmdUser(const pop3::Command& c);
  void cmdPass(const pop3::Command& c, std::string login);
  void cmdAuth(const pop3::Command& c);
  std::string saslChallenge(std::string_view challenge) const override;
  void onSaslAborted() override;
  void onSaslMalformed() override;
  bool refuseUnlessAuthAllowed();
  bool stlsOffered() const;

  std::unique_ptr<pop3::CommandParser> parser_;  // released once the relay starts
  std::optional<std::string> user_name_;         // USER given, PASS expected next
  pop3::RelayTracker tracker_;
};

std::unique_ptr<Session> makePop3Session(SessionContext context, std::unique_ptr<Stream> client);

}  // namespace gatehouse
