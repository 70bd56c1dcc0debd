// What a back-end said of itself in answer to a capability query, remembered so that later logins
// to it need not ask again. Shared by every worker (one atomic word, no lock). An entry that has
// gone stale (the back-end was reconfigured) costs one failed login, which forgets it.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>

namespace gatehouse {

class LearnedCapabilities {
 public:
  LearnedCapabilities() = default;
  LearnedCapabilities(const LearnedCapabilities& other) : bits_(other.bits_.load()) {}
  LearnedCapabilities& operator=(const LearnedCapabilities&) = delete;

  // `flags` is the protocol's own set of capability bits (at most 31 of them).
  void remember(uint32_t flags) { bits_.store(kKnown | flags, std::memory_order_relaxed); }
  void forget() { bits_.store(0, std::memory_order_relaxed); }
  std::optional<uint32_t> recall() const {
    const uint32_t bits = bits_.load(std::memory_order_relaxed);
    if ((bits & kKnown) == 0) return std::nullopt;
    return bits & ~kKnown;
  }

 private:
  static constexpr uint32_t kKnown = 1u << 31;
  std::atomic<uint32_t> bits_{0};
};

}  // namespace gatehouse
