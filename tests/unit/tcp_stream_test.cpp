// TcpStream, Listener and TcpConnector over real loopback sockets: the shortcuts they take to save
// system calls (TCP_NODELAY inherited from the listener, reading before the connection is up,
// closing without lingering) must not cost a byte or a socket option.
#include "proxy/net/tcp_stream.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "proxy/net/ip_address.h"
#include "proxy/net/listener.h"
#include "proxy/net/tcp_connect.h"
#include "tests/unit/stream_recorder.h"
#include "tests/unit/test_loop.h"

namespace gatehouse {
namespace {

using testing::TestLoop;

using Recorder = testing::StreamRecorder;

int fdOf(const TcpStream& stream) {
  uv_os_fd_t fd = -1;
  REQUIRE(uv_fileno(reinterpret_cast<uv_handle_t*>(stream.handle()), &fd) == 0);
  return fd;
}

int noDelay(const TcpStream& stream) {
  int on = -1;
  socklen_t len = sizeof on;
  REQUIRE(getsockopt(fdOf(stream), IPPROTO_TCP, TCP_NODELAY, &on, &len) == 0);
  return on;
}

int unreadBytes(const TcpStream& stream) {
  int unread = -1;
  REQUIRE(ioctl(fdOf(stream), FIONREAD, &unread) == 0);
  return unread;
}

// A listener on an ephemeral loopback port and a client connected to it, both as TcpStreams the
// way the worker and the back-end login make them. The server may greet from its accept.
class Connection {
 public:
  explicit Connection(TestLoop& loop, std::string greeting = {})
      : listener_(loop.loop(), [this, greeting](Listener::Accepted accepted) {
          peer_address = accepted.peer_address;
          local_address = accepted.local_address;
          server = std::make_unique<TcpStream>(std::move(accepted.connection),
                                               TcpStream::NoDelay::AlreadySet);
          server->setHandler(&server_seen);
          if (!greeting.empty()) server->write(greeting);
        }) {
    REQUIRE(listener_.listen("127.0.0.1", 0).empty());
    connector_ = std::make_unique<TcpConnector>(
        loop.loop(), [this](std::unique_ptr<TcpStream> stream, std::string error) {
          connect_error = std::move(error);
          client = std::move(stream);
          if (client) client->setHandler(&client_seen);
          connected = true;
        });
    connector_->connect("127.0.0.1", listener_.boundPort(), 2000);
    REQUIRE(loop.runUntil([this] { return connected && server != nullptr; }));
    REQUIRE(connect_error.empty());
    REQUIRE(client != nullptr);
  }

  std::unique_ptr<TcpStream> server;
  std::unique_ptr<TcpStream> client;
  Recorder server_seen;
  Recorder client_seen;
  bool connected = false;
  std::string connect_error;
  std::string peer_address;
  std::string local_address;

 private:
  Listener listener_;
  std::unique_ptr<TcpConnector> connector_;
};

TEST_CASE("accepted and connected sockets have TCP_NODELAY, the accepted ones from the listener",
          "[tcp]") {
  TestLoop loop;
  {
    Connection c(loop);
    CHECK(noDelay(*c.server) == 1);
    CHECK(noDelay(*c.client) == 1);
  }
  REQUIRE(loop.shutdown() == 0);
}

TEST_CASE("the listener names both ends of an accepted connection from accept() itself", "[tcp]") {
  TestLoop loop;
  {
    Connection c(loop);
    auto address = [](int fd, auto get) {
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      REQUIRE(get(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0);
      return formatAddress(ss);
    };
    CHECK(c.peer_address == address(fdOf(*c.client), getsockname));
    CHECK(c.local_address == address(fdOf(*c.client), getpeername));
    CHECK(c.peer_address.rfind("127.0.0.1:", 0) == 0);
  }
  REQUIRE(loop.shutdown() == 0);
}

TEST_CASE("ackPromptly takes the socket out of delayed-ACK (pingpong) mode", "[tcp]") {
  TestLoop loop;
  {
    Connection c(loop);
    // Linux reports TCP_QUICKACK as "not in pingpong mode"; setting it to 0 enters that mode, as
    // an exchange of requests and answers does by itself.
    auto quickAck = [&] {
      int on = -1;
      socklen_t len = sizeof on;
      REQUIRE(getsockopt(fdOf(*c.client), IPPROTO_TCP, TCP_QUICKACK, &on, &len) == 0);
      return on;
    };
    const int off = 0;
    REQUIRE(setsockopt(fdOf(*c.client), IPPROTO_TCP, TCP_QUICKACK, &off, sizeof off) == 0);
    REQUIRE(quickAck() == 0);
    c.client->ackPromptly();
    CHECK(quickAck() == 1);
  }
  REQUIRE(loop.shutdown() == 0);
}

TEST_CASE("portHasListener sees a listening socket, and only while it listens", "[tcp]") {
  TestLoop loop;
  {
    Listener listener(loop.loop(), [](Listener::Accepted) {});
    REQUIRE(listener.listen("127.0.0.1", 0).empty());
    const uint16_t port = listener.boundPort();
    CHECK(portHasListener("127.0.0.1", port));
    CHECK_FALSE(portHasListener("127.0.0.1", 0));
    listener.close();
    CHECK_FALSE(portHasListener("127.0.0.1", port));
  }
  REQUIRE(loop.shutdown() == 0);
}

TEST_CASE("socketAddress takes IPv4 and IPv6 literals only", "[tcp]") {
  auto v4 = socketAddress("127.0.0.2", 143);
  REQUIRE(v4);
  CHECK(v4->ss_family == AF_INET);
  CHECK(ntohs(reinterpret_cast<const sockaddr_in&>(*v4).sin_port) == 143);
  CHECK(socketAddressLength(*v4) == sizeof(sockaddr_in));
  auto v6 = socketAddress("::1", 993);
  REQUIRE(v6);
  CHECK(v6->ss_family == AF_INET6);
  CHECK(ntohs(reinterpret_cast<const sockaddr_in6&>(*v6).sin6_port) == 993);
  CHECK(socketAddressLength(*v6) == sizeof(sockaddr_in6));
  CHECK_FALSE(socketAddress("localhost", 143));
  CHECK_FALSE(socketAddress("127.0.0.256", 143));
  CHECK_FALSE(socketAddress("", 143));
}

TEST_CASE("an IPv6 listener accepts, and portHasListener sees it", "[tcp]") {
  TestLoop loop;
  {
    bool accepted = false;
    Listener listener(loop.loop(), [&](Listener::Accepted) { accepted = true; });
    REQUIRE(listener.listen("::1", 0).empty());
    CHECK(portHasListener("::1", listener.boundPort()));
    std::string error = "pending";
    std::unique_ptr<TcpStream> client;
    TcpConnector connector(loop.loop(), [&](std::unique_ptr<TcpStream> s, std::string e) {
      client = std::move(s);
      error = std::move(e);
    });
    connector.connect("::1", listener.boundPort(), 2000);
    REQUIRE(loop.runUntil([&] { return error != "pending" && accepted; }));
    CHECK(error.empty());
    CHECK(client != nullptr);
  }
  REQUIRE(loop.shutdown() == 0);
}

TEST_CASE("a connected stream reads without readStart(): a greeting sent at accept arrives",
          "[tcp]") {
  TestLoop loop;
  {
    Connection c(loop, "* OK hello\r\n");
    REQUIRE(loop.runUntil([&] { return c.client_seen.data.size() >= 12; }));
    CHECK(c.client_seen.data == "* OK hello\r\n");
    // readStart() on a stream that reads already changes nothing.
    c.client->readStart();
    c.server->write("more\r\n");
    REQUIRE(loop.runUntil([&] { return c.client_seen.data.size() >= 18; }));
    CHECK(c.client_seen.data == "* OK hello\r\nmore\r\n");
  }
  REQUIRE(loop.shutdown() == 0);
}

TEST_CASE("closeGracefully closes at once when nothing is unread, and the peer sees a FIN",
          "[tcp]") {
  TestLoop loop;
  {
    Connection c(loop);
    c.server->readStart();
    c.server->write("* BYE\r\n");
    REQUIRE(c.server->closeGracefully());
    REQUIRE(loop.runUntil([&] { return c.client_seen.ended || !c.client_seen.error.empty(); }));
    CHECK(c.client_seen.data == "* BYE\r\n");
    CHECK(c.client_seen.ended);
    CHECK(c.client_seen.error.empty());
  }
  REQUIRE(loop.shutdown() == 0);
}

TEST_CASE("closeGracefully lingers half-closed when input is unread (a close would reset)",
          "[tcp]") {
  TestLoop loop;
  {
    Connection c(loop);
    c.server->readStop();
    c.client->write("b NOOP\r\n");
    REQUIRE(loop.runUntil([&] { return unreadBytes(*c.server) == 8; }));
    c.server->write("* BYE\r\n");
    REQUIRE_FALSE(c.server->closeGracefully());
    // The FIN went out after the goodbye; the server can still read what the client sent.
    REQUIRE(loop.runUntil([&] { return c.client_seen.ended; }));
    CHECK(c.client_seen.data == "* BYE\r\n");
    c.server->readStart();
    REQUIRE(loop.runUntil([&] { return c.server_seen.data.size() >= 8; }));
    CHECK(c.server_seen.data == "b NOOP\r\n");
  }
  REQUIRE(loop.shutdown() == 0);
}

}  // namespace
}  // namespace gatehouse
