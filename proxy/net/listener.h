// A listening TCP socket with SO_REUSEPORT, so that every worker loop binds its own socket on
// the same address and the kernel spreads the accepts. Accepted sockets have TCP_NODELAY: they
// inherit it from the listening socket.
//
// The socket is ours, watched with uv_poll, rather than a uv_listen() server: out of file
// descriptors, libuv's accept loop retries at once for ever (its spare descriptor is per loop and
// another worker takes the freed slot), and libuv has no way to pause a listener. Like nginx
// (ngx_event_accept, accept_mutex_delay), a Listener that meets EMFILE stops watching for a
// while; the connections wait in the kernel's queue and the sessions already open go on.
#pragma once

#include <uv.h>

#include <functional>
#include <optional>
#include <string>

#include "proxy/core/timer.h"
#include "proxy/core/uv_handle.h"

namespace gatehouse {

class Listener {
 public:
  struct Accepted {
    UvHandle<uv_tcp_t> connection;
    std::string peer_address;   // "ip:port", from accept(): no getpeername() needed
    std::string local_address;  // "ip:port", or empty on a wildcard socket (then ask it)
  };
  using AcceptCallback = std::function<void(Accepted accepted)>;

  Listener(uv_loop_t* loop, AcceptCallback on_accept);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Binds and listens; port 0 picks an ephemeral port (see boundPort()). Returns an error text.
  std::string listen(const std::string& address, uint16_t port, int backlog = 511);
  uint16_t boundPort() const;
  void close();

 private:
  std::optional<sockaddr_storage> boundAddress() const;
  static void onReadable(uv_poll_t* poll, int status, int events);
  void acceptPending();
  void pauseAccepting(int error);

  uv_loop_t* loop_;
  AcceptCallback on_accept_;
  int fd_ = -1;
  UvHandle<uv_poll_t> poll_;
  Timer resume_timer_;
  std::string address_;  // as configured, for the log
  std::string local_address_;
};

// True when a socket already listens on address:port. Our SO_REUSEPORT bind still succeeds when
// that socket is another process of the same user with SO_REUSEPORT (an instance left running,
// or a new one started before the old one stopped), and the kernel then splits new connections
// between the two processes without a word. False for port 0 and on any other error.
bool portHasListener(const std::string& address, uint16_t port);

}  // namespace gatehouse
