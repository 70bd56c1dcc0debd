// Runs functions on one loop's thread, posted from any thread (uv_async). The owning loop
// creates it; others hold a shared_ptr and may post until close(), after which posts are dropped.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "proxy/core/uv_handle.h"

namespace gatehouse {

class LoopMailbox {
 public:
  explicit LoopMailbox(uv_loop_t* loop);
  LoopMailbox(const LoopMailbox&) = delete;
  LoopMailbox& operator=(const LoopMailbox&) = delete;
  ~LoopMailbox();

  // Thread-safe. Returns false if the mailbox is closed (the function is dropped unrun).
  bool post(std::function<void()> fn);
  // Loop thread only. Stops delivery and releases the async handle.
  void close();
  uv_loop_t* loop() const { return loop_; }

 private:
  static void onAsync(uv_async_t* handle);
  void drain();

  uv_loop_t* loop_;
  UvHandle<uv_async_t> async_;
  std::mutex mutex_;
  bool closed_ = false;
  std::vector<std::function<void()>> queue_;
};

}  // namespace gatehouse
