// TLS over any Stream (TCP in production, a memory pipe in tests): ciphertext from the transport
// goes into BoringSSL, plaintext comes out to the handler; no buffer is held while idle.
#pragma once

#include <openssl/base.h>
#include <uv.h>

#include <memory>
#include <string>
#include <string_view>

#include "proxy/core/uv_handle.h"
#include "proxy/net/stream.h"

namespace gatehouse {

// Server or client mode follows the SSL (ServerTlsContext::newSsl / ClientTlsContext::newSsl).
//
// Reporting: errors found while handling a transport event (handshake failure, bad record, alert,
// certificate verification) are reported from that event. Errors found inside write() are latched
// and reported from a loop callback (uv_idle on `loop`), as is input left over when the handler
// paused reading in the middle of a batch and then called readStart() again.
//
// Memory: while idle this holds the SSL (BoringSSL frees its record buffers when empty), the
// transport and a few words. Plaintext is decrypted into a per-thread buffer; records produced by
// one write() are collected in a per-thread buffer and handed to the transport in one write.
class TlsStream : public Stream, private StreamHandler {
 public:
  // Takes ownership of `transport` and becomes its handler. A client starts its handshake here
  // (the ClientHello is written to the transport at once). `received` is ciphertext the transport
  // delivered before this stream existed; it is handled, before anything newer, from the loop
  // once reading starts.
  TlsStream(std::unique_ptr<Stream> transport, bssl::UniquePtr<SSL> ssl, uv_loop_t* loop,
            std::string received = {});
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;
  ~TlsStream() override;

  // Stream.
  void setHandler(StreamHandler* handler) override { handler_ = handler; }
  void readStart() override;
  void readStop() override;
  // Before the handshake completes the plaintext is queued, then sent with the last flight.
  void write(std::string_view data) override;
  size_t queuedBytes() const override;
  size_t unsentBytes() const override;
  // close_notify, then the transport's FIN (deferred until the handshake completes).
  void shutdownWrite() override;
  void close() override;
  // close_notify, then the transport's own graceful close.
  bool closeGracefully() override;
  void ackPromptly() override { transport_->ackPromptly(); }
  bool isTls() const override { return true; }
  bool tlsResumed() const override;
  // Server: the SNI the client asked for. Client: the SNI we sent. Empty if none.
  std::string serverName() const override;

  bool handshakeDone() const { return state_ == State::kOpen; }
  std::string alpnSelected() const;
  std::string tlsVersion() const;  // "TLSv1.3", ...; empty before the handshake
  // The connection, for diagnostics (peer certificate, cipher) and tests.
  const SSL* ssl() const { return ssl_.get(); }

 private:
  enum class State { kHandshaking, kOpen, kFailed, kClosed };

  // StreamHandler: events from the transport.
  void onRead(std::string_view data) override;
  void onEnd() override;
  void onError(std::string_view reason) override;
  void onWritable() override;

  // Feeds `data` (ciphertext) to SSL and delivers what comes out. Returns false if this object
  // was destroyed by the handler meanwhile.
  bool processInput(std::string_view data);
  // True once the handshake is complete (then queued plaintext is encrypted); `error` is set on
  // failure and left empty while more input is needed.
  bool advanceHandshake(std::string& error);
  bool deliverPlaintext();                                       // false if destroyed
  bool encrypt(std::string_view plaintext, std::string& error);  // false on an SSL error
  void sendCloseNotify();   // close_notify and the transport's FIN
  void writeCloseNotify();  // close_notify only
  void flushOutput();
  bool handleTransportEnd();            // false if destroyed
  void fail(std::string reason);        // from a transport event: report now
  void latchError(std::string reason);  // from an owner's call: report from the loop
  bool hasBufferedInput() const;
  void scheduleDeferred();
  static void onDeferred(uv_idle_t* handle);
  void runDeferred();
  std::string describeError(int ssl_result);

  static int bioRead(BIO* bio, char* out, int len);
  static int bioWrite(BIO* bio, const char* in, int len);
  static long bioCtrl(BIO* bio, int cmd, long num, void* ptr);
  static const BIO_METHOD* bioMethod();

  std::unique_ptr<Stream> transport_;
  bssl::UniquePtr<SSL> ssl_;
  uv_loop_t* loop_;
  StreamHandler* handler_ = nullptr;
  // Set to false by the destructor; upcalls hold a copy to learn whether they were fatal.
  std::shared_ptr<bool> alive_;
  UvHandle<uv_idle_t> deferred_;  // created on first need

  State state_ = State::kHandshaking;
  bool reading_ = false;             // the handler wants onRead
  bool shutdown_requested_ = false;  // shutdownWrite() called
  bool transport_ended_ = false;     // transport EOF seen, not yet acted on (reading paused)
  bool end_reported_ = false;        // onEnd() delivered (close_notify or EOF)

  std::string_view in_;         // ciphertext being fed to SSL (only during processInput)
  std::string out_;             // records collected for one transport write (empty when idle)
  std::string pending_plain_;   // written before the handshake completed
  std::string pending_cipher_;  // left when the handler paused mid-batch, or given at creation
  std::string pending_error_;   // latched inside write(), reported from the loop
};

}  // namespace gatehouse
