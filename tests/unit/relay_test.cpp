// The relay over in-memory streams: byte-exact in both directions, backpressure by watermarks
// (a slow reader stops the other side's reads instead of growing a queue), half-close, errors.
#include "proxy/relay/relay.h"

#include <uv.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "memory_stream.h"
#include "stream_recorder.h"

namespace gatehouse {
namespace {

using testing::MemoryPipe;

using Recorder = testing::StreamRecorder;

struct Events : RelayObserver {
  Relay* relay = nullptr;
  bool pass_ends = true;
  std::vector<std::string> ended;  // "client"/"backend" + ":error" when failed
  uint64_t backend_bytes_seen = 0;
  void onRelayBytes(RelaySide from, std::string_view d) override {
    if (from == RelaySide::Backend) backend_bytes_seen += d.size();
  }
  void onRelayEnded(RelaySide side, bool error, std::string_view) override {
    ended.push_back(std::string(side == RelaySide::Client ? "client" : "backend") +
                    (error ? ":error" : ""));
    if (!error && pass_ends) relay->passEnd(side);
  }
};

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
  return s;
}

// client app <-> [client pipe] <-> relay <-> [backend pipe] <-> back-end app
struct Rig {
  uv_loop_t loop{};
  MemoryPipe client_pipe;
  MemoryPipe backend_pipe;
  std::unique_ptr<MemoryPipe::End> client_app = client_pipe.take(MemoryPipe::kA);
  std::unique_ptr<MemoryPipe::End> proxy_client = client_pipe.take(MemoryPipe::kB);
  std::unique_ptr<MemoryPipe::End> proxy_backend = backend_pipe.take(MemoryPipe::kA);
  std::unique_ptr<MemoryPipe::End> backend_app = backend_pipe.take(MemoryPipe::kB);
  Recorder at_client;
  Recorder at_backend;
  Events events;
  std::unique_ptr<Relay> relay;

  Rig() {
    uv_loop_init(&loop);
    client_app->setHandler(&at_client);
    backend_app->setHandler(&at_backend);
    client_app->readStart();
    backend_app->readStart();
    relay = std::make_unique<Relay>(&loop, *proxy_client, *proxy_backend, events);
    events.relay = relay.get();
    relay->start();
  }
  ~Rig() {
    relay.reset();
    REQUIRE(uv_loop_close(&loop) == 0);
  }
  // Pumps both pipes until neither moves (bounded).
  void pump() {
    for (int i = 0; i < 100000; ++i) {
      bool moved = client_pipe.pump(1);
      moved = backend_pipe.pump(1) || moved;
      if (!moved) return;
    }
    FAIL("pipes never settled");
  }
};

TEST_CASE("relay: bytes pass byte-exact both ways", "[relay]") {
  Rig rig;
  std::string up = pattern(1 << 20);
  std::string down = pattern(3 << 20).substr(5);
  rig.client_app->write(up);
  rig.backend_app->write(down);
  rig.pump();
  CHECK(rig.at_backend.data == up);
  CHECK(rig.at_client.data == down);
  CHECK(rig.relay->bytesFromClient() == up.size());
  CHECK(rig.relay->bytesFromBackend() == down.size());
  CHECK(rig.events.backend_bytes_seen == down.size());
  CHECK(rig.relay->pauses() == 0);
}

TEST_CASE("relay: a slow client stops reads from the back-end instead of queueing", "[relay]") {
  Rig rig;
  // The client's kernel takes 16 KB per round: the proxy's queue towards it grows.
  rig.client_pipe.setWriteCapacity(MemoryPipe::kB, 16 * 1024);
  std::string down = pattern(8 << 20);
  rig.backend_app->write(down);
  size_t max_queued = 0;
  for (int round = 0; round < 100000 && rig.at_client.data.size() < down.size(); ++round) {
    bool moved = rig.backend_pipe.pump(1);
    moved = rig.client_pipe.pump(1) || moved;
    max_queued = std::max(max_queued, rig.proxy_client->queuedBytes());
    if (!moved) break;
  }
  CHECK(rig.at_client.data == down);
  CHECK(rig.relay->pauses() > 0);
  // Never more than the high watermark plus one read's worth waiting for the slow client.
  CHECK(max_queued <= Stream::kHighWatermark + 64 * 1024);
}

TEST_CASE("relay: half-close is passed through, the other direction goes on", "[relay]") {
  Rig rig;
  rig.client_app->write("a LOGOUT\r\n");
  rig.client_app->shutdownWrite();
  rig.pump();
  CHECK(rig.at_backend.data == "a LOGOUT\r\n");
  CHECK(rig.at_backend.ended);
  REQUIRE(rig.events.ended == std::vector<std::string>{"client"});
  CHECK_FALSE(rig.relay->bothEnded());
  rig.backend_app->write("* BYE\r\na OK\r\n");
  rig.backend_app->shutdownWrite();
  rig.pump();
  CHECK(rig.at_client.data == "* BYE\r\na OK\r\n");
  CHECK(rig.at_client.ended);
  CHECK(rig.events.ended == std::vector<std::string>{"client", "backend"});
  CHECK(rig.relay->bothEnded());
}

TEST_CASE("relay: an error on one side is reported, not passed on as data", "[relay]") {
  Rig rig;
  rig.backend_pipe.injectError(MemoryPipe::kA, "connection reset");
  rig.pump();
  CHECK(rig.events.ended == std::vector<std::string>{"backend:error"});
  CHECK(rig.at_client.data.empty());
  CHECK_FALSE(rig.at_client.ended);
}

TEST_CASE("relay: injected bytes (pipelined before the relay started) go first", "[relay]") {
  Rig rig;
  rig.relay->inject(RelaySide::Client, "b SELECT INBOX\r\n");
  rig.client_app->write("c NOOP\r\n");
  rig.pump();
  CHECK(rig.at_backend.data == "b SELECT INBOX\r\nc NOOP\r\n");
}

}  // namespace
}  // namespace gatehouse
