// The SMTP submission login dialogue with a back-end: greeting, EHLO, optional STARTTLS, then
// XCLIENT naming the user and the real client (Postfix, when it trusts us) or else AUTH PLAIN.
// Each reply is checked against the state that expects it (nginx's mail proxy module).
#pragma once

#include <string>
#include <vector>

#include "backends/backend_login.h"
#include "backends/smtp_reply.h"

namespace gatehouse {

class SmtpBackendLogin final : public BackendLogin {
 public:
  // `hostname`: what Gatehouse says in its own EHLO.
  SmtpBackendLogin(uv_loop_t* loop, const Backend& backend, BackendLoginRequest request,
                   const Timeouts& timeouts, std::string hostname, Callback done)
      : BackendLogin(loop, backend, Protocol::Submission, std::move(request), timeouts,
                     std::move(done)),
        hostname_(std::move(hostname)) {}

 private:
  enum class State { Greeting, Ehlo, StartTls, Xclient, AuthContinue, Auth };

  void onConnected() override {}
  void onLine(std::string_view line) override;
  void onReply(int code, const std::vector<std::string>& lines);
  void onEhlo(int code, const std::vector<std::string>& lines);
  void present();
  void sendEhlo(const std::string& name);
  void sendXclient();
  void sendAuth();
  std::string keywordList() const;

  std::string hostname_;
  State state_ = State::Greeting;
  int code_ = 0;                             // of the reply being received
  std::vector<std::string> lines_;           // its texts so far
  std::vector<smtp::EhloKeyword> keywords_;  // from the last EHLO reply
  bool xclient_done_ = false;
};

}  // namespace gatehouse
