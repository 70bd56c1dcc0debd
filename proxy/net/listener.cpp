#include "proxy/net/listener.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "proxy/log/log.h"
#include "proxy/net/ip_address.h"
#include "proxy/net/tcp_stream.h"

namespace gatehouse {
namespace {

// Out of file descriptors, accepting stops for this long (nginx's accept_mutex_delay).
constexpr unsigned kAcceptPauseMs = 500;
// Connections accepted per wake-up: the queue drains in a few turns of the loop, and the
// sessions already open are not kept waiting behind a burst of new ones.
constexpr int kAcceptBatch = 64;

bool isWildcard(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET) {
    return reinterpret_cast<const sockaddr_in&>(addr).sin_addr.s_addr == htonl(INADDR_ANY);
  }
  const auto& sin6 = reinterpret_cast<const sockaddr_in6&>(addr);
  return std::memcmp(&sin6.sin6_addr, &in6addr_any, sizeof in6addr_any) == 0;
}

// accept() errors that concern one connection only (accept(2): the pending network errors of the
// new socket, and a client that gave up before it was accepted): the next one may well succeed.
bool isPerConnection(int error) {
  switch (error) {
    case ECONNABORTED:
    case EINTR:
    case EPROTO:
    case EPERM:  // a firewall rule
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
      return true;
    default:
      return false;
  }
}

bool setOption(int fd, int level, int name) {
  const int on = 1;
  return setsockopt(fd, level, name, &on, sizeof on) == 0;
}

}  // namespace

Listener::Listener(uv_loop_t* loop, AcceptCallback on_accept)
    : loop_(loop), on_accept_(std::move(on_accept)), resume_timer_(loop) {}

Listener::~Listener() {
  close();
}

std::string Listener::listen(const std::string& address, uint16_t port, int backlog) {
  close();
  std::optional<sockaddr_storage> parsed = socketAddress(address, port);
  if (!parsed) return "invalid listen address " + address;
  const sockaddr_storage& addr = *parsed;
  const std::string where = "cannot listen on " + joinAddress(address, port) + ": ";
  fd_ = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd_ < 0) return where + std::strerror(errno);
  // SO_REUSEADDR as libuv sets it (a restart binds despite TIME_WAIT); TCP_NODELAY is inherited
  // by every accepted socket (see TcpStream::NoDelay).
  bool ok = setOption(fd_, SOL_SOCKET, SO_REUSEADDR) && setOption(fd_, SOL_SOCKET, SO_REUSEPORT) &&
            setOption(fd_, IPPROTO_TCP, TCP_NODELAY) &&
            bind(fd_, reinterpret_cast<const sockaddr*>(&addr), socketAddressLength(addr)) == 0 &&
            ::listen(fd_, backlog) == 0;
  int rc = ok ? 0 : -errno;
  if (rc == 0) {
    rc = poll_.init(this, [&](uv_poll_t* p) { return uv_poll_init_socket(loop_, p, fd_); });
  }
  if (rc == 0) rc = uv_poll_start(poll_.get(), UV_READABLE, onReadable);
  if (rc != 0) {
    close();
    return where + uv_strerror(rc);
  }
  address_ = address;
  // Saves a getsockname() per connection: a socket bound to one address is only reached there.
  if (!isWildcard(addr)) {
    if (auto bound = boundAddress()) local_address_ = formatAddress(*bound);
  }
  return {};
}

void Listener::close() {
  resume_timer_.release();
  poll_.reset();  // uv_close stops watching at once, so the descriptor may go now
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::optional<sockaddr_storage> Listener::boundAddress() const {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (fd_ < 0 || getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return std::nullopt;
  return ss;
}

uint16_t Listener::boundPort() const {
  std::optional<sockaddr_storage> ss = boundAddress();
  if (!ss) return 0;
  if (ss->ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&*ss)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&*ss)->sin6_port);
}

void Listener::onReadable(uv_poll_t* poll, int status, int /*events*/) {
  auto* self = ownerOf<Listener>(poll);
  if (self != nullptr && status == 0) self->acceptPending();
}

void Listener::acceptPending() {
  for (int i = 0; i < kAcceptBatch && fd_ >= 0; ++i) {
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    const int fd =
        accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const int error = errno;
      if (error == EAGAIN || error == EWOULDBLOCK) return;
      if (isPerConnection(error)) continue;
      pauseAccepting(error);  // out of descriptors or memory: retrying now would only spin
      return;
    }
    UvHandle<uv_tcp_t> connection;
    int rc = connection.init(nullptr, [this](uv_tcp_t* t) { return uv_tcp_init(loop_, t); });
    if (rc == 0) rc = uv_tcp_open(connection.get(), fd);
    if (rc != 0) {
      connection.reset();
      ::close(fd);
      continue;
    }
    on_accept_(Accepted{std::move(connection), formatAddress(peer), local_address_});
  }
}

void Listener::pauseAccepting(int error) {
  uv_poll_stop(poll_.get());
  const bool out_of_descriptors = error == EMFILE || error == ENFILE;
  log::warn(out_of_descriptors ? "accept failed: out of file descriptors, not accepting for a while"
                               : "accept failed, not accepting for a while",
            {{"address", address_},
             {"port", boundPort()},
             {"error", std::strerror(error)},
             {"pause_ms", kAcceptPauseMs}});
  resume_timer_.start(kAcceptPauseMs, [this] {
    if (poll_) uv_poll_start(poll_.get(), UV_READABLE, onReadable);
  });
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
