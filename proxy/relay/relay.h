// Moves bytes between a client stream and a back-end stream after login. A side whose peer has
// more than the high watermark queued stops reading until the peer drains below the low mark.
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/net/stream.h"

namespace gatehouse {

enum class RelaySide { Client, Backend };

class RelayObserver {
 public:
  virtual ~RelayObserver() = default;
  // Bytes read from `from`, about to be written to the other side. The observer may only look
  // (protocol framing, e.g. IMAP's BYE tracking); it must not close streams from here.
  virtual void onRelayBytes(RelaySide from, std::string_view data) = 0;
  // Called before onRelayBytes: whether the bytes may be forwarded at all (SMTP refuses commands
  // that would undo the login). On false the relay drops them and does nothing more in this
  // call, so the observer may end the session (and close the streams) from here.
  virtual bool mayForward(RelaySide /*from*/, std::string_view /*data*/) { return true; }
  // Called after mayForward: the bytes to write in place of `data` (SMTP takes the extensions it
  // refuses out of EHLO replies). New bytes are kept in `scratch`.
  virtual std::string_view rewrite(RelaySide /*from*/, std::string_view data,
                                   std::string& /*scratch*/) {
    return data;
  }
  // `side` finished sending (error=false) or failed. The relay has done nothing about it yet:
  // call passEnd() to forward a half-close, or end the session.
  virtual void onRelayEnded(RelaySide side, bool error, std::string_view reason) = 0;
};

class Relay {
 public:
  // `loop` only supplies the clock for lastActivityMs().
  Relay(uv_loop_t* loop, Stream& client, Stream& backend, RelayObserver& observer);
  ~Relay();
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // Installs itself as both streams' handler and starts reading both.
  void start();
  // Detaches from both streams (they stay open).
  void detach();
  // Forwards `side`'s end of data as a half-close of the other side's write direction.
  void passEnd(RelaySide side);
  bool bothEnded() const { return client_.ended && backend_.ended; }

  uint64_t bytesFromClient() const { return client_.bytes; }
  uint64_t bytesFromBackend() const { return backend_.bytes; }
  uint64_t pauses() const { return client_.pauses + backend_.pauses; }
  uint64_t lastActivityMs() const { return last_activity_ms_; }
  // Relay bytes from a side as if read (bytes a session buffered before the relay started).
  void inject(RelaySide from, std::string_view data);
  // As if `from` had ended its stream now (an end read before the relay existed).
  void injectEnd(RelaySide from);

 private:
  struct Side final : StreamHandler {
    Relay* relay = nullptr;
    RelaySide side = RelaySide::Client;
    Stream* self = nullptr;
    Stream* peer = nullptr;
    Side* peer_side = nullptr;
    uint64_t bytes = 0;
    uint64_t pauses = 0;
    bool paused = false;  // self stopped reading because peer's queue is full
    bool ended = false;
    void onRead(std::string_view data) override;
    void onEnd() override;
    void onError(std::string_view reason) override;
    void onWritable() override;
  };

  Side client_;
  Side backend_;
  uv_loop_t* loop_;
  RelayObserver& observer_;
  uint64_t last_activity_ms_;
};

}  // namespace gatehouse
