// TlsStream and the TLS contexts, client and server back to back over a MemoryPipe, with a
// throwaway CA and certificates made by the openssl tool at start.
#include "tls/tls_stream.h"

#include <malloc.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <uv.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tests/unit/memory_stream.h"
#include "tls/ticket_keys.h"
#include "tls/tls_context.h"

namespace gatehouse {
namespace {

using testing::MemoryPipe;

// The CA and leaf certificates, made once per test run in a temporary directory.
class TestPki {
 public:
  static const TestPki& get() {
    static TestPki pki;
    return pki;
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  CertificateConfig cert(const std::string& stem, std::vector<std::string> names) const {
    return CertificateConfig{path(stem + ".pem"), path(stem + ".key"), std::move(names)};
  }

 private:
  TestPki() {
    char tmpl[] = "/tmp/gatehouse-tls-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    dir_ = tmpl;
    std::string script =
        "set -e; cd " + dir_ +
        "; exec 2>openssl.log"
        "; ec='-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes'"
        "; openssl req -x509 $ec -keyout ca.key -out ca.pem -days 2"
        " -subj '/CN=Gatehouse Test CA'"
        "; leaf() { openssl req $ec -keyout $1.key -out $1.csr -subj \"/CN=$2\""
        "; printf 'subjectAltName=%s\\nbasicConstraints=CA:FALSE\\n' \"$3\" >$1.ext"
        "; openssl x509 -req -in $1.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
        " -out $1.pem -days 2 -extfile $1.ext; }"
        "; leaf a mail.example.com DNS:mail.example.com"
        "; leaf b '*.example.org' 'DNS:*.example.org'"
        "; leaf c special.example.org DNS:special.example.org"
        "; leaf ip 127.0.0.1 IP:127.0.0.1"
        "; openssl req $ec -keyout cn.key -out cn.csr -subj '/CN=cn-only.example.com'"
        "; printf 'basicConstraints=CA:FALSE\\n' >cn.ext"
        "; openssl x509 -req -in cn.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
        " -out cn.pem -days 2 -extfile cn.ext";
    REQUIRE(std::system(script.c_str()) == 0);
  }
  ~TestPki() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::string dir_;
};

std::shared_ptr<const ServerTlsContext> serverContext(
    const std::string& alpn = "imap", std::shared_ptr<const TicketKeys> ticket_keys = nullptr) {
  const TestPki& pki = TestPki::get();
  std::string error;
  auto ctx = ServerTlsContext::create(
      {pki.cert("a", {"mail.example.com"}), pki.cert("b", {"*.example.org"}),
       pki.cert("c", {"special.example.org"})},
      alpn, std::move(ticket_keys), error);
  INFO(error);
  REQUIRE(ctx != nullptr);
  return ctx;
}

BackendConfig backend(const std::string& server_name, bool verify) {
  BackendConfig config;
  config.name = "test";
  config.address = "127.0.0.1";
  config.server_name = server_name;
  config.ca_file = TestPki::get().path("ca.pem");
  config.verify = verify;
  return config;
}

bssl::UniquePtr<SSL> clientSsl(const std::string& server_name, bool verify,
                               std::vector<std::string> alpn = {}) {
  std::string error;
  auto ctx = ClientTlsContext::create(backend(server_name, verify), alpn, error);
  INFO(error);
  REQUIRE(ctx != nullptr);
  return ctx->newSsl();  // the SSL keeps its SSL_CTX alive
}

struct Recorder : StreamHandler {
  void onRead(std::string_view data) override {
    received.append(data);
    ++reads;
    if (on_read) on_read(data);
  }
  void onEnd() override { ++ends; }
  void onWritable() override { ++writables; }
  void onError(std::string_view reason) override {
    error = reason;
    ++errors;
  }

  std::string received;
  int reads = 0;
  int ends = 0;
  int errors = 0;
  int writables = 0;
  std::string error;
  std::function<void(std::string_view)> on_read;
};

struct Loop {
  Loop() { uv_loop_init(&loop); }
  ~Loop() {
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);  // a leaked handle fails the test
  }
  uv_loop_t loop;
};

// Client on side A, server on side B.
struct TlsPair {
  TlsPair(bssl::UniquePtr<SSL> client_ssl, bssl::UniquePtr<SSL> server_ssl) {
    client =
        std::make_unique<TlsStream>(pipe.take(MemoryPipe::kA), std::move(client_ssl), &loop.loop);
    server =
        std::make_unique<TlsStream>(pipe.take(MemoryPipe::kB), std::move(server_ssl), &loop.loop);
    client->setHandler(&client_events);
    server->setHandler(&server_events);
    client->readStart();
    server->readStart();
  }
  // Pumps the pipe and the loop until both are quiet.
  void run() {
    for (int i = 0; i < 100000; ++i) {
      bool moved = pipe.pump();
      int active = uv_run(&loop.loop, UV_RUN_NOWAIT);
      if (!moved && active == 0) return;
    }
    FAIL("did not settle");
  }

  Loop loop;
  MemoryPipe pipe;
  Recorder client_events;
  Recorder server_events;
  std::unique_ptr<TlsStream> client;
  std::unique_ptr<TlsStream> server;
};

std::string peerCommonName(const TlsStream& stream) {
  bssl::UniquePtr<X509> cert(SSL_get_peer_certificate(stream.ssl()));
  if (!cert) return {};
  char name[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, name, sizeof(name));
  return name;
}

std::string pattern(size_t size) {
  std::string data(size, '\0');
  uint32_t x = 12345;
  for (char& c : data) {
    x = x * 1103515245 + 12345;
    c = static_cast<char>(x >> 24);
  }
  return data;
}

TEST_CASE("tls: handshake and byte-exact data both ways", "[tls]") {
  TlsPair p(clientSsl("mail.example.com", true, {"imap"}), serverContext()->newSsl());
  p.run();
  REQUIRE(p.client->handshakeDone());
  REQUIRE(p.server->handshakeDone());
  CHECK(p.client->tlsVersion() == "TLSv1.3");
  CHECK(p.server->alpnSelected() == "imap");
  CHECK(p.client->alpnSelected() == "imap");
  CHECK(p.server->serverName() == "mail.example.com");
  CHECK(p.client->serverName() == "mail.example.com");

  size_t client_writes = p.pipe.writeCalls(MemoryPipe::kA);
  p.client->write("a1 CAPABILITY\r\n");
  CHECK(p.pipe.writeCalls(MemoryPipe::kA) == client_writes + 1);
  p.run();
  CHECK(p.server_events.received == "a1 CAPABILITY\r\n");

  const std::string big = pattern(1024 * 1024 + 7);
  size_t server_writes = p.pipe.writeCalls(MemoryPipe::kB);
  p.server->write(big);
  CHECK(p.pipe.writeCalls(MemoryPipe::kB) == server_writes + 1);  // one write per call
  p.client->write(big);
  p.run();
  CHECK(p.client_events.received == big);
  CHECK(p.server_events.received == "a1 CAPABILITY\r\n" + big);
  CHECK(p.client->queuedBytes() == 0);
  CHECK(p.client_events.errors == 0);
  CHECK(p.server_events.errors == 0);
}

TEST_CASE("tls: a greeting written before the handshake arrives after it", "[tls]") {
  TlsPair p(clientSsl("mail.example.com", true), serverContext()->newSsl());
  p.server->write("* OK Gatehouse ready\r\n");
  CHECK(p.server->queuedBytes() == 22);  // waits for the handshake
  p.run();
  CHECK(p.client->handshakeDone());
  CHECK(p.client_events.received == "* OK Gatehouse ready\r\n");
  CHECK(p.client_events.reads == 1);
  // The server's first flight, then its last flight together with the greeting.
  CHECK(p.pipe.writeCalls(MemoryPipe::kB) == 2);
  CHECK(p.server->queuedBytes() == 0);
}

TEST_CASE("tls: a client's write before the handshake goes with its Finished", "[tls]") {
  TlsPair p(clientSsl("mail.example.com", true), serverContext()->newSsl());
  p.client->write("a1 CAPABILITY\r\n");
  p.run();
  CHECK(p.server_events.received == "a1 CAPABILITY\r\n");
  CHECK(p.pipe.writeCalls(MemoryPipe::kA) == 2);  // ClientHello, then Finished + the command
}

TEST_CASE("tls: TLS 1.2 works too", "[tls]") {
  bssl::UniquePtr<SSL> ssl = clientSsl("mail.example.com", true, {"imap"});
  REQUIRE(SSL_set_max_proto_version(ssl.get(), TLS1_2_VERSION));
  TlsPair p(std::move(ssl), serverContext()->newSsl());
  p.server->write("* OK ready\r\n");
  p.run();
  CHECK(p.server->tlsVersion() == "TLSv1.2");
  CHECK(p.server->alpnSelected() == "imap");
  CHECK(p.client_events.received == "* OK ready\r\n");
  p.client->write("a1 LOGOUT\r\n");
  p.run();
  CHECK(p.server_events.received == "a1 LOGOUT\r\n");
}

TEST_CASE("tls: a slow transport shows in queuedBytes, then onWritable", "[tls]") {
  TlsPair p(clientSsl("mail.example.com", true), serverContext()->newSsl());
  p.run();
  p.pipe.setWriteCapacity(MemoryPipe::kB, 16 * 1024);
  const std::string data = pattern(512 * 1024);
  p.server->write(data);
  CHECK(p.server->queuedBytes() > Stream::kHighWatermark);
  p.run();
  CHECK(p.server->queuedBytes() == 0);
  CHECK(p.server_events.writables == 1);
  CHECK(p.client_events.received == data);
}

TEST_CASE("tls: an error found inside a call is reported from the loop", "[tls]") {
  Loop loop;
  MemoryPipe pipe;
  Recorder events;
  TlsStream stream(pipe.take(MemoryPipe::kA), nullptr, &loop.loop);  // no SSL: fails at once
  stream.setHandler(&events);
  stream.write("x");
  CHECK(events.errors == 0);
  uv_run(&loop.loop, UV_RUN_NOWAIT);
  CHECK(events.errors == 1);
  CHECK(events.error.rfind("tls: ", 0) == 0);
}

TEST_CASE("tls: SNI selects the certificate", "[tls]") {
  struct Case {
    std::string sni;
    std::string expected_cn;
  };
  for (const Case& c :
       {Case{"mail.example.com", "mail.example.com"}, Case{"imap.example.org", "*.example.org"},
        Case{"IMAP.Example.ORG", "*.example.org"},
        Case{"special.example.org", "special.example.org"},  // exact beats *
        Case{"a.b.example.org", "mail.example.com"},         // * is one label
        Case{"unknown.test", "mail.example.com"}}) {
    DYNAMIC_SECTION("sni " << c.sni) {
      TlsPair p(clientSsl(c.sni, false), serverContext()->newSsl());
      p.run();
      REQUIRE(p.client->handshakeDone());
      CHECK(peerCommonName(*p.client) == c.expected_cn);
      CHECK(p.server->serverName() == c.sni);
    }
  }
}

TEST_CASE("tls: no SNI gets the default certificate", "[tls]") {
  TlsPair p(clientSsl("", false), serverContext()->newSsl());  // address 127.0.0.1: no SNI
  p.run();
  REQUIRE(p.client->handshakeDone());
  CHECK(peerCommonName(*p.client) == "mail.example.com");
  CHECK(p.server->serverName().empty());
}

TEST_CASE("tls: strict ALPN", "[tls]") {
  SECTION("a client offering only another protocol gets no_application_protocol") {
    TlsPair p(clientSsl("mail.example.com", true, {"http/1.1"}), serverContext()->newSsl());
    p.server->write("* OK never seen\r\n");
    p.run();
    CHECK_FALSE(p.server->handshakeDone());
    CHECK(p.server_events.errors == 1);
    CHECK(p.server_events.error == "tls: no_application_protocol");
    CHECK(p.client_events.errors == 1);
    CHECK(p.client_events.error == "tls: alert received: no_application_protocol");
    CHECK(p.client_events.received.empty());
  }
  SECTION("a client offering ours among others is served") {
    TlsPair p(clientSsl("mail.example.com", true, {"http/1.1", "imap"}), serverContext()->newSsl());
    p.run();
    REQUIRE(p.server->handshakeDone());
    CHECK(p.server->alpnSelected() == "imap");
  }
  SECTION("a client offering no ALPN is served") {
    TlsPair p(clientSsl("mail.example.com", true), serverContext()->newSsl());
    p.run();
    REQUIRE(p.server->handshakeDone());
    CHECK(p.server->alpnSelected().empty());
  }
}

TEST_CASE("tls: a TLS 1.1 client is refused", "[tls]") {
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  REQUIRE(SSL_CTX_set_min_proto_version(ctx.get(), TLS1_1_VERSION));
  REQUIRE(SSL_CTX_set_max_proto_version(ctx.get(), TLS1_1_VERSION));
  bssl::UniquePtr<SSL> ssl(SSL_new(ctx.get()));
  SSL_set_connect_state(ssl.get());
  TlsPair p(std::move(ssl), serverContext()->newSsl());
  p.run();
  CHECK(p.server_events.errors == 1);
  CHECK(p.server_events.error == "tls: unsupported_protocol");
  CHECK(p.client_events.errors == 1);
  CHECK(p.client_events.error == "tls: alert received: protocol_version");
}

TEST_CASE("tls: back-end certificate verification", "[tls]") {
  SECTION("the right name") {
    TlsPair p(clientSsl("mail.example.com", true), serverContext()->newSsl());
    p.run();
    CHECK(p.client->handshakeDone());
    CHECK(p.client_events.errors == 0);
  }
  SECTION("a wildcard name") {
    TlsPair p(clientSsl("imap.example.org", true), serverContext()->newSsl());
    p.run();
    CHECK(p.client->handshakeDone());
  }
  SECTION("a wrong name") {
    TlsPair p(clientSsl("wrong.example.com", true), serverContext()->newSsl());
    p.run();
    CHECK_FALSE(p.client->handshakeDone());
    CHECK(p.client_events.error == "tls: certificate verify failed: Hostname mismatch");
    CHECK(p.server_events.errors == 1);  // it got the client's alert
  }
  SECTION("an IP address") {
    std::string error;
    auto server = ServerTlsContext::create({TestPki::get().cert("ip", {})}, "imap", nullptr, error);
    REQUIRE(server != nullptr);
    TlsPair ok(clientSsl("", true), server->newSsl());  // verifies 127.0.0.1, sends no SNI
    ok.run();
    CHECK(ok.client->handshakeDone());
    TlsPair wrong(clientSsl("", true), serverContext()->newSsl());
    wrong.run();
    CHECK(wrong.client_events.error.rfind("tls: certificate verify failed: ", 0) == 0);
  }
  SECTION("a name only in the subject's CN, not in a subjectAltName") {
    // RFC 9525 6.3: the CN is not a reference identifier; a CA that also signs client or
    // e-mail certificates could have put a back-end's name there.
    std::string error;
    auto server = ServerTlsContext::create({TestPki::get().cert("cn", {"cn-only.example.com"})},
                                           "imap", nullptr, error);
    REQUIRE(server != nullptr);
    TlsPair p(clientSsl("cn-only.example.com", true), server->newSsl());
    p.run();
    CHECK_FALSE(p.client->handshakeDone());
    CHECK(p.client_events.error == "tls: certificate verify failed: Hostname mismatch");
  }
  SECTION("no verification") {
    TlsPair p(clientSsl("wrong.example.com", false), serverContext()->newSsl());
    p.run();
    CHECK(p.client->handshakeDone());
  }
}

TEST_CASE("tls: close_notify is onEnd, and writing goes on after it", "[tls]") {
  TlsPair p(clientSsl("mail.example.com", true), serverContext()->newSsl());
  p.run();
  p.client->write("a1 LOGOUT\r\n");
  p.client->shutdownWrite();
  p.run();
  CHECK(p.server_events.received == "a1 LOGOUT\r\n");
  CHECK(p.server_events.ends == 1);
  p.server->write("* BYE\r\n");
  p.server->shutdownWrite();
  p.run();
  CHECK(p.client_events.received == "* BYE\r\n");
  CHECK(p.client_events.ends == 1);
  CHECK(p.server_events.ends == 1);  // the transport's FIN after close_notify is not a second end
  CHECK(p.client_events.errors + p.server_events.errors == 0);
}

TEST_CASE("tls: shutdownWrite during the handshake waits for it", "[tls]") {
  TlsPair p(clientSsl("mail.example.com", true), serverContext()->newSsl());
  p.server->write("* BYE too busy\r\n");
  p.server->shutdownWrite();
  p.run();
  CHECK(p.client_events.received == "* BYE too busy\r\n");
  CHECK(p.client_events.ends == 1);
}

TEST_CASE("tls: transport EOF", "[tls]") {
  TlsPair p(clientSsl("mail.example.com", true), serverContext()->newSsl());
  p.run();
  SECTION("between records is onEnd") {
    p.client->close();
    p.run();
    CHECK(p.server_events.ends == 1);
    CHECK(p.server_events.errors == 0);
  }
  SECTION("in the middle of a record is onError") {
    p.pipe.injectBytes(MemoryPipe::kB, std::string("\x17\x03\x03\x00\x40"
                                                   "abc",
                                                   8));
    p.client->close();
    p.run();
    CHECK(p.server_events.ends == 0);
    CHECK(p.server_events.error == "tls: connection closed in the middle of a record");
  }
  SECTION("during the handshake is onError") {
    TlsPair q(clientSsl("mail.example.com", true), serverContext()->newSsl());
    q.pipe.pump(1);  // the ClientHello only
    q.client->close();
    q.run();
    CHECK(q.server_events.error == "tls: connection closed during handshake");
  }
}

TEST_CASE("tls: garbage from the transport is onError", "[tls]") {
  SECTION("instead of a ClientHello") {
    Loop loop;
    MemoryPipe pipe;
    Recorder events;
    TlsStream server(pipe.take(MemoryPipe::kB), serverContext()->newSsl(), &loop.loop);
    server.setHandler(&events);
    server.readStart();
    pipe.injectBytes(MemoryPipe::kB, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    pipe.pump();
    CHECK(events.errors == 1);
    CHECK(events.error.rfind("tls: ", 0) == 0);
  }
  SECTION("after the handshake") {
    TlsPair p(clientSsl("mail.example.com", true), serverContext()->newSsl());
    p.run();
    p.pipe.injectBytes(MemoryPipe::kB, std::string("\x17\x03\x03\x00\x40", 5) + pattern(0x40));
    p.run();
    CHECK(p.server_events.errors == 1);
    CHECK(p.server_events.error == "tls: bad_decrypt");
    CHECK(p.client_events.error == "tls: alert received: bad_record_mac");
  }
  SECTION("a transport error passes through") {
    TlsPair p(clientSsl("mail.example.com", true), serverContext()->newSsl());
    p.run();
    p.pipe.injectError(MemoryPipe::kB, "connection reset");
    p.run();
    CHECK(p.server_events.error == "connection reset");
  }
}

TEST_CASE("tls: the handler may destroy or close the stream inside onRead", "[tls]") {
  TlsPair p(clientSsl("mail.example.com", true), serverContext()->newSsl());
  p.run();
  SECTION("destroy") {
    p.server_events.on_read = [&](std::string_view) { p.server.reset(); };
  }
  SECTION("close") {
    p.server_events.on_read = [&](std::string_view) { p.server->close(); };
  }
  SECTION("write, then destroy") {
    p.server_events.on_read = [&](std::string_view) {
      p.server->write("* BYE\r\n");
      p.server.reset();
    };
  }
  p.client->write(pattern(100 * 1024));  // several onRead calls' worth in one batch
  p.client->write("more");
  p.run();
  CHECK(p.server_events.reads == 1);
  p.client->write("after");
  p.run();
  CHECK(p.server_events.reads == 1);
}

TEST_CASE("tls: readStop inside onRead holds the rest until readStart", "[tls]") {
  TlsPair p(clientSsl("mail.example.com", true), serverContext()->newSsl());
  p.run();
  p.server_events.on_read = [&](std::string_view) { p.server->readStop(); };
  const std::string data = pattern(100 * 1024);
  p.client->write(data);
  p.client->shutdownWrite();
  p.run();
  CHECK(p.server_events.reads == 1);
  CHECK(p.server_events.ends == 0);
  while (p.server_events.received.size() < data.size()) {
    int reads = p.server_events.reads;
    p.server->readStart();
    CHECK(p.server_events.reads == reads);  // never on the caller's stack
    p.run();
    REQUIRE(p.server_events.reads == reads + 1);
  }
  CHECK(p.server_events.received == data);
  p.server_events.on_read = nullptr;
  p.server->readStart();
  p.run();
  CHECK(p.server_events.ends == 1);
}

TEST_CASE("tls: an EOF behind a paused read ends after the rest is delivered", "[tls]") {
  TlsPair p(clientSsl("mail.example.com", true), serverContext()->newSsl());
  p.run();
  p.server_events.on_read = [&](std::string_view) { p.server->readStop(); };
  // The first read takes "abc" and all but 3 bytes of the full record behind it, so the pause
  // leaves plaintext inside SSL and no ciphertext outside it.
  const std::string data = "abc" + pattern(16 * 1024);
  p.client->write("abc");
  p.client->write(data.substr(3));
  p.run();
  REQUIRE(p.server_events.reads == 1);
  p.client->close();  // the transport's EOF, without close_notify
  p.run();
  p.server_events.on_read = nullptr;
  p.server->readStart();  // the EOF reaches the stream before its deferred delivery runs
  p.run();
  CHECK(p.server_events.received == data);
  CHECK(p.server_events.errors == 0);
  CHECK(p.server_events.ends == 1);
}

TEST_CASE("tls: context creation errors name the file", "[tls]") {
  const TestPki& pki = TestPki::get();
  std::string error;
  CHECK(ServerTlsContext::create({}, "imap", nullptr, error) == nullptr);
  CHECK(
      ServerTlsContext::create({CertificateConfig{pki.path("missing.pem"), pki.path("a.key"), {}}},
                               "imap", nullptr, error) == nullptr);
  CHECK(error.find("missing.pem") != std::string::npos);
  CHECK(ServerTlsContext::create({CertificateConfig{pki.path("a.pem"), pki.path("b.key"), {}}},
                                 "imap", nullptr, error) == nullptr);
  CHECK(error.find("does not match") != std::string::npos);
  CHECK(ServerTlsContext::create({CertificateConfig{pki.path("a.key"), pki.path("a.key"), {}}},
                                 "imap", nullptr, error) == nullptr);
  CHECK(error.find("a.key") != std::string::npos);
  BackendConfig bad = backend("mail.example.com", true);
  bad.ca_file = pki.path("missing-ca.pem");
  CHECK(ClientTlsContext::create(bad, {}, error) == nullptr);
  CHECK(error.find("missing-ca.pem") != std::string::npos);
}

// A client that keeps the session of its last ticket, as mail clients do between connections.
class ResumingClient {
 public:
  ResumingClient() : ctx_(SSL_CTX_new(TLS_method())) {
    REQUIRE(ctx_);
    SSL_CTX_set_session_cache_mode(ctx_.get(), SSL_SESS_CACHE_CLIENT);
    SSL_CTX_set_ex_data(ctx_.get(), 0, this);
    SSL_CTX_sess_set_new_cb(ctx_.get(), [](SSL* ssl, SSL_SESSION* session) {
      auto* self = static_cast<ResumingClient*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), 0));
      self->session_.reset(session);  // we take the reference
      return 1;
    });
  }
  // Connects (offering the kept session, if any) and reads the greeting, which brings the tickets.
  // Returns whether the server resumed the session.
  bool connect(const ServerTlsContext& server, const std::string& sni = "mail.example.com",
               uint16_t max_version = TLS1_3_VERSION) {
    bssl::UniquePtr<SSL> ssl(SSL_new(ctx_.get()));
    REQUIRE(ssl);
    SSL_set_connect_state(ssl.get());
    SSL_set_tlsext_host_name(ssl.get(), sni.c_str());
    REQUIRE(SSL_set_max_proto_version(ssl.get(), max_version));
    if (session_) SSL_set_session(ssl.get(), session_.get());
    TlsPair p(std::move(ssl), server.newSsl());
    p.server->write("* OK ready\r\n");
    p.run();
    REQUIRE(p.client->handshakeDone());
    CHECK(p.client_events.received == "* OK ready\r\n");
    CHECK(p.client_events.errors + p.server_events.errors == 0);
    bool client_says = SSL_session_reused(p.client->ssl()) != 0;
    CHECK(client_says == (SSL_session_reused(p.server->ssl()) != 0));
    return client_says;
  }
  bool hasSession() const { return session_ != nullptr; }

 private:
  bssl::UniquePtr<SSL_CTX> ctx_;
  bssl::UniquePtr<SSL_SESSION> session_;
};

std::shared_ptr<const TicketKeys> ticketKeys(std::vector<std::string> files) {
  std::vector<Secret> secrets;
  for (const std::string& file : files) {
    REQUIRE(TicketKeys::problemWith(file).empty());
    secrets.emplace_back(file);
  }
  return std::make_shared<const TicketKeys>(secrets);
}

// nginx's layouts: 80 bytes = name, HMAC key, AES-256 key; 48 bytes = name, AES-128 key, HMAC key.
std::string keyFile(char name, size_t size) {
  std::string file = pattern(size);
  file.replace(0, TicketKeys::kNameSize, TicketKeys::kNameSize, name);
  return file;
}

TEST_CASE("tls: ticket key files are 48 or 80 bytes", "[tls][tickets]") {
  CHECK(TicketKeys::problemWith(keyFile('a', 80)).empty());
  CHECK(TicketKeys::problemWith(keyFile('a', 48)).empty());
  CHECK(TicketKeys::problemWith("").find("not 0") != std::string::npos);
  CHECK(TicketKeys::problemWith(keyFile('a', 81)).find("48 or 80") != std::string::npos);
  CHECK(TicketKeys::problemWith(keyFile('a', 47)).find("not 47") != std::string::npos);
  CHECK(TicketKeys::nameOf(keyFile('z', 80)) == std::string(16, 'z'));
}

TEST_CASE("tls: a ticket sealed by one instance resumes on another with the same key",
          "[tls][tickets]") {
  for (size_t size : {80, 48}) {
    INFO("key file of " << size << " bytes");
    ResumingClient client;
    CHECK_FALSE(client.connect(*serverContext("imap", ticketKeys({keyFile('a', size)}))));
    REQUIRE(client.hasSession());
    // Another process: its own context and its own copy of the same key file.
    CHECK(client.connect(*serverContext("imap", ticketKeys({keyFile('a', size)}))));
    // Rotated: a new key seals, the old one still opens (and the ticket is replaced).
    auto rotated = serverContext("imap", ticketKeys({keyFile('b', size), keyFile('a', size)}));
    CHECK(client.connect(*rotated));
    // The replacement was sealed with the new key: it resumes where only the new key is left.
    CHECK(client.connect(*serverContext("imap", ticketKeys({keyFile('b', size)}))));
    // A key that never sealed it: a full handshake, not a failure.
    CHECK_FALSE(client.connect(*serverContext("imap", ticketKeys({keyFile('c', size)}))));
  }
}

TEST_CASE("tls: without key files a ticket resumes only on the context that sealed it",
          "[tls][tickets]") {
  auto first = serverContext();
  ResumingClient client;
  CHECK_FALSE(client.connect(*first));
  CHECK(client.connect(*first));
  CHECK_FALSE(client.connect(*serverContext()));
}

TEST_CASE("tls: TLS 1.2 sessions resume by ticket across instances", "[tls][tickets]") {
  ResumingClient client;
  CHECK_FALSE(client.connect(*serverContext("imap", ticketKeys({keyFile('a', 80)})),
                             "mail.example.com", TLS1_2_VERSION));
  CHECK(client.connect(*serverContext("imap", ticketKeys({keyFile('a', 80)})), "mail.example.com",
                       TLS1_2_VERSION));
}

TEST_CASE("tls: a ticket does not resume on another protocol or another certificate",
          "[tls][tickets]") {
  auto keys = ticketKeys({keyFile('a', 80)});
  auto imap = serverContext("imap", keys);
  {
    ResumingClient client;
    CHECK_FALSE(client.connect(*imap));
    CHECK_FALSE(client.connect(*serverContext("pop3", keys)));  // ALPACA-style confusion
  }
  {
    ResumingClient client;
    CHECK_FALSE(client.connect(*imap, "special.example.org"));  // certificate c
    CHECK(client.connect(*imap, "special.example.org"));
    CHECK_FALSE(client.connect(*imap, "mail.example.com"));  // certificate a, the default
  }
  {
    ResumingClient client;
    CHECK_FALSE(client.connect(*imap, "mail.example.com"));
    CHECK_FALSE(client.connect(*imap, "www.example.org"));  // certificate b
  }
}

#if !defined(__SANITIZE_ADDRESS__)
TEST_CASE("tls: memory per idle session", "[tls]") {
  auto server_ctx = serverContext();
  std::string error;
  auto client_ctx = ClientTlsContext::create(backend("mail.example.com", true), {"imap"}, error);
  REQUIRE(client_ctx != nullptr);
  constexpr int kSessions = 64;
  std::vector<std::unique_ptr<TlsPair>> pairs;
  pairs.reserve(kSessions);
  // One warm-up session so per-thread buffers and lazy globals are not counted.
  TlsPair warm(client_ctx->newSsl(), server_ctx->newSsl());
  warm.client->write("a1 NOOP\r\n");
  warm.run();
  size_t before = mallinfo2().uordblks;
  for (int i = 0; i < kSessions; ++i) {
    pairs.push_back(std::make_unique<TlsPair>(client_ctx->newSsl(), server_ctx->newSsl()));
    pairs.back()->server->write("* OK ready\r\n");
    pairs.back()->run();
    pairs.back()->client->write("a1 NOOP\r\n");
    pairs.back()->run();
    REQUIRE(pairs.back()->server_events.received == "a1 NOOP\r\n");
  }
  size_t per_pair = (mallinfo2().uordblks - before) / kSessions;
  // Each pair is a client and a server session plus the test's loop, pipe and recorders.
  WARN("heap per idle client+server pair: "
       << per_pair << " bytes, of which the test's own " << sizeof(TlsPair)
       << " (loop, pipe, recorders) and 2 x " << sizeof(TlsStream) << " (TlsStream objects)");
  CHECK(per_pair / 2 <= 12 * 1024);
}
#endif

}  // namespace
}  // namespace gatehouse
