// Tests for CachedDirectory over a scripted fake directory, on a real uv loop with a fake clock:
// TTLs, stale-if-error, LRU eviction, password changes, cancellation and what the cache holds.
#include "directory/cached_directory.h"

#include <uv.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "proxy/config/config_loader.h"
#include "proxy/core/uv_handle.h"
#include "test_loop.h"

namespace gatehouse {
namespace {

using namespace std::chrono_literals;
using std::chrono::steady_clock;

using testing::TestLoop;

// The directory the cache decorates: a password per login, a switch to fail every request, a
// count of calls and the logins it was asked for. Delivers like a real one: posted, cancellable.
class FakeDirectory : public Directory {
 public:
  std::map<std::string, std::string> passwords;  // login -> password
  std::map<std::string, Protocol> disabled;      // login -> protocol it may not use
  bool temp_fail = false;
  std::atomic<int> calls{0};
  std::vector<std::string> logins;

  // While set, answers wait for release() (a slow directory, or one whose answer is lost).
  bool hold = false;

  std::unique_ptr<PendingAuth> authenticate(std::shared_ptr<LoopMailbox> reply_to, Credentials c,
                                            AuthCallback done) override {
    ++calls;
    AuthResult result = answer(c);
    auto cancelled = std::make_shared<std::atomic<bool>>(false);
    handles.push_back(cancelled);
    auto deliver = [cancelled, done = std::move(done), result = std::move(result)]() mutable {
      if (!cancelled->load()) done(std::move(result));
    };
    if (hold) {
      held_.emplace_back(std::move(reply_to), std::move(deliver));
    } else {
      reply_to->post(std::move(deliver));
    }
    return std::make_unique<Pending>(cancelled);
  }

  // How many of the requests made so far had their handle destroyed (cancelled, or answered and
  // done).
  int handlesGone() const {
    int n = 0;
    for (const auto& flag : handles) n += flag->load() ? 1 : 0;
    return n;
  }
  std::vector<std::shared_ptr<std::atomic<bool>>> handles;

  // Posts the answers held so far.
  void release() {
    for (auto& [reply_to, deliver] : std::exchange(held_, {})) reply_to->post(std::move(deliver));
  }

 private:
  class Pending : public PendingAuth {
   public:
    explicit Pending(std::shared_ptr<std::atomic<bool>> cancelled) : cancelled_(cancelled) {}
    ~Pending() override { cancelled_->store(true); }

   private:
    std::shared_ptr<std::atomic<bool>> cancelled_;
  };

  std::vector<std::pair<std::shared_ptr<LoopMailbox>, std::function<void()>>> held_;

  AuthResult answer(const Credentials& c) {
    if (temp_fail) return {AuthStatus::TempFail, {}, "directory down"};
    logins.push_back(c.login);
    auto it = passwords.find(c.login);
    if (it == passwords.end() || it->second != c.password.reveal()) {
      return {AuthStatus::Denied, {}, "wrong password"};
    }
    auto off = disabled.find(c.login);
    if (off != disabled.end() && off->second == c.protocol) {
      return {AuthStatus::Disabled, {}, "protocol not allowed"};
    }
    return {AuthStatus::Ok, Route{c.login, "A"}, ""};
  }
};

class FakeClock {
 public:
  CachedDirectory::Clock function() {
    return [this] { return now_; };
  }
  void advance(steady_clock::duration d) { now_ += d; }

 private:
  steady_clock::time_point now_ = steady_clock::time_point{} + 1000h;
};

// One cache over one fake directory, with a loop to deliver on.
struct Fixture {
  explicit Fixture(DirectoryCacheConfig cache = {}, LoginNormalizationConfig login = {})
      : inner(std::make_shared<FakeDirectory>()), cache(inner, login, cache, clock.function()) {
    inner->passwords = {{"alice", "alice-pw"}, {"bob", "bob-pw"}, {"carol", "carol-pw"}};
  }

  AuthResult auth(const std::string& login, const std::string& password,
                  Protocol protocol = Protocol::Imap) {
    std::optional<AuthResult> result;
    Credentials c;
    c.login = login;
    c.password = Secret(password);
    c.protocol = protocol;
    auto pending = cache.authenticate(loop.mailbox(), std::move(c),
                                      [&result](AuthResult r) { result = std::move(r); });
    REQUIRE_FALSE(result.has_value());  // never on the caller's stack
    REQUIRE(loop.runUntil([&result] { return result.has_value(); }));
    return *result;
  }

  // Starts a login without waiting; its answer lands in `into`.
  std::unique_ptr<PendingAuth> start(const std::string& login, const std::string& password,
                                     std::optional<AuthResult>& into) {
    Credentials c;
    c.login = login;
    c.password = Secret(password);
    return cache.authenticate(loop.mailbox(), std::move(c),
                              [&into](AuthResult r) { into = std::move(r); });
  }

  // Calls the inner directory received during `fn`.
  template <typename Fn>
  int callsDuring(Fn fn) {
    int before = inner->calls;
    fn();
    return inner->calls - before;
  }

  FakeClock clock;
  TestLoop loop;
  std::shared_ptr<FakeDirectory> inner;
  CachedDirectory cache;
};

TEST_CASE("cache: a hit within ttl does not ask the directory", "[cache]") {
  Fixture f;
  CHECK(f.callsDuring([&] { CHECK(f.auth("alice", "alice-pw").status == AuthStatus::Ok); }) == 1);
  f.clock.advance(59s);
  AuthResult again;
  CHECK(f.callsDuring([&] { again = f.auth("alice", "alice-pw"); }) == 0);
  CHECK(again.status == AuthStatus::Ok);
  CHECK(again.route.user == "alice");
  CHECK(again.route.backend == "A");
  CHECK(f.cache.stats().hits == 1);
  CHECK(f.cache.stats().misses == 1);
  // Another protocol is another entry: Disabled depends on it.
  CHECK(f.callsDuring([&] { f.auth("alice", "alice-pw", Protocol::Pop3); }) == 1);
}

TEST_CASE("cache: an entry older than ttl asks the directory again", "[cache]") {
  Fixture f;
  f.auth("alice", "alice-pw");
  f.clock.advance(60s);
  CHECK(f.callsDuring([&] { CHECK(f.auth("alice", "alice-pw").status == AuthStatus::Ok); }) == 1);
  f.clock.advance(30s);  // refreshed by that answer
  CHECK(f.callsDuring([&] { f.auth("alice", "alice-pw"); }) == 0);
}

TEST_CASE("cache: Disabled is cached like Ok, per protocol", "[cache]") {
  Fixture f;
  f.inner->disabled["alice"] = Protocol::Pop3;
  CHECK(f.auth("alice", "alice-pw", Protocol::Pop3).status == AuthStatus::Disabled);
  CHECK(f.callsDuring([&] {
    CHECK(f.auth("alice", "alice-pw", Protocol::Pop3).status == AuthStatus::Disabled);
  }) == 0);
  CHECK(f.auth("alice", "alice-pw", Protocol::Imap).status == AuthStatus::Ok);
}

TEST_CASE("cache: Denied is cached for negative_ttl only", "[cache]") {
  Fixture f;
  CHECK(f.auth("alice", "typo").status == AuthStatus::Denied);
  f.clock.advance(4s);
  CHECK(f.callsDuring([&] { CHECK(f.auth("alice", "typo").status == AuthStatus::Denied); }) == 0);
  f.clock.advance(1s);
  CHECK(f.callsDuring([&] { CHECK(f.auth("alice", "typo").status == AuthStatus::Denied); }) == 1);
  // Unknown users too, and a negative for one password says nothing about another.
  CHECK(f.auth("nobody", "x").status == AuthStatus::Denied);
  CHECK(f.callsDuring([&] { f.auth("nobody", "x"); }) == 0);
  CHECK(f.callsDuring([&] { CHECK(f.auth("alice", "alice-pw").status == AuthStatus::Ok); }) == 1);
}

TEST_CASE("cache: TempFail is never cached", "[cache]") {
  Fixture f;
  f.inner->temp_fail = true;
  CHECK(f.auth("alice", "alice-pw").status == AuthStatus::TempFail);
  CHECK(f.callsDuring([&] { CHECK(f.auth("alice", "alice-pw").status == AuthStatus::TempFail); }) ==
        1);
  CHECK(f.cache.size() == 0);
  f.inner->temp_fail = false;
  CHECK(f.auth("alice", "alice-pw").status == AuthStatus::Ok);
}

TEST_CASE("cache: stale-if-error serves an expired positive up to stale_max", "[cache]") {
  Fixture f;
  f.auth("alice", "alice-pw");
  f.inner->temp_fail = true;
  f.clock.advance(61s);
  AuthResult stale;
  CHECK(f.callsDuring([&] { stale = f.auth("alice", "alice-pw"); }) == 1);  // asked first
  CHECK(stale.status == AuthStatus::Ok);
  CHECK(stale.route.backend == "A");
  CHECK(f.cache.stats().stale == 1);
  // Only for the password that was cached, and never for someone not cached.
  CHECK(f.auth("alice", "guess").status == AuthStatus::TempFail);
  CHECK(f.auth("bob", "bob-pw").status == AuthStatus::TempFail);
  f.clock.advance(3600s - 61s - 1s);
  CHECK(f.auth("alice", "alice-pw").status == AuthStatus::Ok);
  f.clock.advance(1s);  // exactly stale_max old
  CHECK(f.auth("alice", "alice-pw").status == AuthStatus::TempFail);
}

TEST_CASE("cache: a password the directory refuses is no longer served stale", "[cache]") {
  Fixture f;
  f.auth("alice", "alice-pw");
  f.clock.advance(61s);
  f.inner->passwords["alice"] = "changed";
  CHECK(f.auth("alice", "alice-pw").status == AuthStatus::Denied);
  f.inner->temp_fail = true;
  f.clock.advance(10s);
  CHECK(f.auth("alice", "alice-pw").status == AuthStatus::TempFail);
}

TEST_CASE("cache: LRU eviction at max_entries", "[cache]") {
  DirectoryCacheConfig config;
  config.max_entries = 2;
  Fixture f(config);
  f.auth("alice", "alice-pw");
  f.auth("bob", "bob-pw");
  f.auth("alice", "alice-pw");  // a hit makes alice the most recent
  f.auth("carol", "carol-pw");  // evicts bob
  CHECK(f.cache.size() == 2);
  CHECK(f.cache.stats().evictions == 1);
  CHECK(f.callsDuring([&] { f.auth("alice", "alice-pw"); }) == 0);
  CHECK(f.callsDuring([&] { f.auth("carol", "carol-pw"); }) == 0);
  CHECK(f.callsDuring([&] { f.auth("bob", "bob-pw"); }) == 1);  // evicts alice
  CHECK(f.callsDuring([&] { f.auth("alice", "alice-pw"); }) == 1);
}

TEST_CASE("cache: wrong passwords and unknown logins never evict a positive", "[cache]") {
  DirectoryCacheConfig config;
  config.max_entries = 2;
  config.max_negative_entries = 2;
  Fixture f(config);
  f.auth("alice", "alice-pw");
  f.auth("bob", "bob-pw");
  // A spray: many logins that do not exist, and wrong passwords for a real one.
  for (int i = 0; i < 20; ++i) f.auth("guess" + std::to_string(i), "x");
  f.auth("carol", "wrong");
  CHECK(f.cache.size() == 4);  // two positives, the two most recent negatives
  CHECK(f.cache.stats().evictions == 19);
  // The positives survived: answered from the cache, and by stale-if-error once the directory
  // fails.
  CHECK(f.callsDuring([&] { CHECK(f.auth("alice", "alice-pw").status == AuthStatus::Ok); }) == 0);
  f.clock.advance(61s);
  f.inner->temp_fail = true;
  CHECK(f.auth("bob", "bob-pw").status == AuthStatus::Ok);
  CHECK(f.cache.stats().stale == 1);
}

TEST_CASE("cache: an entry moves between the lists as it gains and loses its positive", "[cache]") {
  DirectoryCacheConfig config;
  config.max_entries = 1;
  config.max_negative_entries = 1;
  Fixture f(config);
  f.auth("alice", "typo");      // negative list: alice
  f.auth("alice", "alice-pw");  // alice gains a positive: positive list; negative list empty
  f.auth("bob", "typo");        // negative list: bob; nothing evicted
  CHECK(f.cache.stats().evictions == 0);
  CHECK(f.callsDuring([&] { f.auth("alice", "alice-pw"); }) == 0);
  CHECK(f.callsDuring([&] { f.auth("bob", "typo"); }) == 0);
  // The directory now refuses alice's cached password: she keeps only negatives, and moves to the
  // negative list, where she evicts bob.
  f.inner->passwords["alice"] = "changed";
  f.clock.advance(61s);
  CHECK(f.auth("alice", "alice-pw").status == AuthStatus::Denied);
  CHECK(f.cache.stats().evictions == 1);
  CHECK(f.cache.size() == 1);
  CHECK(f.callsDuring([&] { f.auth("bob", "typo"); }) == 1);
  f.auth("carol", "carol-pw");  // a positive again fits beside the negatives
  CHECK(f.callsDuring([&] { f.auth("carol", "carol-pw"); }) == 0);
}

TEST_CASE("cache: a wrong password never matches a cached right one", "[cache]") {
  Fixture f;
  f.auth("alice", "alice-pw");
  AuthResult wrong;
  CHECK(f.callsDuring([&] { wrong = f.auth("alice", "alice-pw2"); }) == 1);
  CHECK(wrong.status == AuthStatus::Denied);
  CHECK(f.callsDuring([&] { f.auth("alice", "Alice-pw"); }) == 1);
  CHECK(f.callsDuring([&] { f.auth("alice", ""); }) == 1);
  // The negatives did not displace the positive.
  CHECK(f.callsDuring([&] { CHECK(f.auth("alice", "alice-pw").status == AuthStatus::Ok); }) == 0);
}

TEST_CASE("cache: a password change takes effect within ttl", "[cache]") {
  Fixture f;
  f.auth("alice", "old-pw");  // Denied: the directory does not know it yet, so it is cached
  f.inner->passwords["alice"] = "old-pw";
  f.clock.advance(5s);
  CHECK(f.auth("alice", "old-pw").status == AuthStatus::Ok);  // cached as positive now

  f.inner->passwords["alice"] = "new-pw";  // changed in the directory
  // Until ttl the old password is still answered from the cache (the documented window)...
  f.clock.advance(30s);
  CHECK(f.callsDuring([&] { CHECK(f.auth("alice", "old-pw").status == AuthStatus::Ok); }) == 0);
  // ...the new one is not held back by anything cached for the old one...
  CHECK(f.callsDuring([&] { CHECK(f.auth("alice", "new-pw").status == AuthStatus::Ok); }) == 1);
  // ...and once the new one has been used, the old one's positive is gone.
  CHECK(f.callsDuring([&] { CHECK(f.auth("alice", "old-pw").status == AuthStatus::Denied); }) == 1);
}

TEST_CASE("cache: a cached negative for the old password does not deny the new one", "[cache]") {
  Fixture f;
  f.inner->passwords["alice"] = "new-pw";
  CHECK(f.auth("alice", "old-pw").status == AuthStatus::Denied);
  CHECK(f.callsDuring([&] { CHECK(f.auth("alice", "new-pw").status == AuthStatus::Ok); }) == 1);
  CHECK(f.callsDuring([&] { CHECK(f.auth("alice", "new-pw").status == AuthStatus::Ok); }) == 0);
}

TEST_CASE("cache: an old password stops working once ttl has passed", "[cache]") {
  Fixture f;
  f.auth("alice", "alice-pw");
  f.inner->passwords["alice"] = "new-pw";
  f.clock.advance(60s);
  CHECK(f.auth("alice", "alice-pw").status == AuthStatus::Denied);
}

TEST_CASE("cache: logins are normalised before the cache and the directory", "[cache]") {
  LoginNormalizationConfig login;
  login.accept_backslash_domain = true;
  login.strip_domain = {"example.com"};
  Fixture f({}, login);
  CHECK(f.auth("Alice@Example.com", "alice-pw").status == AuthStatus::Ok);
  CHECK(f.callsDuring(
            [&] { CHECK(f.auth("EXAMPLE\\alice", "alice-pw").status == AuthStatus::Ok); }) == 0);
  CHECK(f.callsDuring([&] { CHECK(f.auth("ALICE", "alice-pw").status == AuthStatus::Ok); }) == 0);
  CHECK(f.inner->logins == std::vector<std::string>{"alice"});
}

TEST_CASE("cache: a malformed login is denied without any look-up", "[cache]") {
  Fixture f;
  for (std::string login : {std::string("ali\0ce", 6), std::string("alice\r\nA1 LOGOUT"),
                            std::string(300, 'a'), std::string()}) {
    CHECK(f.callsDuring([&] { CHECK(f.auth(login, "alice-pw").status == AuthStatus::Denied); }) ==
          0);
  }
  CHECK(f.cache.stats().malformed == 4);
}

TEST_CASE("cache: disabled, the decorator still normalises and always asks", "[cache]") {
  DirectoryCacheConfig config;
  config.enabled = false;
  Fixture f(config);
  CHECK(f.auth("ALICE", "alice-pw").status == AuthStatus::Ok);
  CHECK(f.callsDuring([&] { CHECK(f.auth("Alice", "alice-pw").status == AuthStatus::Ok); }) == 1);
  CHECK(f.inner->logins == std::vector<std::string>{"alice", "alice"});
  CHECK(f.cache.size() == 0);
  CHECK(f.callsDuring([&] { f.auth("al\nice", "alice-pw"); }) == 0);
}

TEST_CASE("cache: ttl 0 keeps positives only for stale-if-error", "[cache]") {
  DirectoryCacheConfig config;
  config.ttl_s = 0;
  config.negative_ttl_s = 0;
  Fixture f(config);
  f.auth("alice", "alice-pw");
  CHECK(f.callsDuring([&] { f.auth("alice", "alice-pw"); }) == 1);
  f.auth("alice", "typo");
  CHECK(f.callsDuring([&] { f.auth("alice", "typo"); }) == 1);
  f.inner->temp_fail = true;
  CHECK(f.auth("alice", "alice-pw").status == AuthStatus::Ok);
}

TEST_CASE("cache: no callback after the handle is destroyed", "[cache]") {
  Fixture f;
  f.auth("alice", "alice-pw");
  int calls = 0;
  for (const char* password : {"alice-pw", "miss-pw"}) {  // a hit, then a miss
    Credentials c;
    c.login = "alice";
    c.password = Secret(password);
    auto pending =
        f.cache.authenticate(f.loop.mailbox(), std::move(c), [&calls](AuthResult) { ++calls; });
    pending.reset();
    f.loop.drainPosted();
  }
  CHECK(calls == 0);
}

TEST_CASE("cache: the callback runs once, on a later loop turn", "[cache]") {
  Fixture f;
  f.auth("alice", "alice-pw");
  for (const char* login : {"alice", "bob", "bad\r"}) {  // a hit, a miss, a refusal
    int calls = 0;
    Credentials c;
    c.login = login;
    c.password = Secret("alice-pw");
    auto pending =
        f.cache.authenticate(f.loop.mailbox(), std::move(c), [&calls](AuthResult) { ++calls; });
    CHECK(calls == 0);
    REQUIRE(f.loop.runUntil([&calls] { return calls > 0; }));
    f.loop.drainPosted();
    CHECK(calls == 1);
  }
  CHECK(f.loop.shutdown() == 0);
}

TEST_CASE("cache: logins with the same credentials at once share one look-up", "[cache]") {
  Fixture f;
  std::optional<AuthResult> first, second, other_password;
  auto a = f.start("alice", "alice-pw", first);
  auto b = f.start("Alice", "alice-pw", second);  // the same login once normalised
  auto c = f.start("alice", "wrong-pw", other_password);
  REQUIRE(f.loop.runUntil([&] { return first && second && other_password; }));
  CHECK(f.inner->calls == 2);  // alice-pw once, wrong-pw once
  CHECK(f.cache.stats().coalesced == 1);
  CHECK(first->status == AuthStatus::Ok);
  CHECK(second->status == AuthStatus::Ok);
  CHECK(second->route.backend == "A");
  CHECK(other_password->status == AuthStatus::Denied);
  // Landed: the next login is a cache hit, not another wait.
  CHECK(f.callsDuring([&] { CHECK(f.auth("alice", "alice-pw").status == AuthStatus::Ok); }) == 0);
}

TEST_CASE("cache: the first login leaving does not cancel the look-up the others wait for",
          "[cache]") {
  Fixture f;
  std::optional<AuthResult> leader, joiner, leaver;
  auto a = f.start("alice", "alice-pw", leader);
  auto b = f.start("alice", "alice-pw", joiner);
  auto c = f.start("alice", "alice-pw", leaver);
  a.reset();
  c.reset();
  REQUIRE(f.loop.runUntil([&] { return joiner.has_value(); }));
  f.loop.drainPosted();
  CHECK(joiner->status == AuthStatus::Ok);
  CHECK_FALSE(leader.has_value());
  CHECK_FALSE(leaver.has_value());
  CHECK(f.inner->calls == 1);
}

TEST_CASE("cache: a look-up that nobody waits for any more is cancelled", "[cache]") {
  // A client may send a password and reset at once: the directory (or a static directory's hash
  // threads) must not go on working for it after its connection slot is free.
  Fixture f;
  f.inner->hold = true;
  std::optional<AuthResult> first, second;
  auto a = f.start("alice", "wrong-1", first);
  auto b = f.start("alice", "wrong-1", second);  // joins
  CHECK(f.inner->calls == 1);
  a.reset();
  CHECK(f.inner->handlesGone() == 0);  // the joiner still waits
  b.reset();
  CHECK(f.inner->handlesGone() == 1);  // cancelled
  // The flight is gone too: the same credentials start a new look-up, and it is answered.
  std::optional<AuthResult> third;
  auto c = f.start("alice", "wrong-1", third);
  CHECK(f.inner->calls == 2);
  f.inner->release();
  REQUIRE(f.loop.runUntil([&] { return third.has_value(); }));
  CHECK(third->status == AuthStatus::Denied);
  CHECK_FALSE(first.has_value());
  CHECK_FALSE(second.has_value());
}

TEST_CASE("cache: a look-up unanswered for a minute is not joined", "[cache]") {
  Fixture f;
  f.inner->hold = true;  // the first answer is late (or lost with the loop it was posted to)
  std::optional<AuthResult> stuck, fresh;
  auto a = f.start("alice", "alice-pw", stuck);
  f.clock.advance(61s);
  auto b = f.start("alice", "alice-pw", fresh);
  CHECK(f.inner->calls == 2);
  f.inner->release();
  REQUIRE(f.loop.runUntil([&] { return stuck && fresh; }));
  CHECK(stuck->status == AuthStatus::Ok);
  CHECK(fresh->status == AuthStatus::Ok);
  CHECK(f.cache.stats().coalesced == 0);
}

TEST_CASE("cache: the password is not among what the cache holds", "[cache]") {
  Fixture f;
  const std::string password = "Correct-Horse-Battery-Staple";
  f.inner->passwords["alice"] = password;
  f.auth("alice", password);
  f.auth("alice", password + "!");  // a negative too
  f.auth("bob", password);          // not bob's: a negative
  std::vector<std::string> dump = f.cache.debugDump();
  REQUIRE(dump.size() == 2);
  for (const std::string& line : dump) {
    CHECK(line.find(password) == std::string::npos);
    CHECK(line.find("Correct") == std::string::npos);
  }
  CHECK(dump[0].find("alice") == 0);  // entries with a positive come first
  CHECK(dump[1].find("bob") == 0);
}

// FakeDirectory records logins in a vector, so workers on several threads reach it one at a time.
class SerializedDirectory : public Directory {
 public:
  explicit SerializedDirectory(std::shared_ptr<FakeDirectory> fake) : fake_(std::move(fake)) {}
  std::unique_ptr<PendingAuth> authenticate(std::shared_ptr<LoopMailbox> reply_to, Credentials c,
                                            AuthCallback done) override {
    std::lock_guard lock(mutex_);
    return fake_->authenticate(std::move(reply_to), std::move(c), std::move(done));
  }

 private:
  std::mutex mutex_;
  std::shared_ptr<FakeDirectory> fake_;
};

TEST_CASE("cache: concurrent workers share one cache", "[cache]") {
  auto fake = std::make_shared<FakeDirectory>();
  for (int u = 0; u < 20; ++u) fake->passwords["user" + std::to_string(u)] = "pw";
  DirectoryCacheConfig config;
  config.max_entries = 8;  // evictions while other threads hit
  config.max_negative_entries = 4;
  CachedDirectory shared(std::make_shared<SerializedDirectory>(fake), {}, config);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&shared, &wrong, t] {
      TestLoop loop;
      for (int i = 0; i < 500; ++i) {
        bool right = i % 5 != 0;
        std::optional<AuthResult> result;
        Credentials c;
        c.login = "User" + std::to_string(i % 4 != 0 ? 0 : (i * 7 + t) % 20);  // one hot user
        c.password = Secret(right ? "pw" : "nope");
        auto pending = shared.authenticate(loop.mailbox(), std::move(c),
                                           [&result](AuthResult r) { result = std::move(r); });
        if (!loop.runUntil([&result] { return result.has_value(); }) ||
            (result->status == AuthStatus::Ok) != right) {
          ++wrong;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(wrong == 0);
  CHECK(shared.size() <= 8 + 4);
  CHECK(shared.stats().hits + shared.stats().misses == 2000);
  CHECK(shared.stats().hits > 0);
}

// The two configuration objects; here rather than in config_test.cpp so that they change with
// the cache.
std::shared_ptr<const Config> parseDirectory(const std::string& directory,
                                             std::vector<ConfigError>& errors) {
  std::string text =
      R"({"listeners": [{"address": "127.0.0.1", "port": 0, "protocol": "imap"}], "directory": )" +
      directory + "}";
  return parseConfig(text, "/tmp", errors);
}

TEST_CASE("cache config: defaults, values and JSON-pointer errors", "[cache][config]") {
  std::vector<ConfigError> errors;
  auto defaults = parseDirectory("{}", errors);
  REQUIRE(defaults);
  CHECK(defaults->directory.cache.enabled);
  CHECK(defaults->directory.cache.ttl_s == 60);
  CHECK(defaults->directory.cache.negative_ttl_s == 5);
  CHECK(defaults->directory.cache.stale_max_s == 3600);
  CHECK(defaults->directory.cache.max_entries == 100000);
  CHECK(defaults->directory.cache.max_negative_entries == 10000);
  CHECK(defaults->directory.login.lowercase);
  CHECK_FALSE(defaults->directory.login.accept_backslash_domain);

  auto set = parseDirectory(R"({"cache": {"enabled": false, "ttl_s": 30, "negative_ttl_s": 0,
      "stale_max_s": 0, "max_entries": 10, "max_negative_entries": 3}, "login": {"lowercase": false,
      "accept_backslash_domain": true, "strip_domain": ["example.com", "*"],
      "default_domain": "example.org"}})",
                            errors);
  REQUIRE(set);
  CHECK(errors.empty());
  CHECK_FALSE(set->directory.cache.enabled);
  CHECK(set->directory.cache.ttl_s == 30);
  CHECK(set->directory.cache.stale_max_s == 0);
  CHECK(set->directory.cache.max_entries == 10);
  CHECK(set->directory.cache.max_negative_entries == 3);
  CHECK_FALSE(set->directory.login.lowercase);
  CHECK(set->directory.login.accept_backslash_domain);
  CHECK(set->directory.login.strip_domain == std::vector<std::string>{"example.com", "*"});
  CHECK(set->directory.login.default_domain == "example.org");

  auto any = parseDirectory(R"({"login": {"strip_domain": "*"}})", errors);
  REQUIRE(any);
  CHECK(any->directory.login.strip_domain == std::vector<std::string>{"*"});

  errors.clear();
  CHECK_FALSE(parseDirectory(R"({"cache": {"ttl_s": -1, "max_entries": 0, "stale_max_s": 10,
      "max_negative_entries": 0,
      "size": 3}, "login": {"lowercase": "yes", "strip_domain": ["ok.example", "bad domain"],
      "default_domain": "a@b"}})",
                             errors));
  std::map<std::string, std::string> by_pointer;
  for (const ConfigError& e : errors) by_pointer[e.pointer] = e.message;
  CHECK(by_pointer.count("/directory/cache/ttl_s") == 1);
  CHECK(by_pointer.count("/directory/cache/max_entries") == 1);
  CHECK(by_pointer.count("/directory/cache/max_negative_entries") == 1);
  CHECK(by_pointer.count("/directory/cache/size") == 1);
  CHECK(by_pointer.count("/directory/login/lowercase") == 1);
  CHECK(by_pointer.count("/directory/login/strip_domain/1") == 1);
  CHECK(by_pointer.count("/directory/login/strip_domain/0") == 0);
  CHECK(by_pointer.count("/directory/login/default_domain") == 1);

  errors.clear();
  CHECK_FALSE(parseDirectory(R"({"cache": {"ttl_s": 600, "stale_max_s": 60}})", errors));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].pointer == "/directory/cache/stale_max_s");
}

// Hidden by default: `unit_tests "[.bench]"`. A hit's cost on the caller's thread (normalise,
// HMAC, look-up, post) and with the loop's delivery included.
TEST_CASE("cache: cost of a cached hit", "[.bench]") {
  Fixture f;
  f.auth("alice", "alice-pw");
  constexpr int kRounds = 200000;
  std::shared_ptr<LoopMailbox> mailbox = f.loop.mailbox();
  int delivered = 0;
  std::vector<std::unique_ptr<PendingAuth>> batch;
  steady_clock::duration in_call{};
  auto start = steady_clock::now();
  for (int i = 0; i < kRounds; ++i) {
    Credentials c;
    c.login = "Alice";
    c.password = Secret("alice-pw");
    auto call_start = steady_clock::now();
    batch.push_back(
        f.cache.authenticate(mailbox, std::move(c), [&delivered](AuthResult) { ++delivered; }));
    in_call += steady_clock::now() - call_start;
    if (batch.size() == 1000) {  // keeps the mailbox queue short, as a busy worker would
      f.loop.drainPosted();
      batch.clear();
    }
  }
  f.loop.drainPosted();
  auto elapsed = std::chrono::duration<double, std::nano>(steady_clock::now() - start);
  auto calls = std::chrono::duration<double, std::nano>(in_call);
  WARN("cached hit: " << calls.count() / kRounds << " ns in authenticate(), "
                      << elapsed.count() / kRounds << " ns with the delivery");
  CHECK(delivered == kRounds);
  CHECK(f.inner->calls == 1);
}

}  // namespace
}  // namespace gatehouse
