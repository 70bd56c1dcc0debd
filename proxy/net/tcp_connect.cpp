#include "proxy/net/tcp_connect.h"

#include <optional>

#include "proxy/net/ip_address.h"

namespace gatehouse {

TcpConnector::TcpConnector(uv_loop_t* loop, Callback done) : loop_(loop), done_(std::move(done)) {}

TcpConnector::~TcpConnector() = default;  // handles close themselves; callbacks see no owner

void TcpConnector::connect(const std::string& ip, uint16_t port, unsigned timeout_ms) {
  timer_.init(this, [this](uv_timer_t* t) { return uv_timer_init(loop_, t); });
  std::optional<sockaddr_storage> addr = socketAddress(ip, port);
  int rc = addr ? 0 : UV_EINVAL;
  UvHandle<uv_tcp_t> tcp;
  if (rc == 0) rc = tcp.init(nullptr, [this](uv_tcp_t* t) { return uv_tcp_init(loop_, t); });
  if (rc == 0) {
    stream_ = std::make_unique<TcpStream>(std::move(tcp));
    auto request = std::make_unique<uv_connect_t>();
    request->data = this;
    rc = uv_tcp_connect(request.get(), stream_->handle(), reinterpret_cast<const sockaddr*>(&*addr),
                        onConnected);
    if (rc == 0) request.release();  // owned by libuv until onConnected
  }
  if (rc == 0) {
    // libuv reports the connection before any read, so the stream has its handler by then. One
    // epoll registration then covers both; reading after the connection would need two more.
    stream_->readStart();
  } else {
    // Reported from the timer like every other outcome: never on the caller's stack.
    stream_.reset();
    early_error_ = uv_strerror(rc);
    timeout_ms = 0;
  }
  uv_timer_start(timer_.get(), onTimeout, timeout_ms, 0);
}

void TcpConnector::onConnected(uv_connect_t* req, int status) {
  std::unique_ptr<uv_connect_t> request(req);
  // The stream is the handle's owner until the connector (which owns the stream) lets go.
  if (ownerOf<TcpStream>(req->handle) == nullptr) return;
  auto* self = static_cast<TcpConnector*>(req->data);
  if (status != 0) {
    self->finish(uv_strerror(status));
    return;
  }
  self->timer_.reset();
  auto done = std::move(self->done_);
  done(std::move(self->stream_), {});
}

void TcpConnector::onTimeout(uv_timer_t* timer) {
  auto* self = ownerOf<TcpConnector>(timer);
  if (self == nullptr) return;
  self->finish(self->early_error_.empty() ? "connect timed out" : self->early_error_);
}

void TcpConnector::finish(std::string error) {
  timer_.reset();
  stream_.reset();
  if (!done_) return;
  auto done = std::move(done_);
  done(nullptr, std::move(error));
}

}  // namespace gatehouse
