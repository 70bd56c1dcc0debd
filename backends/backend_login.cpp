#include "backends/backend_login.h"

#include <openssl/mem.h>

#include "backends/backend_tls.h"
#include "proxy/core/base64.h"

namespace gatehouse {
namespace {

// A back-end line longer than this during login is a protocol error, not something to buffer.
constexpr size_t kMaxBackendLine = 64 * 1024;

}  // namespace

BackendLogin::BackendLogin(uv_loop_t* loop, const Backend& backend, Protocol protocol,
                           BackendLoginRequest request, const Timeouts& timeouts, Callback done)
    : backend_(backend),
      request_(std::move(request)),
      loop_(loop),
      protocol_(protocol),
      timeouts_(timeouts),
      done_(std::move(done)),
      step_timer_(loop) {}

BackendLogin::~BackendLogin() {
  *alive_ = false;
  if (stream_) stream_->close();
}

void BackendLogin::start() {
  connector_ =
      std::make_unique<TcpConnector>(loop_, [this](std::unique_ptr<TcpStream> s, std::string e) {
        onTcpConnected(std::move(s), std::move(e));
      });
  // A port of 0 fails in connect() and is reported from the loop like any refused connection.
  connector_->connect(backend_.config.address, backend_.port(protocol_), timeouts_.connect_ms);
}

void BackendLogin::onTcpConnected(std::unique_ptr<TcpStream> stream, std::string error) {
  if (!stream) {
    fail(BackendFailure::Unavailable, "connect: " + error);
    return;
  }
  stream_ = std::move(stream);
  if (backend_.config.tls == TlsMode::Implicit) {
    stream_ = wrapClientTls(std::move(stream_), backend_, loop_);
    tls_active_ = true;
  }
  stream_->setHandler(this);
  stream_->readStart();
  armStepTimer();
  onConnected();
}

void BackendLogin::armStepTimer() {
  step_timer_.start(timeouts_.greeting_ms, [this] {
    fail(BackendFailure::Unavailable, "back-end timed out during login");
  });
}

void BackendLogin::upgradeToTls() {
  stream_->setHandler(nullptr);
  stream_ = wrapClientTls(std::move(stream_), backend_, loop_);
  tls_active_ = true;
  stream_->setHandler(this);
  stream_->readStart();
}

void BackendLogin::send(std::string command) {
  armStepTimer();
  stream_->write(command);
  OPENSSL_cleanse(command.data(), command.size());
}

void BackendLogin::sendPipelined(std::string commands) {
  send(std::move(commands));
  if (stream_) stream_->ackPromptly();
}

std::string BackendLogin::saslPlainLine(std::string_view prefix) const {
  std::string_view password = request_.password.reveal();
  std::string plain;
  plain.reserve(request_.user.size() + password.size() + 2);  // no reallocation leaves a copy
  plain.push_back('\0');
  plain.append(request_.user);
  plain.push_back('\0');
  plain.append(password);
  std::string encoded = base64Encode(plain);
  OPENSSL_cleanse(plain.data(), plain.size());
  std::string line;
  line.reserve(prefix.size() + encoded.size() + 2);
  line.append(prefix);
  line.append(encoded);
  line.append("\r\n");
  OPENSSL_cleanse(encoded.data(), encoded.size());
  return line;
}

std::optional<std::string> BackendLogin::saslPlainLineWithin(std::string_view prefix,
                                                             size_t max_line) const {
  std::string line = saslPlainLine(prefix);
  if (line.size() <= max_line) return line;
  OPENSSL_cleanse(line.data(), line.size());
  return std::nullopt;
}

void BackendLogin::onRead(std::string_view data) {
  auto alive = alive_;
  while (!data.empty() && !succeeded_) {
    auto lf = data.find('\n');
    line_.append(data.substr(0, lf));
    if (line_.size() > kMaxBackendLine) {
      fail(BackendFailure::Unavailable, "back-end line too long");
      return;
    }
    if (lf == std::string_view::npos) return;
    data.remove_prefix(lf + 1);
    std::string line = std::move(line_);
    line_.clear();
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const bool was_tls = tls_active_;
    onLine(line);
    if (!*alive || !done_) return;  // failed; `done` may have destroyed this object
    if (notice_overflow_) {
      fail(BackendFailure::Unavailable, "back-end sent more than " +
                                            std::to_string(kMaxClientNotice) +
                                            " bytes of notices for the user");
      return;
    }
    if (tls_active_ && !was_tls && !data.empty()) {
      // Sent in plaintext behind the go-ahead: whoever wrote it, it must not count as the TLS
      // server's (RFC 3207 4.2, RFC 2595 3.1; CVE-2011-0411 seen from the client side).
      fail(BackendFailure::Unavailable, "back-end sent plaintext after its STARTTLS answer");
      return;
    }
  }
  if (!succeeded_) return;
  BackendLoginResult result;
  result.capabilities = std::move(capabilities_);
  result.client_notice = std::move(client_notice_);
  result.leftover = std::string(data);
  step_timer_.release();
  // Reading goes on: the new owner installs its handler within this call, before the loop can
  // deliver anything, and a stop/start pair would cost two epoll_ctl calls per login.
  stream_->setHandler(nullptr);
  result.stream = std::move(stream_);
  auto done = std::move(done_);
  done_ = nullptr;
  done(std::move(result));
}

void BackendLogin::succeed(std::string capabilities) {
  request_.password = Secret();
  capabilities_ = std::move(capabilities);
  succeeded_ = true;
}

void BackendLogin::onEnd() {
  fail(BackendFailure::Unavailable, "back-end closed the connection");
}

void BackendLogin::onError(std::string_view reason) {
  fail(BackendFailure::Unavailable, "back-end stream: " + std::string(reason));
}

void BackendLogin::fail(BackendFailure failure, std::string reason) {
  if (!done_) return;
  step_timer_.release();
  connector_.reset();
  if (stream_) {
    stream_->close();
    stream_.reset();
  }
  BackendLoginResult result;
  result.failure = failure;
  result.reason = std::move(reason);
  result.client_notice = std::move(client_notice_);
  auto done = std::move(done_);
  done_ = nullptr;
  done(std::move(result));
}

}  // namespace gatehouse
