#include "proxy/relay/splice_pump.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace gatehouse {
namespace {

constexpr unsigned kSpliceFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
// One splice asks for at most this much; the pipe's capacity stops it sooner.
constexpr uint64_t kMaxSplice = 1u << 30;
// Pull-and-push rounds per event: a source that keeps up is drained without a trip through
// epoll_wait per pipe-full, and one busy session still cannot hold the loop.
constexpr int kRoundsPerEvent = 8;

void closeFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

SplicePump::SplicePump(TcpStream& from, TcpStream& to, uint64_t bytes, Owner& owner)
    : from_(from), to_(to), owner_(owner), left_to_pull_(bytes) {}

std::unique_ptr<SplicePump> SplicePump::start(uv_loop_t* loop, TcpStream& from, TcpStream& to,
                                              uint64_t bytes, Owner& owner) {
  std::unique_ptr<SplicePump> pump(new SplicePump(from, to, bytes, owner));
  if (!pump->open(loop)) return nullptr;
  // The source's next readiness (at once if it holds more) reaches the pump instead of a read.
  from.setReadinessHandler(pump.get());
  return pump;
}

bool SplicePump::open(uv_loop_t* loop) {
  if (from_.socketFd() < 0 || to_.socketFd() < 0) return false;
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return false;
  pipe_read_ = fds[0];
  pipe_write_ = fds[1];
  // A pipe left at its default 64 KB only means more splices per literal.
  const int capacity = static_cast<int>(std::min<uint64_t>(left_to_pull_, kPipeBytes));
  (void)fcntl(pipe_write_, F_SETPIPE_SZ, capacity);
  loop_ = loop;
  return true;
}

SplicePump::~SplicePump() {
  from_.setReadinessHandler(nullptr);
  to_writable_.reset();  // stops watching before the descriptor goes
  closeFd(to_watch_fd_);
  closeFd(pipe_read_);
  closeFd(pipe_write_);
}

void SplicePump::onReadable() {
  run();
}

void SplicePump::onDestinationWritable(uv_poll_t* poll, int status, int) {
  auto* self = ownerOf<SplicePump>(poll);
  if (self == nullptr) return;
  // On a socket error libuv stops the watch and says only UV_EBADF; the next splice says what.
  if (status < 0) self->waiting_for_destination_ = false;
  self->run();
}

void SplicePump::run() {
  for (int round = 0; round < kRoundsPerEvent && !failure_; ++round) {
    const bool pulled = pull();
    const bool pushed = push();
    if (!pulled && !pushed) break;
    if (waiting_for_destination_) break;
  }
  settle();
}

bool SplicePump::pull() {
  if (failure_ || source_ended_ || left_to_pull_ == 0 || waiting_for_destination_) return false;
  const auto want = static_cast<size_t>(std::min(left_to_pull_, kMaxSplice));
  const ssize_t n = splice(from_.socketFd(), nullptr, pipe_write_, nullptr, want, kSpliceFlags);
  if (n > 0) {
    left_to_pull_ -= static_cast<uint64_t>(n);
    in_pipe_ += static_cast<uint64_t>(n);
    return true;
  }
  if (n == 0) {
    source_ended_ = true;
  } else if (errno != EAGAIN && errno != EINTR) {
    failure_ = Failure::SourceFailed;
    failure_reason_ = strerror(errno);
  }
  return false;
}

bool SplicePump::push() {
  if (failure_ || in_pipe_ == 0) return false;
  const auto have = static_cast<size_t>(std::min(in_pipe_, kMaxSplice));
  const ssize_t n = splice(pipe_read_, nullptr, to_.socketFd(), nullptr, have, kSpliceFlags);
  if (n < 0 && errno != EAGAIN && errno != EINTR) {
    failure_ = Failure::DestinationFailed;
    failure_reason_ = strerror(errno);
    return false;
  }
  const uint64_t moved = n > 0 ? static_cast<uint64_t>(n) : 0;
  in_pipe_ -= moved;
  // Less than all of it: the socket's send buffer is full until the peer reads.
  setWaitingForDestination(in_pipe_ > 0);
  if (moved > 0) owner_.onPumped(moved);
  return moved > 0;
}

void SplicePump::setWaitingForDestination(bool waiting) {
  if (waiting == waiting_for_destination_ || failure_) return;
  if (waiting && !to_writable_) {
    // libuv watches a descriptor once, and `to`'s belongs to its TcpStream: waiting for the
    // socket to become writable takes a second descriptor for it.
    to_watch_fd_ = fcntl(to_.socketFd(), F_DUPFD_CLOEXEC, 0);
    int rc = to_watch_fd_ < 0 ? UV_EMFILE : to_writable_.init(this, [this](uv_poll_t* poll) {
      return uv_poll_init_socket(loop_, poll, to_watch_fd_);
    });
    if (rc != 0) {
      failure_ = Failure::DestinationFailed;
      failure_reason_ = uv_strerror(rc);
      return;
    }
  }
  waiting_for_destination_ = waiting;
  if (waiting) {
    uv_poll_start(to_writable_.get(), UV_WRITABLE, onDestinationWritable);
  } else {
    uv_poll_stop(to_writable_.get());
  }
}

void SplicePump::settle() {
  if (failure_) {
    owner_.onPumpFailed(*failure_, failure_reason_);
    return;
  }
  if (in_pipe_ == 0 && left_to_pull_ == 0) {
    from_.setReadinessHandler(nullptr);
    if (source_paused_) from_.readStart();
    owner_.onPumpDone();
    return;
  }
  if (in_pipe_ == 0 && source_ended_) {
    owner_.onPumpFailed(Failure::SourceEnded, {});
    return;
  }
  // Readiness is level-triggered: a source the pump will not read now must stop reporting it.
  const bool want_source = !source_ended_ && left_to_pull_ > 0 && !waiting_for_destination_;
  if (want_source == !source_paused_) return;
  source_paused_ = !want_source;
  if (want_source) {
    from_.readStart();
  } else {
    from_.readStop();
  }
}

}  // namespace gatehouse
