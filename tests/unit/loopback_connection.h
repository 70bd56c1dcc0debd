// Two TcpStreams connected over loopback, made the way the worker (accept) and the back-end login
// (TcpConnector) make them, for tests of code that works on real sockets.
#pragma once

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "proxy/net/listener.h"
#include "proxy/net/tcp_connect.h"
#include "proxy/net/tcp_stream.h"
#include "tests/unit/stream_recorder.h"
#include "tests/unit/test_loop.h"

namespace gatehouse::testing {

// A listener on an ephemeral loopback port and a client connected to it, both as TcpStreams the
// way the worker and the back-end login make them. The server may greet from its accept.
class Connection {
 public:
  explicit Connection(TestLoop& loop, std::string greeting = {})
      : listener_(loop.loop(), [this, greeting](UvHandle<uv_tcp_t> tcp, const std::string&) {
          server = std::make_unique<TcpStream>(std::move(tcp), TcpStream::NoDelay::AlreadySet);
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
  StreamRecorder server_seen;
  StreamRecorder client_seen;
  bool connected = false;
  std::string connect_error;

 private:
  Listener listener_;
  std::unique_ptr<TcpConnector> connector_;
};

}  // namespace gatehouse::testing
