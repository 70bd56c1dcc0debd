// Counts open client connections, in total and per client IP, across all worker threads, so
// that one address cannot take every slot (limits.max_connections, max_connections_per_ip).
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <unordered_map>

namespace gatehouse {

class ConnectionLimiter {
 public:
  ConnectionLimiter(size_t max_total, size_t max_per_ip) : max_total_(max_total), max_per_ip_(max_per_ip) {}

  // Takes a slot for `ip`; false (and nothing taken) when a limit is reached.
  bool acquire(const std::string& ip) {
    if (total_.fetch_add(1, std::memory_order_relaxed) >= max_total_) {
      total_.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    if (max_per_ip_ == 0) return true;  // the common case takes no lock
    std::lock_guard lock(mutex_);
    size_t& count = per_ip_[ip];
    if (count >= max_per_ip_) {
      total_.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    ++count;
    return true;
  }

  void release(const std::string& ip) {
    total_.fetch_sub(1, std::memory_order_relaxed);
    if (max_per_ip_ == 0) return;
    std::lock_guard lock(mutex_);
    auto it = per_ip_.find(ip);
    if (it != per_ip_.end() && --it->second == 0) per_ip_.erase(it);
  }

  size_t total() const { return total_.load(std::memory_order_relaxed); }

 private:
  const size_t max_total_;
  const size_t max_per_ip_;
  std::atomic<size_t> total_{0};
  std::mutex mutex_;
  std::unordered_map<std::string, size_t> per_ip_;
};

}  // namespace gatehouse
