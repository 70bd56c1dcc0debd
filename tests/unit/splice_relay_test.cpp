// The relay's splice path over real loopback sockets: an IMAP literal the observer need not see
// goes socket to socket (splice through a pipe) byte-exact, with the framing around it still seen;
// a slow client holds bytes in the kernel, not in user space; an end or a reset in the middle of a
// literal is reported like any other; a relay torn down mid-literal leaves no descriptor behind.
#include <dirent.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "backends/imap_response.h"
#include "proxy/relay/relay.h"
#include "tests/unit/loopback_connection.h"
#include "tests/unit/test_loop.h"

namespace gatehouse {
namespace {

using testing::Connection;
using testing::TestLoop;

// Follows the back-end's output as the IMAP session does, and records what the relay reports.
struct ImapObserver : RelayObserver {
  imap::ResponseScanner scanner;
  uint64_t skipped = 0;
  std::vector<std::string> ended;  // "client"/"backend" + ":error" when failed
  void onRelayBytes(RelaySide from, std::string_view data) override {
    if (from == RelaySide::Backend) scanner.feed(data);
  }
  uint64_t opaqueBytesAhead(RelaySide from) const override {
    return from == RelaySide::Backend ? scanner.literalLeft() : 0;
  }
  void onRelayOpaque(RelaySide from, uint64_t n) override {
    REQUIRE(from == RelaySide::Backend);
    REQUIRE(n <= scanner.literalLeft());
    scanner.skipLiteral(n);
    skipped += n;
  }
  void onRelayEnded(RelaySide side, bool error, std::string_view) override {
    ended.push_back(std::string(side == RelaySide::Client ? "client" : "backend") +
                    (error ? ":error" : ""));
  }
};

std::string payload(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + i / 4093) & 0xff);
  return s;
}

std::string fetchResponse(const std::string& body) {
  return "* 1 FETCH (BODY[] {" + std::to_string(body.size()) + "}\r\n" + body + ")\r\n";
}

// Small socket buffers, so that a client that does not read backs the relay up quickly.
void shrinkBuffers(TcpStream& stream) {
  const int size = 64 * 1024;
  REQUIRE(setsockopt(stream.socketFd(), SOL_SOCKET, SO_SNDBUF, &size, sizeof size) == 0);
  REQUIRE(setsockopt(stream.socketFd(), SOL_SOCKET, SO_RCVBUF, &size, sizeof size) == 0);
}

std::vector<std::string> openDescriptors() {
  std::vector<std::string> fds;
  DIR* dir = opendir("/proc/self/fd");
  REQUIRE(dir != nullptr);
  while (dirent* entry = readdir(dir)) {
    char target[256] = {};
    std::string path = std::string("/proc/self/fd/") + entry->d_name;
    if (readlink(path.c_str(), target, sizeof target - 1) > 0 &&
        dirfd(dir) != atoi(entry->d_name)) {
      fds.push_back(entry->d_name + std::string(" ") + target);
    }
  }
  closedir(dir);
  return fds;
}

// mail client <-> [client link] <-> relay <-> [back-end link] <-> IMAP server
struct Rig {
  TestLoop& loop;
  Connection client_link;
  Connection backend_link;
  TcpStream& mail_client;    // reads into client_link.client_seen
  TcpStream& proxy_client;   // the relay's client side
  TcpStream& proxy_backend;  // the relay's back-end side
  TcpStream& imap_server;
  ImapObserver events;
  std::unique_ptr<Relay> relay;

  Rig(TestLoop& l, uint64_t splice_min)
      : loop(l),
        client_link(l),
        backend_link(l),
        mail_client(*client_link.client),
        proxy_client(*client_link.server),
        proxy_backend(*backend_link.client),
        imap_server(*backend_link.server) {
    relay = std::make_unique<Relay>(loop.loop(), proxy_client, proxy_backend, events, splice_min);
    relay->start();
    mail_client.readStart();
  }
  std::string& received() { return client_link.client_seen.data; }
};

TEST_CASE("splice: a large literal goes socket to socket, byte-exact, framing still seen",
          "[relay][splice]") {
  TestLoop loop;
  {
    Rig rig(loop, 64 * 1024);
    const std::string body = payload(3 * 1024 * 1024 + 17);
    const std::string stream = fetchResponse(body) + "* BYE going\r\n";
    rig.imap_server.write(stream);
    REQUIRE(loop.runUntil([&] { return rig.received().size() >= stream.size(); }));
    CHECK(rig.received() == stream);
    // The first read carries the FETCH line and the start of the body; the rest is spliced.
    CHECK(rig.relay->splicedBytes() > body.size() / 2);
    CHECK(rig.events.skipped == rig.relay->splicedBytes());
    CHECK(rig.relay->bytesFromBackend() == stream.size());
    CHECK(rig.events.scanner.sawBye());  // what followed the literal was looked at
    CHECK(rig.events.scanner.atLineStart());
    CHECK(rig.events.ended.empty());
  }
  REQUIRE(loop.shutdown() == 0);
}

TEST_CASE("splice: literals below the threshold, or with splicing off, go through user space",
          "[relay][splice]") {
  TestLoop loop;
  {
    const uint64_t splice_min = GENERATE(uint64_t{0}, uint64_t{8 * 1024 * 1024});
    Rig rig(loop, splice_min);
    const std::string stream = fetchResponse(payload(2 * 1024 * 1024)) + "a OK done\r\n";
    rig.imap_server.write(stream);
    REQUIRE(loop.runUntil([&] { return rig.received().size() >= stream.size(); }));
    CHECK(rig.received() == stream);
    CHECK(rig.relay->splicedBytes() == 0);
    CHECK(rig.events.scanner.atLineStart());
  }
  REQUIRE(loop.shutdown() == 0);
}

TEST_CASE("splice: one response after another, each literal spliced, nothing reordered",
          "[relay][splice]") {
  TestLoop loop;
  {
    Rig rig(loop, 64 * 1024);
    std::string stream;
    for (size_t i = 1; i <= 5; ++i) stream += fetchResponse(payload(300 * 1024 * i + i));
    stream += "a OK FETCH done\r\n";
    rig.imap_server.write(stream);
    REQUIRE(loop.runUntil([&] { return rig.received().size() >= stream.size(); }));
    CHECK(rig.received() == stream);
    CHECK(rig.relay->splicedBytes() > 0);
    CHECK(rig.events.scanner.atLineStart());
  }
  REQUIRE(loop.shutdown() == 0);
}

TEST_CASE("splice: a client that does not read leaves the bytes in the kernel, then gets them all",
          "[relay][splice]") {
  TestLoop loop;
  {
    Rig rig(loop, 64 * 1024);
    for (TcpStream* s : {&rig.mail_client, &rig.proxy_client, &rig.proxy_backend, &rig.imap_server})
      shrinkBuffers(*s);
    rig.mail_client.readStop();
    const std::string stream = fetchResponse(payload(6 * 1024 * 1024)) + "* BYE bye\r\n";
    rig.imap_server.write(stream);
    // Backed up all the way: the IMAP server's own socket is full.
    REQUIRE(loop.runUntil([&] { return rig.imap_server.queuedBytes() > 0; }));
    REQUIRE(loop.runUntil([&] { return rig.relay->splicedBytes() > 0; }));
    CHECK(rig.proxy_client.queuedBytes() == 0);  // nothing waits in user space
    rig.mail_client.readStart();
    REQUIRE(loop.runUntil([&] { return rig.received().size() >= stream.size(); }));
    CHECK(rig.received() == stream);
    CHECK(rig.events.scanner.sawBye());
  }
  REQUIRE(loop.shutdown() == 0);
}

TEST_CASE("splice: the back-end ending inside a literal is reported as its end",
          "[relay][splice]") {
  TestLoop loop;
  {
    Rig rig(loop, 64 * 1024);
    const std::string body = payload(2 * 1024 * 1024);
    const std::string sent = "* 1 FETCH (BODY[] {" + std::to_string(body.size()) + "}\r\n" +
                             body.substr(0, body.size() / 2);
    rig.imap_server.write(sent);
    rig.imap_server.shutdownWrite();
    REQUIRE(loop.runUntil(
        [&] { return !rig.events.ended.empty() && rig.received().size() >= sent.size(); }));
    CHECK(rig.events.ended == std::vector<std::string>{"backend"});
    // Everything the back-end sent was passed on before its end was reported.
    CHECK(rig.received() == sent);
    CHECK(rig.relay->splicedBytes() > 0);
  }
  REQUIRE(loop.shutdown() == 0);
}

TEST_CASE("splice: a client reset inside a literal is reported as a client error",
          "[relay][splice]") {
  TestLoop loop;
  {
    Rig rig(loop, 64 * 1024);
    for (TcpStream* s : {&rig.mail_client, &rig.proxy_client, &rig.proxy_backend, &rig.imap_server})
      shrinkBuffers(*s);
    rig.mail_client.readStop();
    rig.imap_server.write(fetchResponse(payload(6 * 1024 * 1024)));
    REQUIRE(loop.runUntil([&] { return rig.imap_server.queuedBytes() > 0; }));
    REQUIRE(loop.runUntil([&] { return rig.relay->splicedBytes() > 0; }));
    const linger reset{1, 0};
    REQUIRE(setsockopt(rig.mail_client.socketFd(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset) ==
            0);
    rig.client_link.client.reset();  // closes with an RST: unread data and linger 0
    REQUIRE(loop.runUntil([&] { return !rig.events.ended.empty(); }));
    CHECK(rig.events.ended.front() == "client:error");
  }
  REQUIRE(loop.shutdown() == 0);
}

TEST_CASE("splice: a relay torn down in the middle of a literal closes its pipe and descriptors",
          "[relay][splice]") {
  TestLoop loop;
  {
    Rig rig(loop, 64 * 1024);
    for (TcpStream* s : {&rig.mail_client, &rig.proxy_client, &rig.proxy_backend, &rig.imap_server})
      shrinkBuffers(*s);
    const auto before = openDescriptors();
    rig.mail_client.readStop();
    rig.imap_server.write(fetchResponse(payload(6 * 1024 * 1024)));
    REQUIRE(loop.runUntil([&] { return rig.imap_server.queuedBytes() > 0; }));
    REQUIRE(loop.runUntil([&] { return rig.relay->splicedBytes() > 0; }));
    CHECK(openDescriptors().size() > before.size());  // the pipe, at least
    rig.relay.reset();              // the session ended: the pump goes with the relay
    rig.proxy_backend.readStart();  // reads into user space again, nothing to the pump
    REQUIRE(loop.runUntil([&] { return rig.imap_server.queuedBytes() == 0; }));
    CHECK(openDescriptors() == before);
  }
  REQUIRE(loop.shutdown() == 0);
}

}  // namespace
}  // namespace gatehouse
