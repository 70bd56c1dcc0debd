// A byte stream as sessions and the relay see it: plain TCP, or TLS layered over another stream.
// Callbacks arrive on the loop thread, never from inside a call the owner made (no re-entrancy).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace gatehouse {

class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  // Bytes read; the view is valid only during the call (it points into a shared loop buffer).
  virtual void onRead(std::string_view data) = 0;
  // The peer finished sending (TCP FIN, or TLS close_notify). Writing may continue.
  virtual void onEnd() = 0;
  // The stream failed (reset, TLS alert, write error); it is unusable and should be closed.
  // `reason` is for logs: it never contains user data.
  virtual void onError(std::string_view reason) = 0;
  // The write queue went from above the low watermark to below it (or to empty).
  virtual void onWritable() {}
};

class Stream {
 public:
  virtual ~Stream() = default;

  // The handler is not owned; it must outlive the stream or be replaced/cleared first.
  virtual void setHandler(StreamHandler* handler) = 0;
  virtual void readStart() = 0;
  virtual void readStop() = 0;

  // Queues bytes for writing. What cannot be written at once is copied; order is kept.
  virtual void write(std::string_view data) = 0;
  // Bytes accepted by write() and not yet handed to the kernel.
  virtual size_t queuedBytes() const = 0;
  // queuedBytes() and what the kernel has taken but the peer not yet acknowledged: it falls while
  // the peer reads, even when the kernel is too full to take more from the queue for a while.
  virtual size_t unsentBytes() const { return queuedBytes(); }
  // Sends FIN (or close_notify) after everything queued has been written.
  virtual void shutdownWrite() = 0;
  // Closes at once; no callback reaches the handler afterwards. Idempotent.
  virtual void close() = 0;
  // shutdownWrite(), then close() at once if that cannot turn into a reset: nothing is left to
  // send and nothing unread has arrived. Returns true if closed. On false the stream stays open
  // half-closed and the owner should linger (read until the peer closes) before closing.
  virtual bool closeGracefully() {
    shutdownWrite();
    return false;
  }

  // Acknowledge what arrives next at once instead of delaying the ACK (TCP_QUICKACK). For a
  // caller that has pipelined commands and now only waits: a peer with Nagle on holds its second
  // answer until the first is acknowledged, which a delayed ACK makes 40 ms late.
  virtual void ackPromptly() {}

  virtual bool isTls() const { return false; }
  // The TLS session was resumed from a ticket (its handshake had no certificate or signature).
  virtual bool tlsResumed() const { return false; }
  // Negotiated SNI name (server side TLS), or empty.
  virtual std::string serverName() const { return {}; }

  // Below this many queued bytes onWritable() is reported after a backlog.
  static constexpr size_t kLowWatermark = 64 * 1024;
  // Above this many queued bytes the producer should stop reading its source.
  static constexpr size_t kHighWatermark = 256 * 1024;
};

}  // namespace gatehouse
