#include "proxy/net/tcp_connect.h"

namespace gatehouse {

TcpConnector::TcpConnector(uv_loop_t* loop, Callback done) : loop_(loop), done_(std::move(done)) {}

TcpConnector::~TcpConnector() = default;  // handles close themselves; callbacks see no owner

void TcpConnector::connect(const std::string& ip, uint16_t port, unsigned timeout_ms) {
  timer_.init(this, [this](uv_timer_t* t) { return uv_timer_init(loop_, t); });
  sockaddr_storage addr{};
  int rc = 0;
  if (uv_ip4_addr(ip.c_str(), port, reinterpret_cast<sockaddr_in*>(&addr)) != 0 &&
      uv_ip6_addr(ip.c_str(), port, reinterpret_cast<sockaddr_in6*>(&addr)) != 0) {
    rc = UV_EINVAL;
  }
  if (rc == 0) rc = tcp_.init(this, [this](uv_tcp_t* t) { return uv_tcp_init(loop_, t); });
  if (rc == 0) {
    auto request = std::make_unique<uv_connect_t>();
    rc = uv_tcp_connect(request.get(), tcp_.get(), reinterpret_cast<sockaddr*>(&addr), onConnected);
    if (rc == 0) request.release();  // owned by libuv until onConnected
  }
  if (rc != 0) {
    // Reported from the timer like every other outcome: never on the caller's stack.
    tcp_.reset();
    early_error_ = uv_strerror(rc);
    timeout_ms = 0;
  }
  uv_timer_start(timer_.get(), onTimeout, timeout_ms, 0);
}

void TcpConnector::onConnected(uv_connect_t* req, int status) {
  std::unique_ptr<uv_connect_t> request(req);
  auto* self = ownerOf<TcpConnector>(req->handle);
  if (self == nullptr) return;
  if (status != 0) {
    self->finish(uv_strerror(status));
    return;
  }
  self->timer_.reset();
  auto stream = std::make_unique<TcpStream>(std::move(self->tcp_));
  auto done = std::move(self->done_);
  done(std::move(stream), {});
}

void TcpConnector::onTimeout(uv_timer_t* timer) {
  auto* self = ownerOf<TcpConnector>(timer);
  if (self == nullptr) return;
  self->finish(self->early_error_.empty() ? "connect timed out" : self->early_error_);
}

void TcpConnector::finish(std::string error) {
  timer_.reset();
  tcp_.reset();
  if (!done_) return;
  auto done = std::move(done_);
  done(nullptr, std::move(error));
}

}  // namespace gatehouse
