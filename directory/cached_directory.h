// A Directory decorator: normalises the typed login, then answers repeated logins from a cache
// keyed by (login, protocol) and an HMAC of the password, with stale-if-error for outages.
#pragma once

#include <openssl/sha.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "directory/directory.h"
#include "directory/login_normalizer.h"

namespace gatehouse {

class CachedDirectory : public Directory {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  using Mac = std::array<uint8_t, SHA256_DIGEST_LENGTH>;

  // Counters for metrics and tests; each is monotonic.
  struct Stats {
    uint64_t hits = 0;       // answered from a fresh entry, inner not asked
    uint64_t misses = 0;     // not answered from the cache: inner asked, or joined (coalesced)
    uint64_t stale = 0;      // inner said TempFail, an expired positive answered instead
    uint64_t evictions = 0;  // entries dropped for max_entries
    uint64_t malformed = 0;  // logins the normaliser refused (Denied without any look-up)
    uint64_t coalesced = 0;  // waited for a look-up of the same credentials already under way
  };

  // With `cache.enabled == false` only the normalisation is done. `clock` is for tests.
  CachedDirectory(std::shared_ptr<Directory> inner, const LoginNormalizationConfig& login,
                  const DirectoryCacheConfig& cache, Clock clock = &std::chrono::steady_clock::now);
  ~CachedDirectory() override;

  // Thread-safe: one instance serves every worker. Hits are posted to reply_to (never delivered
  // on the caller's stack); misses are delivered by the inner directory's own posting.
  std::unique_ptr<PendingAuth> authenticate(std::shared_ptr<LoopMailbox> reply_to,
                                            Credentials credentials, AuthCallback done) override;

  Stats stats() const;
  size_t size() const;
  // Everything the cache holds, one string per entry (key, MAC bytes, statuses, routes), so tests
  // can assert that no password is among it.
  std::vector<std::string> debugDump() const;

 private:
  struct Store;
  class FlightHandle;

  std::unique_ptr<PendingAuth> deliverNow(const std::shared_ptr<LoopMailbox>& reply_to,
                                          AuthResult result, AuthCallback done);

  std::shared_ptr<Directory> inner_;
  LoginNormalizer normalizer_;
  bool enabled_;
  // Shared with the inner directory's callbacks, which may outlive this object.
  std::shared_ptr<Store> store_;
};

}  // namespace gatehouse
