// Runs functions on one loop's thread, posted from any thread (uv_async). The owning loop
// creates it; others hold a shared_ptr and may post until close(), after which posts are dropped.
// A post from the thread that runs the loop (a static directory, a cache hit) is run from an idle
// handle on the next loop turn instead: no eventfd write, wake-up and read for work already here.
#pragma once

#include <uv.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "proxy/core/uv_handle.h"

namespace gatehouse {

class LoopMailbox {
 public:
  explicit LoopMailbox(uv_loop_t* loop);
  LoopMailbox(const LoopMailbox&) = delete;
  LoopMailbox& operator=(const LoopMailbox&) = delete;
  ~LoopMailbox();

  // Called first thing by the thread that will run the loop; until then every post goes through
  // the async handle, which is right from any thread.
  void bindToThisThread() { owner_.store(std::this_thread::get_id(), std::memory_order_relaxed); }
  // Thread-safe. Returns false if the mailbox is closed (the function is dropped unrun).
  bool post(std::function<void()> fn);
  // Loop thread only. Stops delivery and releases the async handle.
  void close();
  uv_loop_t* loop() const { return loop_; }

 private:
  static void onAsync(uv_async_t* handle);
  static void onIdle(uv_idle_t* handle);
  void drain();
  void drainLocal();

  uv_loop_t* loop_;
  // Only the bound thread can find its own id here, so a relaxed load is enough.
  std::atomic<std::thread::id> owner_{};
  UvHandle<uv_async_t> async_;
  UvHandle<uv_idle_t> idle_;
  std::mutex mutex_;
  bool closed_ = false;
  std::vector<std::function<void()>> queue_;  // guarded by mutex_
  std::vector<std::function<void()>> local_;  // owner thread only
};

}  // namespace gatehouse
