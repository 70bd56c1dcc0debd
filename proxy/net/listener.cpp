#include "proxy/net/listener.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "proxy/net/ip_address.h"

namespace gatehouse {
namespace {

bool isWildcard(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET) {
    return reinterpret_cast<const sockaddr_in&>(addr).sin_addr.s_addr == htonl(INADDR_ANY);
  }
  const auto& sin6 = reinterpret_cast<const sockaddr_in6&>(addr);
  return std::memcmp(&sin6.sin6_addr, &in6addr_any, sizeof in6addr_any) == 0;
}

}  // namespace

Listener::Listener(uv_loop_t* loop, AcceptCallback on_accept)
    : loop_(loop), on_accept_(std::move(on_accept)) {}

std::string Listener::listen(const std::string& address, uint16_t port, int backlog) {
  std::optional<sockaddr_storage> parsed = socketAddress(address, port);
  if (!parsed) return "invalid listen address " + address;
  const sockaddr_storage& addr = *parsed;
  int rc = tcp_.init(this, [&](uv_tcp_t* t) { return uv_tcp_init_ex(loop_, t, addr.ss_family); });
  if (rc != 0) return uv_strerror(rc);
  uv_os_fd_t fd;
  uv_fileno(tcp_.base(), &fd);
  int on = 1;
  // libuv 1.44 has no UV_TCP_REUSEPORT; set it on the fresh socket before bind.
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) return "SO_REUSEPORT failed";
  rc = uv_tcp_bind(tcp_.get(), reinterpret_cast<const sockaddr*>(&addr), 0);
  // Inherited by every accepted socket (see TcpStream::NoDelay).
  if (rc == 0) rc = uv_tcp_nodelay(tcp_.get(), 1);
  if (rc == 0) rc = uv_listen(tcp_.stream(), backlog, onConnection);
  if (rc != 0) {
    tcp_.reset();
    return std::string("cannot listen on ") + address + ":" + std::to_string(port) + ": " +
           uv_strerror(rc);
  }
  // Saves a getsockname() per connection: a socket bound to one address is only reached there.
  if (!isWildcard(addr)) local_address_ = localAddress(tcp_.get());
  return {};
}

uint16_t Listener::boundPort() const {
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (!tcp_ || uv_tcp_getsockname(tcp_.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return 0;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

void Listener::onConnection(uv_stream_t* server, int status) {
  auto* self = ownerOf<Listener>(server);
  if (self == nullptr || status != 0) return;
  UvHandle<uv_tcp_t> connection;
  if (connection.init(nullptr, [self](uv_tcp_t* t) { return uv_tcp_init(self->loop_, t); }) != 0) {
    return;
  }
  if (uv_accept(server, connection.stream()) != 0) return;
  self->on_accept_(std::move(connection), self->local_address_);
}

bool portHasListener(const std::string& address, uint16_t port) {
  std::optional<sockaddr_storage> addr = socketAddress(address, port);
  if (port == 0 || !addr) return false;
  const int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  // SO_REUSEADDR: connections of an earlier run in TIME_WAIT do not count, only a listener does.
  const int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  const bool in_use =
      bind(fd, reinterpret_cast<const sockaddr*>(&*addr), socketAddressLength(*addr)) != 0 &&
      errno == EADDRINUSE;
  ::close(fd);
  return in_use;
}

}  // namespace gatehouse
