// A listening TCP socket with SO_REUSEPORT, so that every worker loop binds its own socket on
// the same address and the kernel spreads the accepts. Accepted sockets have TCP_NODELAY: they
// inherit it from the listening socket.
#pragma once

#include <uv.h>

#include <functional>
#include <string>

#include "proxy/core/uv_handle.h"
#include "proxy/net/tcp_stream.h"

namespace gatehouse {

class Listener {
 public:
  // `local_address` is the address every connection arrives on ("ip:port"), or empty when the
  // socket listens on a wildcard address and each connection must be asked.
  using AcceptCallback =
      std::function<void(UvHandle<uv_tcp_t> connection, const std::string& local_address)>;

  Listener(uv_loop_t* loop, AcceptCallback on_accept);
  // Binds and listens; port 0 picks an ephemeral port (see boundPort()). Returns an error text.
  std::string listen(const std::string& address, uint16_t port, int backlog = 511);
  uint16_t boundPort() const;
  void close() { tcp_.reset(); }

 private:
  static void onConnection(uv_stream_t* server, int status);

  uv_loop_t* loop_;
  AcceptCallback on_accept_;
  UvHandle<uv_tcp_t> tcp_;
  std::string local_address_;
};

// True when a socket already listens on address:port. Our SO_REUSEPORT bind still succeeds when
// that socket is another process of the same user with SO_REUSEPORT (an instance left running,
// or a new one started before the old one stopped), and the kernel then splits new connections
// between the two processes without a word. False for port 0 and on any other error.
bool portHasListener(const std::string& address, uint16_t port);

}  // namespace gatehouse
