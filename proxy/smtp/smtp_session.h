// One SMTP submission client connection (RFC 6409): the dialogue before AUTH that Gatehouse
// answers itself (EHLO, STARTTLS, AUTH; never MAIL), then the relay to the back-end's submission.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "proxy/core/proxy_session.h"
#include "proxy/core/sasl_server.h"
#include "proxy/smtp/smtp_parser.h"
#include "proxy/smtp/smtp_relay_guard.h"

namespace gatehouse {

class SmtpSession final : public ProxySession {
 public:
  SmtpSession(SessionContext context, std::unique_ptr<Stream> client);

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
  std::string_view rewriteBackendBytes(std::string_view data, std::string& scratch) override;
  bool onClientBytes(std::string_view data) override;
  bool atClientLineStart() const override { return guard_.atReplyLineStart(); }
  bool backendSaidGoodbye() const override { return guard_.backendSaidGoodbye(); }
  bool backendOwesReplies() const override { return guard_.awaitingReplies(); }
  std::vector<std::string> backendsFor(const std::string& home) const override;
  unsigned preauthIdleMs() const override;
  unsigned relayIdleMs() const override;

  void processInput();
  void dispatch(const smtp::Command& command);
  void refuse(std::string_view reply);  // an error reply that counts towards the error limit
  void junk(std::string_view reply);    // a reply to a command that does nothing before AUTH
  void cmdEhlo(const smtp::Command& command, bool extended);
  void cmdStartTls(const smtp::Command& command);
  void cmdAuth(const smtp::Command& command);
  std::string saslChallenge(std::string_view challenge) const override;
  void onSaslAborted() override;
  void onSaslMalformed() override;
  bool startTlsOffered() const;

  const std::string& hostname_;
  std::unique_ptr<smtp::CommandParser> parser_;  // released once the relay starts
  smtp::RelayGuard guard_;
  std::string helo_;  // the client's EHLO/HELO name; empty until it said one (again after TLS)
  unsigned junk_commands_ = 0;
};

std::unique_ptr<Session> makeSmtpSession(SessionContext context, std::unique_ptr<Stream> client);

}  // namespace gatehouse
