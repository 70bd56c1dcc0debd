// The cache behind CachedDirectory: (login, protocol) entries, each holding at most one positive
// answer and a few negative ones, every answer bound to an HMAC of the password. Entries with a
// positive and entries with only negatives live in two LRU lists with their own limits, so that
// a spray of wrong passwords or unknown logins never evicts what stale-if-error needs.
#include "directory/cached_directory.h"

#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/rand.h>

#include <algorithm>
#include <atomic>
#include <list>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include "directory/auth_reply.h"
#include "proxy/log/log.h"

namespace gatehouse {

namespace {

using std::chrono::steady_clock;

// Wrong passwords remembered per entry. More would let someone guessing a user's password push
// memory use up; fewer would send a user who keeps retyping the same typo to the directory.
constexpr size_t kMaxNegatives = 4;

// A look-up still unanswered after this long is not joined: its answer may have been lost with
// the loop that was to receive it (a worker stopping), and a login must not wait on it forever.
constexpr std::chrono::seconds kMaxFlightAge(60);

bool sameMac(const CachedDirectory::Mac& a, const CachedDirectory::Mac& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

struct CachedDirectory::Store {
  using TimePoint = steady_clock::time_point;

  struct Positive {
    Mac mac;
    AuthResult result;  // Ok or Disabled
    TimePoint stored;
  };
  struct Negative {
    Mac mac;
    TimePoint stored;
  };
  struct Entry {
    std::string key;
    std::optional<Positive> positive;
    std::vector<Negative> negatives;  // at most kMaxNegatives, oldest first
    bool listed_positive = false;     // in `lru` (else in `negative_lru`)

    std::string describe() const {
      std::string line = key;
      if (positive) {
        const AuthResult& r = positive->result;
        line += " positive=" + std::to_string(static_cast<int>(r.status)) + " mac=";
        line.append(positive->mac.begin(), positive->mac.end());
        line += " route=" + r.route.user + "@" + r.route.backend + " reason=" + r.reason;
      }
      for (const Negative& negative : negatives) {
        line += " negative mac=";
        line.append(negative.mac.begin(), negative.mac.end());
      }
      return line;
    }
  };

  // A look-up in progress for one (key, password MAC). Logins that find it wait for its answer
  // instead of asking the directory again: a client opening several connections at once, or every
  // client reconnecting after a restart, costs one search and one bind per user.
  struct Flight {
    AuthReply leader;                // answered on its own loop, where the inner directory replies
    std::vector<AuthReply> joiners;  // answered by posts to theirs
    std::unique_ptr<PendingAuth> inner;  // the flight's, not the leader's: it may leave first
    TimePoint started;
    size_t waiters = 1;  // leader and joiners still holding their handles; at 0, `inner` goes
  };

  Store(const DirectoryCacheConfig& config, Clock clock_fn)
      : ttl(std::chrono::seconds(config.ttl_s)),
        negative_ttl(std::chrono::seconds(config.negative_ttl_s)),
        stale_max(std::chrono::seconds(config.stale_max_s)),
        max_entries(std::max<size_t>(1, config.max_entries)),
        max_negative_entries(std::max<size_t>(1, config.max_negative_entries)),
        clock(std::move(clock_fn)) {
    // A fresh key per process: MACs in a core dump or a memory disclosure cannot be checked
    // against guessed passwords offline.
    if (RAND_bytes(hmac_key.data(), hmac_key.size()) != 1) {
      throw std::runtime_error("RAND_bytes failed");
    }
  }
  ~Store() { OPENSSL_cleanse(hmac_key.data(), hmac_key.size()); }

  // Bound to the key too, so two users with one password do not share a MAC.
  Mac mac(std::string_view key, std::string_view password) const {
    HMAC_CTX ctx;
    HMAC_CTX_init(&ctx);
    Mac out{};
    unsigned int length = 0;
    const uint8_t separator = 0;
    bool ok = HMAC_Init_ex(&ctx, hmac_key.data(), hmac_key.size(), EVP_sha256(), nullptr) == 1 &&
              HMAC_Update(&ctx, reinterpret_cast<const uint8_t*>(key.data()), key.size()) == 1 &&
              HMAC_Update(&ctx, &separator, 1) == 1 &&
              HMAC_Update(&ctx, reinterpret_cast<const uint8_t*>(password.data()),
                          password.size()) == 1 &&
              HMAC_Final(&ctx, out.data(), &length) == 1;
    HMAC_CTX_cleanup(&ctx);
    if (!ok || length != out.size()) throw std::runtime_error("HMAC-SHA256 failed");
    return out;
  }

  // A fresh answer for this password, or nullopt (the caller asks the inner directory).
  std::optional<AuthResult> lookup(const std::string& key, const Mac& password_mac) {
    TimePoint now = clock();
    std::lock_guard lock(mutex);
    auto it = index.find(key);
    if (it != index.end()) {
      Entry& entry = *it->second;
      if (entry.positive && sameMac(entry.positive->mac, password_mac) &&
          now - entry.positive->stored < ttl) {
        touch(it->second);
        ++hits;
        return entry.positive->result;
      }
      for (const Negative& negative : entry.negatives) {
        if (sameMac(negative.mac, password_mac) && now - negative.stored < negative_ttl) {
          touch(it->second);
          ++hits;
          return AuthResult{AuthStatus::Denied, Route{}, "wrong password (cached)"};
        }
      }
    }
    ++misses;
    return std::nullopt;
  }

  // The inner directory's definite answer (Ok, Disabled, Denied) for this password.
  void record(const std::string& key, const Mac& password_mac, const AuthResult& result) {
    bool positive = result.status == AuthStatus::Ok || result.status == AuthStatus::Disabled;
    bool keep = positive ? ttl.count() != 0 || stale_max.count() != 0 : negative_ttl.count() != 0;
    if (positive && !keep) return;
    TimePoint now = clock();
    std::lock_guard lock(mutex);
    auto it = index.find(key);
    if (it == index.end()) {
      if (!keep) return;  // a Denied with nothing to retire and nothing to remember
      std::list<Entry>& list = positive ? lru : negative_lru;
      list.push_front(Entry{key, std::nullopt, {}, positive});
      it = index.emplace(list.front().key, list.begin()).first;
    } else {
      touch(it->second);
    }
    Entry& entry = *it->second;
    auto& negatives = entry.negatives;
    auto same = [&password_mac](const Negative& n) { return sameMac(n.mac, password_mac); };
    negatives.erase(std::remove_if(negatives.begin(), negatives.end(), same), negatives.end());
    if (positive) {
      // A password that works replaces the previous one: after a password change the old one
      // stops being answered from the cache as soon as the new one has been used.
      entry.positive = Positive{password_mac, result, now};
    } else {
      // The directory refused this password: it must not come back through stale-if-error.
      if (entry.positive && sameMac(entry.positive->mac, password_mac)) entry.positive.reset();
      if (negative_ttl.count() != 0) {
        if (negatives.size() == kMaxNegatives) negatives.erase(negatives.begin());
        negatives.push_back(Negative{password_mac, now});
      }
    }
    if (!entry.positive && entry.negatives.empty()) {
      erase(it);
    } else {
      moveToItsList(it->second);
    }
    evictBeyondLimits();
  }

  // After the inner directory failed: an expired positive for this password, if young enough.
  std::optional<std::pair<AuthResult, steady_clock::duration>> stale(const std::string& key,
                                                                     const Mac& password_mac) {
    TimePoint now = clock();
    std::lock_guard lock(mutex);
    auto it = index.find(key);
    if (it == index.end()) return std::nullopt;
    Entry& entry = *it->second;
    if (!entry.positive || !sameMac(entry.positive->mac, password_mac)) return std::nullopt;
    steady_clock::duration age = now - entry.positive->stored;
    if (age >= std::max(stale_max, ttl)) return std::nullopt;
    touch(it->second);
    ++stale_served;
    return std::make_pair(entry.positive->result, age);
  }

  // Joins the flight for `flight_key` if one is young enough (then `reply` is taken and null is
  // returned), else registers and returns a new one led by `reply`, for the caller to start.
  // Joins the flight for `flight_key` if one is young enough (then `reply` is taken and `led` is
  // false), else registers a new one led by `reply`, for the caller to start. Either way the
  // caller is one of the flight's waiters until it calls leave().
  std::shared_ptr<Flight> joinOrLead(const std::string& flight_key, AuthReply& reply, bool& led) {
    TimePoint now = clock();
    std::lock_guard lock(mutex);
    auto [it, fresh] = flights.try_emplace(flight_key);
    led = fresh || now - it->second->started >= kMaxFlightAge;
    if (!led) {
      it->second->joiners.push_back(std::move(reply));
      ++it->second->waiters;
      ++coalesced;
      return it->second;
    }
    it->second = std::make_shared<Flight>(Flight{std::move(reply), {}, nullptr, now});
    return it->second;
  }

  void start(const std::shared_ptr<Flight>& flight, std::unique_ptr<PendingAuth> inner) {
    std::lock_guard lock(mutex);
    flight->inner = std::move(inner);
  }

  // The flight's answer is in: it leaves the table (unless a younger one replaced it already),
  // and hands back the inner directory's handle, which is done with.
  std::unique_ptr<PendingAuth> land(const std::string& flight_key,
                                    const std::shared_ptr<Flight>& flight) {
    std::lock_guard lock(mutex);
    auto it = flights.find(flight_key);
    if (it != flights.end() && it->second == flight) flights.erase(it);
    return std::move(flight->inner);
  }

  // A waiter's handle is gone (its client left). When nobody waits any more the look-up is
  // cancelled: a client that sends a password and resets must not leave the directory (or a
  // static directory's hash threads) working for it, beyond what its connection slot allows.
  void leave(const std::string& flight_key, const std::shared_ptr<Flight>& flight) {
    std::unique_ptr<PendingAuth> cancelled;
    {
      std::lock_guard lock(mutex);
      if (--flight->waiters != 0) return;
      auto it = flights.find(flight_key);
      if (it != flights.end() && it->second == flight) flights.erase(it);
      cancelled = std::move(flight->inner);
    }
    // Destroyed outside the lock: it cancels the inner directory's request.
  }

  std::list<Entry>& listOf(const Entry& entry) {
    return entry.listed_positive ? lru : negative_lru;
  }

  // Splicing keeps every iterator (the index's) valid.
  void touch(std::list<Entry>::iterator entry) {
    std::list<Entry>& list = listOf(*entry);
    list.splice(list.begin(), list, entry);
  }

  // After an entry gained or lost its positive answer.
  void moveToItsList(std::list<Entry>::iterator entry) {
    if (entry->listed_positive == entry->positive.has_value()) return;
    std::list<Entry>& from = listOf(*entry);
    entry->listed_positive = entry->positive.has_value();
    std::list<Entry>& to = listOf(*entry);
    to.splice(to.begin(), from, entry);
  }

  void erase(std::unordered_map<std::string_view, std::list<Entry>::iterator>::iterator it) {
    auto entry = it->second;
    std::list<Entry>& list = listOf(*entry);
    index.erase(it);  // before the entry: the index's key views the entry's string
    list.erase(entry);
  }

  void evictBeyondLimits() {
    for (auto [list, limit] :
         {std::pair{&lru, max_entries}, {&negative_lru, max_negative_entries}}) {
      while (list->size() > limit) {
        index.erase(list->back().key);
        list->pop_back();
        ++evictions;
      }
    }
  }

  const steady_clock::duration ttl;
  const steady_clock::duration negative_ttl;
  const steady_clock::duration stale_max;
  const size_t max_entries;
  const size_t max_negative_entries;
  const Clock clock;
  std::array<uint8_t, 32> hmac_key{};

  mutable std::mutex mutex;
  std::list<Entry> lru;           // entries with a positive answer, most recently used first
  std::list<Entry> negative_lru;  // entries with negative answers only, most recently used first
  std::unordered_map<std::string_view, std::list<Entry>::iterator> index;  // views Entry::key
  std::unordered_map<std::string, std::shared_ptr<Flight>> flights;        // by key, NUL, MAC
  uint64_t hits = 0;
  uint64_t coalesced = 0;
  uint64_t misses = 0;
  uint64_t stale_served = 0;
  uint64_t evictions = 0;
  std::atomic<uint64_t> malformed{0};
};

// What a login that missed the cache holds: its own reply's handle, and a place among the
// flight's waiters, given up when it is destroyed.
class CachedDirectory::FlightHandle : public PendingAuth {
 public:
  FlightHandle(std::unique_ptr<PendingAuth> reply, std::shared_ptr<Store> store, std::string key)
      : reply_(std::move(reply)), store_(std::move(store)), key_(std::move(key)) {}
  ~FlightHandle() override {
    reply_.reset();  // first: no answer reaches the caller from here on
    if (flight) store_->leave(key_, flight);
  }

  std::shared_ptr<Store::Flight> flight;

 private:
  std::unique_ptr<PendingAuth> reply_;
  std::shared_ptr<Store> store_;
  std::string key_;
};

CachedDirectory::CachedDirectory(std::shared_ptr<Directory> inner,
                                 const LoginNormalizationConfig& login,
                                 const DirectoryCacheConfig& cache, Clock clock)
    : inner_(std::move(inner)),
      normalizer_(login),
      enabled_(cache.enabled),
      store_(std::make_shared<Store>(cache, std::move(clock))) {}

CachedDirectory::~CachedDirectory() = default;

std::unique_ptr<PendingAuth> CachedDirectory::deliverNow(
    const std::shared_ptr<LoopMailbox>& reply_to, AuthResult result, AuthCallback done) {
  // Posted although the answer is ready: the caller is never called back on its own stack.
  AuthReply reply(reply_to, std::move(done));
  std::unique_ptr<PendingAuth> handle = reply.handle();
  reply.send(std::move(result));
  return handle;
}

std::unique_ptr<PendingAuth> CachedDirectory::authenticate(std::shared_ptr<LoopMailbox> reply_to,
                                                           Credentials credentials,
                                                           AuthCallback done) {
  std::optional<std::string> login = normalizer_.normalize(credentials.login);
  if (!login) {
    store_->malformed.fetch_add(1, std::memory_order_relaxed);
    return deliverNow(reply_to, AuthResult{AuthStatus::Denied, Route{}, "malformed login"},
                      std::move(done));
  }
  credentials.login = std::move(*login);
  if (!enabled_) {
    return inner_->authenticate(std::move(reply_to), std::move(credentials), std::move(done));
  }

  // The protocol is part of the key because Disabled depends on it. NUL cannot occur in a
  // normalised login, so the key is unambiguous.
  std::string key = credentials.login;
  key += '\0';
  key += protocolName(credentials.protocol);
  Mac password_mac = store_->mac(key, credentials.password.reveal());
  if (std::optional<AuthResult> hit = store_->lookup(key, password_mac)) {
    return deliverNow(reply_to, std::move(*hit), std::move(done));
  }
  std::string flight_key = key;
  flight_key += '\0';
  flight_key.append(password_mac.begin(), password_mac.end());
  AuthReply reply(reply_to, std::move(done));
  auto handle = std::make_unique<FlightHandle>(reply.handle(), store_, flight_key);
  bool led = false;
  std::shared_ptr<Store::Flight> flight = store_->joinOrLead(flight_key, reply, led);
  handle->flight = flight;
  if (!led) return handle;  // another login with these credentials is being looked up

  // The inner directory answers on the leader's loop, never inside this call (so the flight's
  // `inner` is set before), and never after that handle is destroyed.
  auto on_answer = [store = store_, key = std::move(key), password_mac,
                    flight_key = std::move(flight_key), flight](AuthResult result) {
    auto inner = store->land(flight_key, flight);  // the directory is done with it
    if (result.status == AuthStatus::TempFail) {
      if (auto stale = store->stale(key, password_mac)) {
        auto age = std::chrono::duration_cast<std::chrono::seconds>(stale->second);
        log::warn("serving stale", {{"user", key.substr(0, key.find('\0'))},
                                    {"protocol", key.substr(key.find('\0') + 1)},
                                    {"age_s", age.count()},
                                    {"reason", result.reason}});
        stale->first.reason = "stale: " + result.reason;
        result = std::move(stale->first);
      }
    } else {
      store->record(key, password_mac, result);
    }
    // Landed: nobody joins any more, and only this loop touches the replies from here on.
    for (AuthReply& joiner : flight->joiners) joiner.send(result);
    flight->leader.deliverHere(std::move(result));
  };
  store_->start(flight,
                inner_->authenticate(std::move(reply_to), std::move(credentials), on_answer));
  return handle;
}

CachedDirectory::Stats CachedDirectory::stats() const {
  std::lock_guard lock(store_->mutex);
  return Stats{store_->hits,
               store_->misses,
               store_->stale_served,
               store_->evictions,
               store_->malformed.load(std::memory_order_relaxed),
               store_->coalesced};
}

size_t CachedDirectory::size() const {
  std::lock_guard lock(store_->mutex);
  return store_->lru.size() + store_->negative_lru.size();
}

std::vector<std::string> CachedDirectory::debugDump() const {
  std::lock_guard lock(store_->mutex);
  std::vector<std::string> out;
  for (const auto* list : {&store_->lru, &store_->negative_lru}) {
    for (const Store::Entry& entry : *list) out.push_back(entry.describe());
  }
  return out;
}

}  // namespace gatehouse
