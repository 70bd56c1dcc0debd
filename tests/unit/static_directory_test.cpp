// Tests for StaticDirectory on a real uv loop: every outcome, delivery only through the
// mailbox on a later loop turn, and no callback once the PendingAuth handle is gone.
#include "directory/static_directory.h"

#include <uv.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <optional>
#include <thread>

#include "proxy/core/uv_handle.h"
#include "test_loop.h"

namespace gatehouse {
namespace {

// slappasswd -h {SSHA} -s secret
constexpr const char* kSshaSecret = "{SSHA}hKA/q2Rho3mtLe8pwHNGmxe+Y0K7hyUu";
// doveadm pw -s SHA512-CRYPT -p secret
constexpr const char* kSha512CryptSecret =
    "{SHA512-CRYPT}$6$Y3lkeOY7QurM3ua/$WjY1xGlFmeC64xW.V6dNpolVfuE6vhc29nKA6R3wtR8/2Sb9NKrqvBW/"
    "MltIqGtw3w0XTjoeUfl9pay20TXVE1";

DirectoryConfig testUsers() {
  DirectoryConfig config;
  config.users.push_back({"Carol", kSshaSecret, "A", "carol@example.com", {}});
  config.users.push_back({"dave", kSha512CryptSecret, "B", "dave", {Protocol::Imap}});
  config.users.push_back({"erin", kSshaSecret, "A", "", {Protocol::Pop3, Protocol::Submission}});
  return config;
}

Credentials credentials(std::string login, std::string password,
                        Protocol protocol = Protocol::Imap) {
  Credentials c;
  c.login = std::move(login);
  c.password = Secret(password);
  c.protocol = protocol;
  c.client_ip = "192.0.2.1";
  return c;
}

using testing::TestLoop;

// Authenticates through the loop and returns what the callback received.
AuthResult authenticateOnLoop(StaticDirectory& directory, Credentials c) {
  TestLoop loop;
  std::optional<AuthResult> result;
  auto pending = directory.authenticate(loop.mailbox(), std::move(c),
                                        [&result](AuthResult r) { result = std::move(r); });
  REQUIRE_FALSE(result.has_value());  // never on the caller's stack
  REQUIRE(loop.runUntil([&result] { return result.has_value(); }));
  REQUIRE(loop.shutdown() == 0);
  return *result;
}

TEST_CASE("static directory: the callback runs on a later loop turn", "[static_directory]") {
  StaticDirectory directory(testUsers());
  TestLoop loop;
  int calls = 0;
  auto pending = directory.authenticate(loop.mailbox(), credentials("carol", "secret"),
                                        [&calls](AuthResult) { ++calls; });
  CHECK(calls == 0);
  REQUIRE(loop.runUntil([&calls] { return calls > 0; }));
  loop.drainPosted();
  CHECK(calls == 1);
  CHECK(loop.shutdown() == 0);
}

TEST_CASE("static directory: destroying the handle cancels the callback", "[static_directory]") {
  StaticDirectory directory(testUsers());
  TestLoop loop;
  int calls = 0;
  auto pending = directory.authenticate(loop.mailbox(), credentials("carol", "secret"),
                                        [&calls](AuthResult) { ++calls; });
  pending.reset();
  loop.drainPosted();
  CHECK(calls == 0);
  CHECK(loop.shutdown() == 0);
}

TEST_CASE("static directory: a closed mailbox drops the answer quietly", "[static_directory]") {
  StaticDirectory directory(testUsers());
  TestLoop loop;
  auto mailbox = loop.mailbox();
  int calls = 0;
  CHECK(loop.shutdown() == 0);
  auto pending = directory.authenticate(mailbox, credentials("carol", "secret"),
                                        [&calls](AuthResult) { ++calls; });
  CHECK(calls == 0);
}

TEST_CASE("static directory: answers from another thread arrive on the loop thread",
          "[static_directory]") {
  StaticDirectory directory(testUsers());
  TestLoop loop;
  std::optional<AuthResult> result;
  std::thread::id callback_thread;
  std::unique_ptr<PendingAuth> pending;
  std::thread asker([&] {
    pending =
        directory.authenticate(loop.mailbox(), credentials("carol", "secret"), [&](AuthResult r) {
          callback_thread = std::this_thread::get_id();
          result = std::move(r);
        });
  });
  asker.join();
  REQUIRE(loop.runUntil([&result] { return result.has_value(); }));
  CHECK(callback_thread == std::this_thread::get_id());
  CHECK(result->status == AuthStatus::Ok);
  CHECK(loop.shutdown() == 0);
}

TEST_CASE("static directory: outcomes", "[static_directory]") {
  StaticDirectory directory(testUsers());

  SECTION("right password gives the canonical back-end login and back-end") {
    AuthResult r = authenticateOnLoop(directory, credentials("carol", "secret"));
    CHECK(r.status == AuthStatus::Ok);
    CHECK(r.route.user == "carol@example.com");
    CHECK(r.route.backend == "A");
  }
  SECTION("login matching ignores ASCII case") {
    AuthResult r = authenticateOnLoop(directory, credentials("CAROL", "secret"));
    CHECK(r.status == AuthStatus::Ok);
    CHECK(r.route.user == "carol@example.com");
  }
  SECTION("without backend_login the configured login is used, not the typed one") {
    AuthResult r = authenticateOnLoop(directory, credentials("ERIN", "secret", Protocol::Pop3));
    CHECK(r.status == AuthStatus::Ok);
    CHECK(r.route.user == "erin");
  }
  SECTION("crypt hashes work too") {
    AuthResult r = authenticateOnLoop(directory, credentials("dave", "secret"));
    CHECK(r.status == AuthStatus::Ok);
    CHECK(r.route.backend == "B");
  }
  SECTION("wrong password") {
    CHECK(authenticateOnLoop(directory, credentials("carol", "Secret")).status ==
          AuthStatus::Denied);
  }
  SECTION("unknown user") {
    AuthResult r = authenticateOnLoop(directory, credentials("mallory", "secret"));
    CHECK(r.status == AuthStatus::Denied);
    CHECK(r.route.backend.empty());
  }
  SECTION("empty and blank passwords") {
    CHECK(authenticateOnLoop(directory, credentials("carol", "")).status == AuthStatus::Denied);
    CHECK(authenticateOnLoop(directory, credentials("carol", " \t\r\n")).status ==
          AuthStatus::Denied);
  }
  SECTION("NUL in login or password") {
    using namespace std::string_literals;
    CHECK(authenticateOnLoop(directory, credentials("carol\0x"s, "secret")).status ==
          AuthStatus::Denied);
    CHECK(authenticateOnLoop(directory, credentials("carol", "secret\0x"s)).status ==
          AuthStatus::Denied);
  }
  SECTION("empty login") {
    CHECK(authenticateOnLoop(directory, credentials("", "secret")).status == AuthStatus::Denied);
  }
  SECTION("right password, protocol not allowed") {
    AuthResult r = authenticateOnLoop(directory, credentials("dave", "secret", Protocol::Pop3));
    CHECK(r.status == AuthStatus::Disabled);
    CHECK(r.route.backend.empty());
    CHECK(authenticateOnLoop(directory, credentials("erin", "secret", Protocol::Imap)).status ==
          AuthStatus::Disabled);
  }
  SECTION("wrong password on a disallowed protocol is Denied, not Disabled") {
    CHECK(authenticateOnLoop(directory, credentials("dave", "nope", Protocol::Pop3)).status ==
          AuthStatus::Denied);
  }
  SECTION("an empty protocol list allows every protocol") {
    for (Protocol p : {Protocol::Imap, Protocol::Pop3, Protocol::Submission, Protocol::Http}) {
      CHECK(authenticateOnLoop(directory, credentials("carol", "secret", p)).status ==
            AuthStatus::Ok);
    }
  }
  SECTION("reasons never contain the password") {
    for (const char* login : {"carol", "mallory", "dave"}) {
      AuthResult r = directory.check(credentials(login, "hunter2-typed"));
      CHECK(r.reason.find("hunter2") == std::string::npos);
    }
  }
}

// An unknown login must cost a hash verification, not answer at once. The bound is loose (a
// tenth) so that a busy machine does not make it flaky; without the dummy hash the ratio is ~0.
TEST_CASE("static directory: unknown users cost about as much as wrong passwords",
          "[static_directory]") {
  DirectoryConfig config;
  config.users.push_back({"dave", kSha512CryptSecret, "B", "", {}});
  StaticDirectory directory(config);
  auto timeOf = [&directory](const char* login) {
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 5; ++i) directory.check(credentials(login, "wrong"));
    return std::chrono::steady_clock::now() - start;
  };
  auto wrong_password = timeOf("dave");
  auto unknown_user = timeOf("nobody");
  CHECK(unknown_user * 10 > wrong_password);
}

TEST_CASE("static directory: with no users, unknown logins still cost a hash",
          "[static_directory]") {
  StaticDirectory empty{DirectoryConfig{}};
  DirectoryConfig config;
  config.users.push_back({"dave", kSha512CryptSecret, "B", "", {}});
  StaticDirectory one(config);
  auto timeOf = [](StaticDirectory& directory, const char* login) {
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 5; ++i) directory.check(credentials(login, "wrong"));
    return std::chrono::steady_clock::now() - start;
  };
  CHECK(timeOf(empty, "nobody") * 10 > timeOf(one, "dave"));
}

}  // namespace
}  // namespace gatehouse
