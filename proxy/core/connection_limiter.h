// Counts open client connections, in total and per client IP, across all worker threads, so
// that one address cannot take every slot (limits.max_connections, max_connections_per_ip).
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <unordered_map>

#include "proxy/net/ip_address.h"

namespace gatehouse {

class ConnectionLimiter {
 public:
  ConnectionLimiter(size_t max_total, size_t max_per_ip)
      : max_total_(max_total), max_per_ip_(max_per_ip) {}

  // Takes a slot for `ip`; false (and nothing taken) when a limit is reached. An empty `ip` takes
  // only a slot of the total: the client is not known yet (behind a PROXY protocol load balancer).
  bool acquire(const std::string& ip) {
    if (total_.fetch_add(1, std::memory_order_relaxed) >= max_total_) {
      total_.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    if (ip.empty() || acquireIp(ip)) return true;
    total_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }

  // The per-IP slot of a connection that took acquire("") and has learnt its client since; false
  // (and nothing taken) when that client is at its limit.
  bool acquireIp(const std::string& ip) {
    if (max_per_ip_ == 0) return true;  // the common case takes no lock
    std::string key = canonicalIp(ip);  // one count for one client, however it is written
    std::lock_guard lock(mutex_);
    size_t& count = per_ip_[key];
    if (count >= max_per_ip_) return false;
    ++count;
    return true;
  }

  // Gives back what acquire(ip), or acquire("") and then acquireIp(ip), took.
  void release(const std::string& ip) {
    total_.fetch_sub(1, std::memory_order_relaxed);
    if (ip.empty() || max_per_ip_ == 0) return;
    std::string key = canonicalIp(ip);
    std::lock_guard lock(mutex_);
    auto it = per_ip_.find(key);
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
