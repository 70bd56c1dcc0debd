// An in-memory Stream pair for unit tests: what one end writes reaches the other only when the
// test calls pump(), so callbacks never run inside a call the owner made (as with a real loop).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "proxy/net/stream.h"

namespace gatehouse::testing {

class MemoryPipe {
 public:
  enum Side { kA = 0, kB = 1 };
  static constexpr size_t kUnlimited = SIZE_MAX;

 private:
  struct SideState {
    StreamHandler* handler = nullptr;
    bool reading = false;
    bool closed = false;
    std::string inbound;       // arrived from the peer, not yet delivered
    bool fin_inbound = false;  // the peer's FIN arrived (after `inbound`)
    bool end_delivered = false;
    std::string outbound;  // written, not yet accepted by the "kernel"
    bool shutdown_requested = false;
    bool fin_sent = false;
    size_t capacity = kUnlimited;
    size_t budget = kUnlimited;  // what the "kernel" still accepts this round
    bool above_low = false;      // onWritable is due when the queue falls below the mark
    bool writable_due = false;
    std::string error;  // injected, delivered by the next pump()
    size_t write_calls = 0;
    size_t bytes_written = 0;
  };

  struct State {
    SideState side[2];

    void toPeer(int from, std::string_view data) {
      SideState& peer = side[1 - from];
      if (!peer.closed) peer.inbound += data;
    }
    void maybeSendFin(int from) {
      SideState& s = side[from];
      if (s.shutdown_requested && s.outbound.empty() && !s.fin_sent) {
        s.fin_sent = true;
        side[1 - from].fin_inbound = true;
      }
    }
    // Starts a pump round for one side: refills its budget and moves queued bytes to the peer.
    bool transfer(int from, size_t budget) {
      SideState& s = side[from];
      s.budget = s.capacity;
      size_t n = std::min(budget, s.outbound.size());
      if (n > 0) {
        toPeer(from, std::string_view(s.outbound).substr(0, n));
        s.outbound.erase(0, n);
        if (s.budget != kUnlimited) s.budget -= std::min(s.budget, n);
      }
      if (s.above_low && s.outbound.size() <= Stream::kLowWatermark) {
        s.above_low = false;
        s.writable_due = true;
      }
      bool fin_before = s.fin_sent;
      maybeSendFin(from);
      return n > 0 || fin_before != s.fin_sent;
    }
    // One callback to one side's handler, if one is due. The handler may close or destroy its
    // end (or anything else) inside the callback: nothing of it is touched afterwards.
    bool deliverOne(int to) {
      SideState& s = side[to];
      StreamHandler* handler = s.handler;
      if (s.closed || handler == nullptr) return false;
      if (!s.error.empty()) {
        std::string reason = std::exchange(s.error, {});
        handler->onError(reason);
        return true;
      }
      if (s.writable_due) {
        s.writable_due = false;
        handler->onWritable();
        return true;
      }
      if (!s.reading) return false;
      if (!s.inbound.empty()) {
        constexpr size_t kChunk = 64 * 1024;  // like one libuv read
        std::string chunk = s.inbound.substr(0, kChunk);
        s.inbound.erase(0, chunk.size());
        handler->onRead(chunk);
        return true;
      }
      if (s.fin_inbound && !s.end_delivered) {
        s.end_delivered = true;
        handler->onEnd();
        return true;
      }
      return false;
    }
  };

 public:
  class End;

  MemoryPipe() : state_(std::make_shared<State>()) {}

  // Each end once. The pipe keeps working if an end is destroyed (it is then closed).
  std::unique_ptr<End> take(Side side) { return std::make_unique<End>(state_, side); }

  // The "kernel" accepts at most `bytes` from this side per pump() round; the rest stays in
  // the end's queue (queuedBytes() grows). kUnlimited (the default) accepts everything at once.
  void setWriteCapacity(Side side, size_t bytes) {
    state_->side[side].capacity = bytes;
    state_->side[side].budget = bytes;
  }
  // Moves everything queued on both sides to the peers now (delivered by the next pump()).
  void drain() {
    for (int s : {kA, kB}) state_->transfer(s, kUnlimited);
  }
  // This side's handler gets onError(reason) on the next pump().
  void injectError(Side side, std::string reason) { state_->side[side].error = std::move(reason); }
  // Bytes that arrive at `side` as if its peer had sent them.
  void injectBytes(Side side, std::string_view bytes) { state_->side[side].inbound += bytes; }
  // How many write() calls this side made (a TLS stream should make one per write of its own).
  size_t writeCalls(Side side) const { return state_->side[side].write_calls; }
  size_t bytesWritten(Side side) const { return state_->side[side].bytes_written; }

  // Delivers what is due, round after round, until nothing moves (at most `max_rounds`).
  // Returns true if anything was delivered.
  bool pump(int max_rounds = 10000) {
    bool any = false;
    for (int round = 0; round < max_rounds; ++round) {
      bool progress = false;
      for (int s : {kA, kB}) progress |= state_->transfer(s, state_->side[s].capacity);
      for (int s : {kA, kB}) progress |= state_->deliverOne(s);
      if (!progress) break;
      any = true;
    }
    return any;
  }

  class End : public Stream {
   public:
    ~End() override { close(); }
    void setHandler(StreamHandler* handler) override { me().handler = handler; }
    void readStart() override { me().reading = true; }
    void readStop() override { me().reading = false; }
    void write(std::string_view data) override {
      SideState& s = me();
      if (s.closed || s.shutdown_requested) return;
      ++s.write_calls;
      s.bytes_written += data.size();
      size_t direct = s.outbound.empty() ? std::min(s.budget, data.size()) : 0;
      state_->toPeer(side_, data.substr(0, direct));
      s.budget -= direct;
      s.outbound += data.substr(direct);
      if (s.outbound.size() > kLowWatermark) s.above_low = true;
    }
    size_t queuedBytes() const override { return state_->side[side_].outbound.size(); }
    void shutdownWrite() override {
      SideState& s = me();
      if (s.closed || s.shutdown_requested) return;
      s.shutdown_requested = true;
      state_->maybeSendFin(side_);
    }
    void close() override {
      SideState& s = me();
      if (s.closed) return;
      s.closed = true;
      s.handler = nullptr;
      s.outbound.clear();  // unsent bytes die with the socket
      s.shutdown_requested = true;
      state_->maybeSendFin(side_);
    }

    // Made by MemoryPipe::take().
    End(std::shared_ptr<State> state, Side side) : state_(std::move(state)), side_(side) {}

   private:
    SideState& me() { return state_->side[side_]; }

    std::shared_ptr<State> state_;
    int side_;
  };

  std::shared_ptr<State> state_;
};

}  // namespace gatehouse::testing
