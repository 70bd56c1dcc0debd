// Stream over a connected libuv TCP handle. Reads land in one buffer shared by the loop's
// streams (nothing is held while idle); writes go out at once when the kernel takes them.
#pragma once

#include <uv.h>

#include <string>

#include "proxy/core/uv_handle.h"
#include "proxy/net/stream.h"

namespace gatehouse {

class TcpStream final : public Stream {
 public:
  // Whether the socket still needs TCP_NODELAY. Linux copies it from a listening socket to the
  // sockets it accepts, so a Listener sets it once and spares a setsockopt() per connection.
  enum class NoDelay { Set, AlreadySet };

  // Takes a handle that is connected (accepted or after uv_tcp_connect).
  explicit TcpStream(UvHandle<uv_tcp_t> tcp, NoDelay nodelay = NoDelay::Set);
  ~TcpStream() override;

  void setHandler(StreamHandler* handler) override { handler_ = handler; }
  void readStart() override;
  void readStop() override;
  void write(std::string_view data) override;
  size_t queuedBytes() const override { return queued_; }
  size_t unsentBytes() const override;
  void shutdownWrite() override;
  void close() override;
  bool closeGracefully() override;
  void ackPromptly() override;

  uv_tcp_t* handle() const { return tcp_.get(); }

 private:
  struct WriteRequest;

  int socketFd() const;  // -1 once closed
  static void onAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void onReadDone(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void onWriteDone(uv_write_t* req, int status);
  static void onShutdownDone(uv_shutdown_t* req, int status);
  void fail(int uv_error);

  UvHandle<uv_tcp_t> tcp_;
  StreamHandler* handler_ = nullptr;
  size_t queued_ = 0;
  bool reading_ = false;
  bool shut_down_ = false;
  bool failed_ = false;
};

// Formats "ip:port" of a socket address ("" for a family other than IPv4 and IPv6).
std::string formatAddress(const sockaddr_storage& address);
// Formats "ip:port" of the local side of a TCP handle ("" on failure).
std::string localAddress(const uv_tcp_t* tcp);
// "ip:port", or "[ip]:port" for IPv6: the form the two functions above give.
std::string joinAddress(const std::string& ip, uint16_t port);
// Splits a "ip:port" string made by the functions above ("[v6]:port" for IPv6).
bool splitAddress(const std::string& address, std::string& ip, std::string& port);

}  // namespace gatehouse
