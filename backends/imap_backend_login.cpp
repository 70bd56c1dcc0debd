#include "backends/imap_backend_login.h"

#include <openssl/mem.h>

#include "backends/backend_tls.h"
#include "proxy/imap/imap_string.h"

namespace gatehouse {
namespace {

// A back-end line longer than this during login is a protocol error, not something to buffer.
constexpr size_t kMaxBackendLine = 64 * 1024;

std::string idCommand(const BackendLoginRequest& r) {
  std::string cmd = "I ID (";
  auto field = [&cmd](std::string_view key, const std::string& value) {
    if (value.empty() || !imap::isQuotable(value)) return;
    if (cmd.back() != '(') cmd += ' ';
    cmd += imap::imapQuoted(key);
    cmd += ' ';
    cmd += imap::imapQuoted(value);
  };
  field("x-originating-ip", r.client_ip);
  field("x-originating-port", r.client_port);
  field("x-connected-ip", r.local_ip);
  field("x-connected-port", r.local_port);
  field("x-session-id", r.session_id);
  cmd += ")\r\n";
  return cmd;
}

}  // namespace

ImapBackendLogin::ImapBackendLogin(uv_loop_t* loop, const Backend& backend,
                                   BackendLoginRequest request, const Timeouts& timeouts,
                                   Callback done)
    : loop_(loop),
      backend_(backend),
      request_(std::move(request)),
      timeouts_(timeouts),
      done_(std::move(done)),
      step_timer_(loop) {}

ImapBackendLogin::~ImapBackendLogin() {
  *alive_ = false;
  if (stream_) stream_->close();
}

void ImapBackendLogin::start() {
  uint16_t port = backend_.port(Protocol::Imap);
  connector_ = std::make_unique<TcpConnector>(
      loop_, [this](std::unique_ptr<TcpStream> s, std::string e) { onConnected(std::move(s), std::move(e)); });
  // A port of 0 fails in connect() and is reported from the loop like any refused connection.
  connector_->connect(backend_.config.address, port, timeouts_.connect_ms);
}

void ImapBackendLogin::onConnected(std::unique_ptr<TcpStream> stream, std::string error) {
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
  state_ = State::Greeting;
  armStepTimer();
}

void ImapBackendLogin::armStepTimer() {
  step_timer_.start(timeouts_.greeting_ms, [this] {
    fail(BackendFailure::Unavailable, "back-end timed out in login step " +
                                          std::to_string(static_cast<int>(state_)));
  });
}

void ImapBackendLogin::onRead(std::string_view data) {
  while (!data.empty() && state_ != State::Done) {
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
    auto alive = alive_;
    handleLine(line);
    if (!*alive || !done_) return;  // failed, and `done` may have destroyed this object
  }
  if (state_ == State::Done) {
    BackendLoginResult result;
    result.capabilities = capabilities_;
    result.leftover = std::string(data);
    step_timer_.release();
    stream_->setHandler(nullptr);
    stream_->readStop();
    result.stream = std::move(stream_);
    auto done = std::move(done_);
    done(std::move(result));
  }
}

void ImapBackendLogin::handleLine(std::string_view line) {
  auto response = imap::parseResponseLine(line);
  if (!response) {
    fail(BackendFailure::Unavailable, "unparsable back-end response");
    return;
  }
  if (response->kind == imap::ResponseKind::Untagged &&
      response->status == imap::ResponseStatus::Bye) {
    fail(BackendFailure::Unavailable, "back-end said BYE");
    return;
  }
  switch (state_) {
    case State::Greeting: onGreeting(*response); break;
    case State::StartTls: onStartTlsAnswer(*response); break;
    case State::Capability:
    case State::PostCapability: onCapabilityLine(*response); break;
    case State::Login:
    case State::LoginContinue: onLoginAnswer(*response); break;
    case State::Connecting:
    case State::Done: break;
  }
}

void ImapBackendLogin::onGreeting(const imap::Response& r) {
  if (r.kind != imap::ResponseKind::Untagged || r.status != imap::ResponseStatus::Ok) {
    fail(BackendFailure::Unavailable, "unexpected back-end greeting");
    return;
  }
  if (r.code.rfind("CAPABILITY ", 0) == 0) noteCapabilities(r.code);
  if (backend_.config.tls == TlsMode::StartTls && !tls_active_) {
    state_ = State::StartTls;
    send("S STARTTLS\r\n");
  } else if (capabilities_.empty()) {
    state_ = State::Capability;
    send("C CAPABILITY\r\n");
  } else {
    sendLogin();
  }
}

void ImapBackendLogin::onStartTlsAnswer(const imap::Response& r) {
  if (r.kind != imap::ResponseKind::Tagged) return;
  if (r.status != imap::ResponseStatus::Ok) {
    fail(BackendFailure::Unavailable, "back-end refused STARTTLS");
    return;
  }
  // Capabilities seen before TLS are not to be trusted after it (RFC 3501 6.2.1).
  capabilities_.clear();
  stream_->setHandler(nullptr);
  stream_ = wrapClientTls(std::move(stream_), backend_, loop_);
  tls_active_ = true;
  stream_->setHandler(this);
  stream_->readStart();
  state_ = State::Capability;
  send("C CAPABILITY\r\n");
}

void ImapBackendLogin::onCapabilityLine(const imap::Response& r) {
  if (r.kind == imap::ResponseKind::Untagged && r.status == imap::ResponseStatus::None &&
      r.text.rfind("CAPABILITY ", 0) == 0) {
    noteCapabilities(r.text);
    return;
  }
  if (r.kind != imap::ResponseKind::Tagged) return;
  if (r.status != imap::ResponseStatus::Ok || capabilities_.empty()) {
    fail(BackendFailure::Unavailable, "back-end CAPABILITY failed");
    return;
  }
  if (state_ == State::PostCapability) {
    state_ = State::Done;
  } else {
    sendLogin();
  }
}

void ImapBackendLogin::noteCapabilities(const std::string& list) {
  auto caps = imap::splitCapabilities(list);
  capabilities_.clear();
  for (const auto& c : caps) {
    if (!capabilities_.empty()) capabilities_ += ' ';
    capabilities_ += c;
  }
}

void ImapBackendLogin::sendLogin() {
  auto caps = imap::splitCapabilities(capabilities_);
  if (imap::hasCapability(caps, "LOGINDISABLED") && !imap::hasCapability(caps, "AUTH=PLAIN")) {
    fail(BackendFailure::Unavailable, "back-end has LOGINDISABLED (needs TLS?)");
    return;
  }
  std::string batch = imap::hasCapability(caps, "ID") ? idCommand(request_) : std::string();
  std::string_view user = request_.user;
  std::string_view pass = request_.password.reveal();
  std::string plain;
  plain.push_back('\0');
  plain.append(user);
  plain.push_back('\0');
  plain.append(pass);
  bool literal_plus = imap::hasCapability(caps, "LITERAL+");
  state_ = State::Login;
  if (imap::hasCapability(caps, "AUTH=PLAIN") && imap::hasCapability(caps, "SASL-IR")) {
    batch += "L AUTHENTICATE PLAIN " + imap::base64Encode(plain) + "\r\n";
  } else if ((imap::isQuotable(user) && imap::isQuotable(pass)) || literal_plus) {
    batch += "L LOGIN " + imap::imapAstring(user, literal_plus) + " " +
             imap::imapAstring(pass, literal_plus) + "\r\n";
  } else if (imap::hasCapability(caps, "AUTH=PLAIN")) {
    batch += "L AUTHENTICATE PLAIN\r\n";
    state_ = State::LoginContinue;
  } else {
    OPENSSL_cleanse(plain.data(), plain.size());
    fail(BackendFailure::Unavailable, "back-end offers no way to send these credentials");
    return;
  }
  OPENSSL_cleanse(plain.data(), plain.size());
  send(std::move(batch));
}

void ImapBackendLogin::onLoginAnswer(const imap::Response& r) {
  if (r.kind == imap::ResponseKind::Continuation && state_ == State::LoginContinue) {
    std::string plain;
    plain.push_back('\0');
    plain.append(request_.user);
    plain.push_back('\0');
    plain.append(request_.password.reveal());
    std::string line = imap::base64Encode(plain) + "\r\n";
    OPENSSL_cleanse(plain.data(), plain.size());
    state_ = State::Login;
    send(std::move(line));
    return;
  }
  if (r.kind != imap::ResponseKind::Tagged || r.tag != "L") return;  // ID's answer and data
  if (r.status == imap::ResponseStatus::Ok) {
    request_.password = Secret();
    if (r.code.rfind("CAPABILITY ", 0) == 0) {
      noteCapabilities(r.code);
      state_ = State::Done;
    } else {
      capabilities_.clear();
      state_ = State::PostCapability;
      send("C CAPABILITY\r\n");
    }
    return;
  }
  if (r.status == imap::ResponseStatus::No && r.code != "UNAVAILABLE" && r.code != "SERVERBUG") {
    fail(BackendFailure::AuthFailed, "back-end refused login: " + r.code);
  } else {
    fail(BackendFailure::Unavailable, "back-end login failed: " + r.code);
  }
}

void ImapBackendLogin::send(std::string command) {
  armStepTimer();
  stream_->write(command);
  OPENSSL_cleanse(command.data(), command.size());
}

void ImapBackendLogin::onEnd() { fail(BackendFailure::Unavailable, "back-end closed the connection"); }

void ImapBackendLogin::onError(std::string_view reason) {
  fail(BackendFailure::Unavailable, "back-end stream: " + std::string(reason));
}

void ImapBackendLogin::fail(BackendFailure failure, std::string reason) {
  if (!done_) return;
  state_ = State::Done;
  step_timer_.release();
  connector_.reset();
  if (stream_) {
    stream_->close();
    stream_.reset();
  }
  BackendLoginResult result;
  result.failure = failure;
  result.reason = std::move(reason);
  auto done = std::move(done_);
  done_ = nullptr;
  done(std::move(result));
}

}  // namespace gatehouse
