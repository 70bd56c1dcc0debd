// Moves a known number of bytes from one TCP socket to another through a kernel pipe, so they never
// pass through user space: splice(2), as HAProxy does for TCP. The relay uses it for bytes nobody
// needs to look at (the rest of a large IMAP literal: a message body a FETCH returns) when both
// sides are plain TCP. It saves the two copies a read and a write would make.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/core/uv_handle.h"
#include "proxy/net/tcp_stream.h"

namespace gatehouse {

class SplicePump final : private ReadinessHandler {
 public:
  enum class Failure { SourceEnded, SourceFailed, DestinationFailed };

  class Owner {
   public:
    virtual ~Owner() = default;
    // `n` more bytes went into the destination socket.
    virtual void onPumped(uint64_t n) = 0;
    // Every byte went through; the source reads into user space again. May destroy the pump.
    virtual void onPumpDone() = 0;
    // The source ended or a side failed before every byte went through (what the pipe held was
    // passed on first when the destination could take it). May destroy the pump.
    virtual void onPumpFailed(Failure failure, std::string_view reason) = 0;
  };

  // Takes over reading `from`, which must be reading and have nothing unread in user space, and
  // writing `to`, whose write queue must be empty. nullptr when the kernel refuses a pipe (out of
  // descriptors): the caller goes on with read and write.
  static std::unique_ptr<SplicePump> start(uv_loop_t* loop, TcpStream& from, TcpStream& to,
                                           uint64_t bytes, Owner& owner);
  // Gives `from` back to reading into user space. Bytes still in the pipe are lost: a pump is only
  // destroyed early when its session ends.
  ~SplicePump() override;
  SplicePump(const SplicePump&) = delete;
  SplicePump& operator=(const SplicePump&) = delete;

  // Pipe capacity asked of the kernel: fewer, larger splices (Linux allows 1 MB unprivileged).
  static constexpr int kPipeBytes = 1 << 20;

 private:
  SplicePump(TcpStream& from, TcpStream& to, uint64_t bytes, Owner& owner);
  bool open(uv_loop_t* loop);
  void onReadable() override;
  static void onDestinationWritable(uv_poll_t* poll, int status, int events);
  void run();   // pull and push while both move, then settle()
  bool pull();  // source -> pipe; true if bytes moved
  bool push();  // pipe -> destination; true if bytes moved
  void setWaitingForDestination(bool waiting);
  // Reports the outcome, or makes the source report readiness only when the pump can use it.
  void settle();

  TcpStream& from_;
  TcpStream& to_;
  Owner& owner_;
  uv_loop_t* loop_ = nullptr;
  uint64_t left_to_pull_;  // bytes still to take from the source
  uint64_t in_pipe_ = 0;   // taken and not yet given to the destination
  int pipe_read_ = -1;
  int pipe_write_ = -1;
  int to_watch_fd_ = -1;  // a second descriptor for `to`'s socket, see setWaitingForDestination
  UvHandle<uv_poll_t> to_writable_;
  bool waiting_for_destination_ = false;
  bool source_paused_ = false;  // `from` stopped reading: see settle()
  bool source_ended_ = false;
  std::optional<Failure> failure_;
  std::string failure_reason_;
};

}  // namespace gatehouse
