#include "proxy/net/tcp_stream.h"

#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <memory>

namespace gatehouse {
namespace {

// One read buffer per loop thread: a read is handed to the handler and forgotten, so an
// idle connection holds no buffer at all.
// 256 KB: a large FETCH or RETR arrives in few reads; it costs nothing per connection.
constexpr size_t kReadBufferSize = 256 * 1024;
thread_local char t_read_buffer[kReadBufferSize];

}  // namespace

struct TcpStream::WriteRequest {
  uv_write_t req{};
  std::string data;
};

TcpStream::TcpStream(UvHandle<uv_tcp_t> tcp, NoDelay nodelay) : tcp_(std::move(tcp)) {
  tcp_->data = this;
  if (nodelay == NoDelay::Set) uv_tcp_nodelay(tcp_.get(), 1);
}

TcpStream::~TcpStream() {
  close();
}

void TcpStream::readStart() {
  if (!tcp_ || reading_ || failed_) return;
  reading_ = uv_read_start(tcp_.stream(), onAlloc, onReadDone) == 0;
}

void TcpStream::readStop() {
  if (!tcp_ || !reading_) return;
  reading_ = false;
  uv_read_stop(tcp_.stream());
}

void TcpStream::write(std::string_view data) {
  if (!tcp_ || shut_down_ || data.empty()) return;
  if (queued_ == 0 && !failed_) {
    uv_buf_t buf = uv_buf_init(const_cast<char*>(data.data()), static_cast<unsigned>(data.size()));
    int written = uv_try_write(tcp_.stream(), &buf, 1);
    if (written > 0) data.remove_prefix(static_cast<size_t>(written));
    if (data.empty()) return;
    // On a hard error uv_write below fails too, and reports it from the loop, not from here.
  }
  auto request = std::make_unique<WriteRequest>();
  request->data.assign(data);
  uv_buf_t buf = uv_buf_init(request->data.data(), static_cast<unsigned>(request->data.size()));
  int rc = uv_write(&request->req, tcp_.stream(), &buf, 1, onWriteDone);
  if (rc != 0) {
    failed_ = true;
    return;
  }
  queued_ += request->data.size();
  request.release();  // owned by libuv until onWriteDone
}

void TcpStream::shutdownWrite() {
  if (!tcp_ || shut_down_) return;
  shut_down_ = true;
  auto request = std::make_unique<uv_shutdown_t>();
  if (uv_shutdown(request.get(), tcp_.stream(), onShutdownDone) == 0) request.release();
}

void TcpStream::close() {
  handler_ = nullptr;
  reading_ = false;
  tcp_.reset();
}

int TcpStream::socketFd() const {
  uv_os_fd_t fd = -1;
  if (!tcp_ || uv_fileno(tcp_.base(), &fd) != 0) return -1;
  return fd;
}

void TcpStream::ackPromptly() {
  const int fd = socketFd();
  const int on = 1;
  // Linux leaves quick-ACK mode by itself once the exchange looks interactive again; failing to
  // set it only costs latency.
  if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on);
}

size_t TcpStream::unsentBytes() const {
  // libuv's count falls as a large write goes out in parts; queued_ only when it has all gone.
  size_t unsent = tcp_ ? uv_stream_get_write_queue_size(tcp_.stream()) : 0;
  const int fd = socketFd();
  int in_kernel = 0;
  if (fd >= 0 && ioctl(fd, SIOCOUTQ, &in_kernel) == 0 && in_kernel > 0) {
    unsent += static_cast<size_t>(in_kernel);
  }
  return unsent;
}

bool TcpStream::closeGracefully() {
  if (tcp_ && queued_ == 0 && !shut_down_ && !failed_) {
    // close() sends the FIN that shutdown() would; only unread input would make it a reset.
    const int fd = socketFd();
    int unread = 0;
    if (fd >= 0 && ioctl(fd, FIONREAD, &unread) == 0 && unread == 0) {
      close();
      return true;
    }
  }
  shutdownWrite();
  return false;
}

void TcpStream::onAlloc(uv_handle_t*, size_t, uv_buf_t* buf) {
  *buf = uv_buf_init(t_read_buffer, kReadBufferSize);
}

void TcpStream::onReadDone(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* self = ownerOf<TcpStream>(stream);
  if (self == nullptr || self->handler_ == nullptr || nread == 0) return;
  if (nread > 0) {
    self->handler_->onRead(std::string_view(buf->base, static_cast<size_t>(nread)));
  } else if (nread == UV_EOF) {
    self->readStop();
    self->handler_->onEnd();
  } else {
    self->fail(static_cast<int>(nread));
  }
}

void TcpStream::onWriteDone(uv_write_t* req, int status) {
  std::unique_ptr<WriteRequest> request(reinterpret_cast<WriteRequest*>(req));
  auto* self = ownerOf<TcpStream>(req->handle);
  if (self == nullptr) return;
  size_t before = self->queued_;
  self->queued_ -= request->data.size();
  if (status != 0) {
    self->fail(status);
    return;
  }
  if (before > kLowWatermark && self->queued_ <= kLowWatermark && self->handler_ != nullptr) {
    self->handler_->onWritable();
  }
}

void TcpStream::onShutdownDone(uv_shutdown_t* req, int) {
  std::unique_ptr<uv_shutdown_t> request(req);
}

void TcpStream::fail(int uv_error) {
  if (failed_) return;
  failed_ = true;
  readStop();
  if (handler_ != nullptr) handler_->onError(uv_strerror(uv_error));
}

std::string formatAddress(const sockaddr_storage& ss) {
  char ip[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    uv_ip4_name(sin, ip, sizeof ip);
    return joinAddress(ip, ntohs(sin->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    uv_ip6_name(sin6, ip, sizeof ip);
    return joinAddress(ip, ntohs(sin6->sin6_port));
  }
  return {};
}

std::string localAddress(const uv_tcp_t* tcp) {
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (uv_tcp_getsockname(tcp, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  return formatAddress(ss);
}

std::string joinAddress(const std::string& ip, uint16_t port) {
  bool v6 = ip.find(':') != std::string::npos;
  return (v6 ? "[" + ip + "]" : ip) + ":" + std::to_string(port);
}

bool splitAddress(const std::string& address, std::string& ip, std::string& port) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  ip = address.substr(0, colon);
  if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
  port = address.substr(colon + 1);
  return true;
}

}  // namespace gatehouse
