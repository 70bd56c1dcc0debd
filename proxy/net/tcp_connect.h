// Outgoing TCP connection with a timeout. Destroying the connector cancels the attempt and
// guarantees the callback never runs afterwards.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "proxy/core/uv_handle.h"
#include "proxy/net/tcp_stream.h"

namespace gatehouse {

class TcpConnector {
 public:
  // On success `stream` is set and `error` is empty. The stream is reading already (that spares
  // an epoll_ctl() per connection): give it a handler before the callback returns.
  using Callback = std::function<void(std::unique_ptr<TcpStream> stream, std::string error)>;

  TcpConnector(uv_loop_t* loop, Callback done);
  ~TcpConnector();
  TcpConnector(const TcpConnector&) = delete;
  TcpConnector& operator=(const TcpConnector&) = delete;

  // `ip` must be an IP literal (never a name: nothing here resolves).
  void connect(const std::string& ip, uint16_t port, unsigned timeout_ms);

 private:
  static void onConnected(uv_connect_t* req, int status);
  static void onTimeout(uv_timer_t* timer);
  void finish(std::string error);

  uv_loop_t* loop_;
  Callback done_;
  std::unique_ptr<TcpStream> stream_;  // connecting; handed over once connected
  UvHandle<uv_timer_t> timer_;
  std::string early_error_;
};

}  // namespace gatehouse
