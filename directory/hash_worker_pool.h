// Threads that run password-hash checks for the static directory. bcrypt, SHA-crypt and yescrypt
// cost milliseconds to seconds by design; run on a worker's loop they would stall every session
// of that worker. Like Dovecot's auth worker processes, a few threads take them instead, behind
// a bounded queue: when it is full the login is told to come back later.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace gatehouse {

class HashWorkerPool {
 public:
  // `threads` at least 1; at most `max_queued` jobs wait for one of them.
  HashWorkerPool(size_t threads, size_t max_queued);
  HashWorkerPool(const HashWorkerPool&) = delete;
  HashWorkerPool& operator=(const HashWorkerPool&) = delete;
  // Jobs still queued are dropped unrun; running ones finish first.
  ~HashWorkerPool();

  // Thread-safe. False (and `job` dropped) if the queue is full.
  bool submit(std::function<void()> job);

 private:
  void run();

  const size_t max_queued_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;  // guarded by mutex_
  bool stopping_ = false;                   // guarded by mutex_
  std::vector<std::thread> threads_;
};

}  // namespace gatehouse
