// The IMAP login dialogue with a back-end: greeting, optional STARTTLS, ID carrying the client's
// address (Dovecot logs it from login_trusted_networks), then AUTHENTICATE PLAIN or LOGIN.
// Each back-end reply is checked against the state that expects it (nginx's proxy module).
#pragma once

#include "backends/backend_login.h"
#include "backends/imap_response.h"

namespace gatehouse {

class ImapBackendLogin final : public BackendLogin {
 public:
  ImapBackendLogin(uv_loop_t* loop, const Backend& backend, BackendLoginRequest request,
                   const Timeouts& timeouts, Callback done)
      : BackendLogin(loop, backend, Protocol::Imap, std::move(request), timeouts, std::move(done)) {
  }

 private:
  enum class State { Greeting, StartTls, Capability, Login, LoginContinue, PostCapability };

  void onConnected() override {}
  void onLine(std::string_view line) override;
  void onGreeting(const imap::Response& r);
  void onStartTlsAnswer(const imap::Response& r);
  void onCapabilityLine(const imap::Response& r);
  void onLoginAnswer(const imap::Response& r);
  void sendLogin();
  void noteCapabilities(const std::string& list);

  State state_ = State::Greeting;
  std::string capabilities_;
};

}  // namespace gatehouse
