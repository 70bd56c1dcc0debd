// TLS over any Stream (TCP in production, a memory pipe in tests): ciphertext from the transport
// goes into BoringSSL, plaintext comes out to the handler; no buffer is held while idle.
#include "tls/tls_stream.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cassert>
#include <climits>
#include <cstring>
#include <utility>

namespace gatehouse {
namespace {

// One TLS record's worth of plaintext: what a single SSL_read can return at most.
constexpr size_t kPlainChunk = 16 * 1024;
// A per-thread output buffer larger than this (after a big write) is freed, not kept.
constexpr size_t kMaxKeptScratch = 256 * 1024;

// Per-thread buffers shared by every TlsStream of a worker. They are "leased" by moving them out
// of the slot, so even a nested use (one stream's upcall driving another) cannot share one.
std::string& outputSlot() {
  thread_local std::string slot;
  return slot;
}

std::unique_ptr<char[]>& plainSlot() {
  thread_local std::unique_ptr<char[]> slot;
  return slot;
}

class PlainBuffer {
 public:
  PlainBuffer() : data_(std::move(plainSlot())) {
    if (!data_) data_ = std::make_unique<char[]>(kPlainChunk);
  }
  PlainBuffer(const PlainBuffer&) = delete;
  PlainBuffer& operator=(const PlainBuffer&) = delete;
  ~PlainBuffer() { plainSlot() = std::move(data_); }
  char* data() const { return data_.get(); }

 private:
  std::unique_ptr<char[]> data_;
};

std::string lowerCase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// "SSLV3_ALERT_BAD_RECORD_MAC" -> "bad_record_mac": the alert's name as the RFCs spell it.
std::string alertName(std::string_view reason) {
  for (std::string_view prefix : {"SSLV3_ALERT_", "TLSV1_ALERT_"}) {
    if (reason.substr(0, prefix.size()) == prefix) {
      reason.remove_prefix(prefix.size());
      break;
    }
  }
  return lowerCase(reason);
}

}  // namespace

const BIO_METHOD* TlsStream::bioMethod() {
  static const bssl::UniquePtr<BIO_METHOD> method = [] {
    bssl::UniquePtr<BIO_METHOD> m(
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "gatehouse stream"));
    if (m) {
      BIO_meth_set_read(m.get(), bioRead);
      BIO_meth_set_write(m.get(), bioWrite);
      BIO_meth_set_ctrl(m.get(), bioCtrl);
    }
    return m;
  }();
  return method.get();
}

// SSL reads ciphertext from the bytes the transport handed us in this event, and nothing else.
int TlsStream::bioRead(BIO* bio, char* out, int len) {
  auto* self = static_cast<TlsStream*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  if (self->in_.empty()) {
    BIO_set_retry_read(bio);
    return -1;
  }
  size_t n = std::min(self->in_.size(), static_cast<size_t>(std::max(len, 0)));
  std::memcpy(out, self->in_.data(), n);
  self->in_.remove_prefix(n);
  return static_cast<int>(n);
}

// Records are collected and handed to the transport by flushOutput(), in one write.
int TlsStream::bioWrite(BIO* bio, const char* in, int len) {
  auto* self = static_cast<TlsStream*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  if (len <= 0) return 0;
  // Borrow the thread's buffer for this batch; flushOutput() gives it back.
  if (self->out_.empty() && self->out_.capacity() < outputSlot().capacity()) {
    self->out_.swap(outputSlot());
  }
  self->out_.append(in, static_cast<size_t>(len));
  return len;
}

long TlsStream::bioCtrl(BIO* /*bio*/, int cmd, long /*num*/, void* /*ptr*/) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

TlsStream::TlsStream(std::unique_ptr<Stream> transport, bssl::UniquePtr<SSL> ssl, uv_loop_t* loop,
                     std::string received)
    : transport_(std::move(transport)),
      ssl_(std::move(ssl)),
      loop_(loop),
      alive_(std::make_shared<bool>(true)),
      pending_cipher_(std::move(received)) {
  assert(transport_ != nullptr && loop_ != nullptr);
  transport_->setHandler(this);
  BIO* bio = (ssl_ && bioMethod() != nullptr) ? BIO_new(bioMethod()) : nullptr;
  if (bio == nullptr) {
    latchError("tls: cannot create the connection (out of memory)");
    return;
  }
  BIO_set_data(bio, this);
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl_.get(), bio, bio);  // one reference, owned by the SSL from here
  // Frees the certificate and configuration copies once the handshake is done (idle memory).
  SSL_set_shed_handshake_config(ssl_.get(), 1);
  if (!SSL_is_server(ssl_.get())) {
    std::string error;
    advanceHandshake(error);  // writes the ClientHello
    flushOutput();
    if (!error.empty()) latchError(std::move(error));
  }
}

TlsStream::~TlsStream() {
  *alive_ = false;
  if (transport_) transport_->close();
}

void TlsStream::readStart() {
  if (state_ == State::kClosed) return;
  reading_ = true;
  transport_->readStart();
  bool waiting = state_ == State::kOpen ? hasBufferedInput() || transport_ended_
                                        : state_ == State::kHandshaking && !pending_cipher_.empty();
  if (waiting) scheduleDeferred();
}

void TlsStream::readStop() {
  if (state_ == State::kClosed) return;
  reading_ = false;
  transport_->readStop();
}

void TlsStream::write(std::string_view data) {
  if (state_ == State::kFailed || state_ == State::kClosed || shutdown_requested_) return;
  if (data.empty()) return;
  if (state_ == State::kHandshaking) {
    pending_plain_.append(data);
    return;
  }
  std::string error;
  bool ok = encrypt(data, error);
  flushOutput();
  if (!ok) latchError(std::move(error));
}

size_t TlsStream::queuedBytes() const {
  return pending_plain_.size() + (transport_ ? transport_->queuedBytes() : 0);
}

size_t TlsStream::unsentBytes() const {
  return pending_plain_.size() + (transport_ ? transport_->unsentBytes() : 0);
}

void TlsStream::shutdownWrite() {
  if (state_ == State::kFailed || state_ == State::kClosed || shutdown_requested_) return;
  shutdown_requested_ = true;
  if (state_ == State::kOpen) sendCloseNotify();  // else when the handshake completes
}

void TlsStream::close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  handler_ = nullptr;
  deferred_.reset();
  std::string().swap(pending_plain_);
  std::string().swap(pending_cipher_);
  std::string().swap(pending_error_);
  transport_->close();
}

bool TlsStream::closeGracefully() {
  if (state_ != State::kOpen || shutdown_requested_ || hasBufferedInput() ||
      !pending_plain_.empty()) {
    shutdownWrite();
    return false;
  }
  shutdown_requested_ = true;
  writeCloseNotify();
  if (!transport_->closeGracefully()) return false;
  close();
  return true;
}

std::string TlsStream::serverName() const {
  const char* name = ssl_ ? SSL_get_servername(ssl_.get(), TLSEXT_NAMETYPE_host_name) : nullptr;
  return name != nullptr ? name : "";
}

std::string TlsStream::alpnSelected() const {
  if (!ssl_) return {};
  const uint8_t* data = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(ssl_.get(), &data, &len);
  return std::string(reinterpret_cast<const char*>(data), data != nullptr ? len : 0);
}

bool TlsStream::tlsResumed() const {
  return ssl_ && SSL_session_reused(ssl_.get()) != 0;
}

std::string TlsStream::tlsVersion() const {
  if (!ssl_ || state_ == State::kHandshaking) return {};
  return SSL_get_version(ssl_.get());
}

// ---- transport events ----

void TlsStream::onRead(std::string_view data) {
  if (state_ == State::kClosed) return;
  if (state_ == State::kFailed) {
    runDeferred();  // reports a latched error, if any; this is a later event
    return;
  }
  if (!pending_cipher_.empty() || (!reading_ && state_ == State::kOpen)) {
    // Keep the order behind what a pause left over; handled when reading resumes.
    pending_cipher_.append(data);
    if (!reading_) return;
    std::string batch;
    batch.swap(pending_cipher_);
    processInput(batch);
    return;
  }
  processInput(data);
}

void TlsStream::onEnd() {
  if (state_ == State::kClosed) return;
  if (state_ == State::kFailed) {
    runDeferred();
    return;
  }
  if (state_ == State::kHandshaking) {
    fail("tls: connection closed during handshake");
    return;
  }
  transport_ended_ = true;
  if (!reading_) return;  // after the buffered input, on readStart
  if (hasBufferedInput()) {
    // Plaintext a pause left inside SSL (or ciphertext behind it) goes first: reading resumed
    // and a deferred run is due, or is scheduled now, to deliver it and then the end.
    scheduleDeferred();
    return;
  }
  handleTransportEnd();
}

void TlsStream::onError(std::string_view reason) {
  if (state_ == State::kClosed) return;
  if (state_ == State::kFailed) {
    runDeferred();
    return;
  }
  state_ = State::kFailed;
  if (handler_ != nullptr) handler_->onError(reason);
}

void TlsStream::onWritable() {
  if (state_ != State::kOpen) return;
  if (handler_ != nullptr) handler_->onWritable();
}

// ---- the engine ----

bool TlsStream::processInput(std::string_view data) {
  in_ = data;
  if (state_ == State::kHandshaking) {
    std::string error;
    bool done = advanceHandshake(error);
    if (!error.empty()) {
      auto alive = alive_;
      fail(std::move(error));
      return *alive;
    }
    if (!done) {
      in_ = {};
      flushOutput();
      return true;
    }
  }
  if (!deliverPlaintext()) return false;
  // Whatever the handler did not want yet (it paused reading) waits for readStart().
  if (!in_.empty() && state_ == State::kOpen && !end_reported_) pending_cipher_.append(in_);
  in_ = {};
  flushOutput();
  return true;
}

bool TlsStream::advanceHandshake(std::string& error) {
  ERR_clear_error();
  int rc = SSL_do_handshake(ssl_.get());
  if (rc != 1) {
    int ssl_error = SSL_get_error(ssl_.get(), rc);
    if (ssl_error != SSL_ERROR_WANT_READ) error = describeError(ssl_error);
    return false;
  }
  state_ = State::kOpen;
  if (!pending_plain_.empty()) {
    std::string plain;
    plain.swap(pending_plain_);  // frees the queue once sent
    if (!encrypt(plain, error)) return false;
  }
  if (shutdown_requested_) sendCloseNotify();
  return true;
}

bool TlsStream::deliverPlaintext() {
  while (state_ == State::kOpen && reading_ && !end_reported_) {
    PlainBuffer buffer;
    size_t filled = 0;
    int ssl_error = SSL_ERROR_NONE;
    ERR_clear_error();
    while (filled < kPlainChunk) {
      int rc = SSL_read(ssl_.get(), buffer.data() + filled, static_cast<int>(kPlainChunk - filled));
      if (rc <= 0) {
        ssl_error = SSL_get_error(ssl_.get(), rc);
        break;
      }
      filled += static_cast<size_t>(rc);
    }
    // Described now: the handler's upcall below may touch the thread's error queue.
    std::string error;
    if (ssl_error != SSL_ERROR_NONE && ssl_error != SSL_ERROR_WANT_READ &&
        ssl_error != SSL_ERROR_ZERO_RETURN) {
      error = describeError(ssl_error);
    }
    auto alive = alive_;
    if (filled > 0) {
      flushOutput();  // anything SSL wrote (e.g. a KeyUpdate answer) goes before the reply
      if (handler_ != nullptr) handler_->onRead(std::string_view(buffer.data(), filled));
      if (!*alive) return false;
      if (state_ != State::kOpen) return true;  // closed by the handler
    }
    if (ssl_error == SSL_ERROR_WANT_READ) return true;
    if (ssl_error == SSL_ERROR_ZERO_RETURN) {  // close_notify
      end_reported_ = true;
      flushOutput();
      if (handler_ != nullptr) handler_->onEnd();
      return *alive;
    }
    if (!error.empty()) {
      fail(std::move(error));
      return *alive;
    }
  }
  return true;
}

bool TlsStream::encrypt(std::string_view plaintext, std::string& error) {
  ERR_clear_error();
  while (!plaintext.empty()) {
    int chunk = static_cast<int>(std::min<size_t>(plaintext.size(), INT_MAX / 2));
    int rc = SSL_write(ssl_.get(), plaintext.data(), chunk);
    if (rc <= 0) {
      error = describeError(SSL_get_error(ssl_.get(), rc));
      return false;
    }
    plaintext.remove_prefix(static_cast<size_t>(rc));
  }
  return true;
}

void TlsStream::sendCloseNotify() {
  writeCloseNotify();
  transport_->shutdownWrite();
}

void TlsStream::writeCloseNotify() {
  ERR_clear_error();
  SSL_shutdown(ssl_.get());  // 0: sent ours, the peer's is still to come; that is all we need
  ERR_clear_error();
  flushOutput();
}

void TlsStream::flushOutput() {
  if (!out_.empty()) transport_->write(out_);
  // Give the buffer back to the thread (or free it if it grew large); idle streams hold none.
  std::string& slot = outputSlot();
  if (out_.capacity() > slot.capacity() && out_.capacity() <= kMaxKeptScratch) {
    out_.clear();
    slot.swap(out_);
  }
  std::string().swap(out_);
}

bool TlsStream::handleTransportEnd() {
  transport_ended_ = false;
  if (end_reported_) return true;
  end_reported_ = true;
  auto alive = alive_;
  if (SSL_has_pending(ssl_.get())) {
    fail("tls: connection closed in the middle of a record");
  } else if (handler_ != nullptr) {
    handler_->onEnd();  // without close_notify: mail protocols frame their own data
  }
  return *alive;
}

void TlsStream::fail(std::string reason) {
  state_ = State::kFailed;
  in_ = {};
  flushOutput();  // the alert SSL queued, so the peer learns why
  if (handler_ != nullptr) handler_->onError(reason);
}

void TlsStream::latchError(std::string reason) {
  state_ = State::kFailed;
  pending_error_ = std::move(reason);
  scheduleDeferred();
}

bool TlsStream::hasBufferedInput() const {
  return !pending_cipher_.empty() || (ssl_ && SSL_has_pending(ssl_.get()));
}

void TlsStream::scheduleDeferred() {
  if (!deferred_) {
    int rc = deferred_.init(this, [this](uv_idle_t* h) { return uv_idle_init(loop_, h); });
    if (rc != 0) return;  // uv_idle_init cannot fail on a live loop
  }
  uv_idle_start(deferred_.get(), onDeferred);
}

void TlsStream::onDeferred(uv_idle_t* handle) {
  uv_idle_stop(handle);
  if (auto* self = ownerOf<TlsStream>(handle)) self->runDeferred();
}

void TlsStream::runDeferred() {
  if (state_ == State::kClosed) return;
  if (!pending_error_.empty()) {
    std::string reason;
    reason.swap(pending_error_);
    if (handler_ != nullptr) handler_->onError(reason);
    return;
  }
  if ((state_ != State::kOpen && state_ != State::kHandshaking) || !reading_) return;
  if (hasBufferedInput()) {
    std::string batch;
    batch.swap(pending_cipher_);
    if (!processInput(batch)) return;
  }
  if (transport_ended_ && state_ == State::kOpen && reading_ && pending_cipher_.empty()) {
    handleTransportEnd();
  }
}

std::string TlsStream::describeError(int ssl_error) {
  uint32_t err = ERR_peek_error();
  std::string reason;
  if (err == 0) {
    reason = ssl_error == SSL_ERROR_SYSCALL ? "tls: connection closed unexpectedly"
                                            : "tls: error " + std::to_string(ssl_error);
  } else if (ERR_GET_LIB(err) == ERR_LIB_SSL &&
             ERR_GET_REASON(err) == SSL_R_CERTIFICATE_VERIFY_FAILED && !SSL_is_server(ssl_.get())) {
    long result = SSL_get_verify_result(ssl_.get());
    reason =
        std::string("tls: certificate verify failed: ") + X509_verify_cert_error_string(result);
  } else {
    const char* text = ERR_reason_error_string(err);
    int code = ERR_GET_REASON(err);
    std::string name = text != nullptr ? text : "error " + std::to_string(code);
    if (ERR_GET_LIB(err) == ERR_LIB_SSL && code >= SSL_AD_REASON_OFFSET &&
        code < SSL_AD_REASON_OFFSET + 256) {
      reason = "tls: alert received: " + alertName(name);
    } else {
      reason = "tls: " + lowerCase(name);
    }
  }
  ERR_clear_error();
  return reason;
}

}  // namespace gatehouse
