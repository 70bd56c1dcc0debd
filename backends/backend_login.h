// Logging in to a back-end on the user's behalf, the part every protocol shares: connect with a
// timeout, implicit TLS or STARTTLS, reading lines, one timer per step, one outcome reported once.
// Each protocol (IMAP, POP3, SMTP) supplies the dialogue as a subclass.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "backends/backend_registry.h"
#include "proxy/core/secret.h"
#include "proxy/core/timer.h"
#include "proxy/net/stream.h"
#include "proxy/net/tcp_connect.h"

namespace gatehouse {

struct BackendLoginRequest {
  std::string user;  // canonical login from the directory
  Secret password;
  std::string client_ip;  // the real client, forwarded in ID / XCLIENT
  std::string client_port;
  std::string local_ip;  // where the client connected to (our listener)
  std::string local_port;
  std::string session_id;
  std::string client_helo;  // SMTP: what the client said in EHLO/HELO
};

enum class BackendFailure {
  None,
  Unavailable,  // connect, timeout, greeting, TLS or protocol failure: a temporary error
  AuthFailed,   // the back-end refused the credentials
  InUse,        // POP3 [IN-USE], IMAP [INUSE]: the mailbox is locked by another session
  Permanent,    // POP3 [SYS/PERM]: retrying will not help (RFC 3206)
  LoginDelay,   // POP3 [LOGIN-DELAY]: the user logged in too recently (RFC 2449)
};

struct BackendLoginResult {
  BackendFailure failure = BackendFailure::None;
  std::string reason;        // for logs
  std::string capabilities;  // IMAP: post-login CAPABILITY list; others: what the protocol needs
  std::unique_ptr<Stream> stream;  // on success: logged in, ready to relay
  std::string leftover;            // bytes the back-end sent after the login response
  // What the back-end said for the user during the login, in the client's protocol, to be
  // passed on before the answer to the login (IMAP: [ALERT] lines, RFC 3501 7.1).
  std::string client_notice;
};

class BackendLogin : private StreamHandler {
 public:
  using Callback = std::function<void(BackendLoginResult)>;

  BackendLogin(uv_loop_t* loop, const Backend& backend, Protocol protocol,
               BackendLoginRequest request, const Timeouts& timeouts, Callback done);
  ~BackendLogin() override;
  BackendLogin(const BackendLogin&) = delete;
  BackendLogin& operator=(const BackendLogin&) = delete;

  // Starts connecting; `done` runs exactly once, later, unless this object is destroyed first.
  // `done` may destroy this object.
  void start();

 protected:
  // The connection is up (and TLS layered if the back-end wants implicit TLS).
  virtual void onConnected() = 0;
  // One line from the back-end, CRLF removed.
  virtual void onLine(std::string_view line) = 0;

  void send(std::string command);  // wipes its copy afterwards; re-arms the step timer
  // send() for commands pipelined behind one whose answer comes from another back-end process:
  // the answers are acknowledged at once, so the back-end's Nagle does not hold the second.
  void sendPipelined(std::string commands);
  // `prefix`, the user's SASL PLAIN message (RFC 4616: NUL user NUL password) in base64, CRLF:
  // a whole command line, and the only copy of the credentials it holds (send() wipes it).
  std::string saslPlainLine(std::string_view prefix) const;
  // saslPlainLine() if the line fits in `max_line` bytes; otherwise nothing (the line is wiped):
  // the command goes without an initial response, which then follows the server's continuation.
  std::optional<std::string> saslPlainLineWithin(std::string_view prefix, size_t max_line) const;
  void upgradeToTls();  // after the back-end agreed to STARTTLS/STLS
  bool tlsActive() const { return tls_active_; }
  bool wantsStartTls() const { return backend_.config.tls == TlsMode::StartTls && !tls_active_; }
  void fail(BackendFailure failure, std::string reason);
  // Login done: hands the stream over once the current line has been handled.
  void succeed(std::string capabilities);
  // Lines for the client, reported with the outcome (BackendLoginResult::client_notice). Past
  // kMaxClientNotice bytes the login fails once the current line has been handled: a back-end
  // that streams notices would otherwise grow this session's memory until the step timeout.
  void noteForClient(std::string_view lines) {
    if (client_notice_.size() + lines.size() > kMaxClientNotice) {
      notice_overflow_ = true;
      return;
    }
    client_notice_.append(lines);
  }
  static constexpr size_t kMaxClientNotice = 16 * 1024;

  const Backend& backend_;
  BackendLoginRequest request_;

 private:
  void onTcpConnected(std::unique_ptr<TcpStream> stream, std::string error);
  void onRead(std::string_view data) override;
  void onEnd() override;
  void onError(std::string_view reason) override;
  void armStepTimer();

  uv_loop_t* loop_;
  Protocol protocol_;
  Timeouts timeouts_;
  Callback done_;
  std::unique_ptr<TcpConnector> connector_;
  std::unique_ptr<Stream> stream_;
  Timer step_timer_;
  std::string line_;
  std::string capabilities_;
  std::string client_notice_;
  bool tls_active_ = false;
  bool succeeded_ = false;
  bool notice_overflow_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // false once destroyed
};

}  // namespace gatehouse
