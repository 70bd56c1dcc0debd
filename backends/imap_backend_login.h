// Logs in to an IMAP back-end on the user's behalf: connect, greeting, optional STARTTLS,
// ID with the client's address, then AUTHENTICATE PLAIN or LOGIN. Each step is checked against
// the state that expects it (nginx's ngx_mail_proxy_module); each has a timeout.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "backends/backend_registry.h"
#include "backends/imap_response.h"
#include "proxy/core/secret.h"
#include "proxy/core/timer.h"
#include "proxy/net/stream.h"
#include "proxy/net/tcp_connect.h"

namespace gatehouse {

struct BackendLoginRequest {
  std::string user;       // canonical login from the directory
  Secret password;
  std::string client_ip;  // the real client, forwarded in ID / XCLIENT
  std::string client_port;
  std::string local_ip;   // where the client connected to (our listener)
  std::string local_port;
  std::string session_id;
};

enum class BackendFailure {
  None,
  Unavailable,  // connect, timeout, greeting, TLS or protocol failure: a temporary error
  AuthFailed,   // the back-end refused the credentials
};

struct BackendLoginResult {
  BackendFailure failure = BackendFailure::None;
  std::string reason;        // for logs
  std::string capabilities;  // IMAP: post-login CAPABILITY list (without the word CAPABILITY)
  std::unique_ptr<Stream> stream;  // on success: logged in, ready to relay
  std::string leftover;      // bytes the back-end sent after the login response
};

class ImapBackendLogin final : private StreamHandler {
 public:
  using Callback = std::function<void(BackendLoginResult)>;

  ImapBackendLogin(uv_loop_t* loop, const Backend& backend, BackendLoginRequest request,
                   const Timeouts& timeouts, Callback done);
  ~ImapBackendLogin() override;
  ImapBackendLogin(const ImapBackendLogin&) = delete;
  ImapBackendLogin& operator=(const ImapBackendLogin&) = delete;

  // Starts connecting; `done` runs exactly once, later, unless this object is destroyed first.
  // `done` may destroy this object.
  void start();

 private:
  enum class State { Connecting, Greeting, StartTls, Capability, Login, LoginContinue, PostCapability, Done };

  void onConnected(std::unique_ptr<TcpStream> stream, std::string error);
  void onRead(std::string_view data) override;
  void onEnd() override;
  void onError(std::string_view reason) override;
  void handleLine(std::string_view line);
  void onGreeting(const imap::Response& r);
  void onStartTlsAnswer(const imap::Response& r);
  void onCapabilityLine(const imap::Response& r);
  void onLoginAnswer(const imap::Response& r);
  void sendLogin();
  void send(std::string command);
  void armStepTimer();
  void fail(BackendFailure failure, std::string reason);
  void succeed();
  void noteCapabilities(const std::string& list);

  uv_loop_t* loop_;
  const Backend& backend_;
  BackendLoginRequest request_;
  Timeouts timeouts_;
  Callback done_;
  State state_ = State::Connecting;
  std::unique_ptr<TcpConnector> connector_;
  std::unique_ptr<Stream> stream_;
  Timer step_timer_;
  std::string line_;
  std::string capabilities_;
  bool tls_active_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // false once destroyed
};

}  // namespace gatehouse
