// The IMAP login dialogue with a back-end: greeting, optional STARTTLS, ID carrying the client's
// address (Dovecot logs it from login_trusted_networks), then AUTHENTICATE PLAIN or LOGIN.
// Each back-end reply is checked against the state that expects it (nginx's proxy module).
#pragma once

#include <deque>

#include "backends/backend_login.h"
#include "backends/imap_response.h"
#include "proxy/core/secret.h"

namespace gatehouse {

class ImapBackendLogin final : public BackendLogin {
 public:
  ImapBackendLogin(uv_loop_t* loop, const Backend& backend, BackendLoginRequest request,
                   const Timeouts& timeouts, Callback done)
      : BackendLogin(loop, backend, Protocol::Imap, std::move(request), timeouts, std::move(done)) {
  }

 private:
  enum class State {
    Greeting,
    StartTls,
    Capability,
    Login,
    LoginContinue,  // AUTHENTICATE PLAIN sent without its response: waiting for "+"
    LoginLiteral,   // LOGIN with synchronising literals: waiting for "+" before each
    PostCapability
  };

  void onConnected() override {}
  void onLine(std::string_view line) override;
  void onGreeting(const imap::Response& r);
  void onStartTlsAnswer(const imap::Response& r);
  void onCapabilityLine(const imap::Response& r);
  void onLoginAnswer(const imap::Response& r);
  void sendLogin();
  // LOGIN with a synchronising literal for each value that cannot be quoted (RFC 3501 4.3): the
  // command up to the first literal's "{n}\r\n" first, each later part after a "+".
  std::deque<Secret> loginWithLiterals() const;
  void noteCapabilities(const std::string& list);
  void noteAlert(const imap::Response& r);

  State state_ = State::Greeting;
  std::string capabilities_;
  std::deque<Secret> login_parts_;  // LoginLiteral: what is still to send, credentials included
};

}  // namespace gatehouse
