// The POP3 login dialogue with a back-end: greeting, optional STLS, XCLIENT carrying the client's
// address when the greeting offers it (Dovecot, from login_trusted_networks), CAPA, then AUTH PLAIN
// or USER/PASS. Each back-end reply is checked against the state that expects it. The CAPA answer
// of a back-end with RFC 3206 codes is remembered: later logins to it skip CAPA and send the login
// in one write behind XCLIENT.
#pragma once

#include <string>
#include <string_view>

#include "backends/backend_login.h"

namespace gatehouse {

class Pop3BackendLogin final : public BackendLogin {
 public:
  Pop3BackendLogin(uv_loop_t* loop, const Backend& backend, BackendLoginRequest request,
                   const Timeouts& timeouts, Callback done)
      : BackendLogin(loop, backend, Protocol::Pop3, std::move(request), timeouts, std::move(done)) {
  }

 private:
  enum class State { Greeting, Stls, Xclient, Capa, CapaList, User, Pass, AuthContinue, Auth };

  void onConnected() override {}
  void onLine(std::string_view line) override;
  void onGreeting(std::string_view line);
  void afterTls();
  void onXclientAnswer(std::string_view line);
  void onCapaLine(std::string_view line);
  void adopt(uint32_t learned);
  uint32_t learned() const;
  // The first command of the login (AUTH PLAIN or USER), with state_ set for its answer; empty
  // after fail() when these credentials cannot be sent.
  std::string loginCommand();
  void sendLogin();
  // XCLIENT and the login in one write. Their two +OK come from two Dovecot processes (pop3-login,
  // then pop3): sendPipelined() keeps the second from waiting for our delayed ACK of the first.
  void sendLoginBehindXclient();
  void onLoginAnswer(std::string_view line);
  void refused(std::string_view line);

  State state_ = State::Greeting;
  bool xclient_ = false;          // the greeting said "[XCLIENT]": we are a trusted proxy
  bool capa_ok_ = false;          // CAPA answered +OK (else nothing is known, try USER)
  bool sasl_plain_ = false;       // CAPA: "SASL ... PLAIN ..."
  bool user_ = false;             // CAPA: "USER"
  bool auth_resp_code_ = false;   // CAPA: "AUTH-RESP-CODE": a refusal without [AUTH] is not one
  bool from_memory_ = false;      // what CAPA says was remembered, not asked this time
  bool xclient_pending_ = false;  // XCLIENT sent with the login behind it: its +OK comes first
  unsigned capa_lines_ = 0;
};

}  // namespace gatehouse
