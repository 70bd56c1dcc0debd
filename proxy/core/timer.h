// A one-shot or repeating libuv timer owned by an object; destroying it cancels the callback.
#pragma once

#include <uv.h>

#include <functional>

#include "proxy/core/uv_handle.h"

namespace gatehouse {

class Timer {
 public:
  explicit Timer(uv_loop_t* loop) : loop_(loop) {}

  // (Re)arms the timer; `fn` runs once after `ms` (and every `repeat_ms` if non-zero).
  void start(unsigned ms, std::function<void()> fn, unsigned repeat_ms = 0) {
    fn_ = std::move(fn);
    if (!handle_) handle_.init(this, [this](uv_timer_t* t) { return uv_timer_init(loop_, t); });
    uv_timer_start(handle_.get(), onFire, ms, repeat_ms);
  }
  // Pushes the deadline back without replacing the callback.
  void restart(unsigned ms) {
    if (handle_) uv_timer_start(handle_.get(), onFire, ms, 0);
  }
  void stop() {
    if (handle_) uv_timer_stop(handle_.get());
  }
  // Releases the handle: nothing is held by an unarmed timer.
  void release() { handle_.reset(); }
  bool active() const { return handle_ && uv_is_active(handle_.base()); }

 private:
  static void onFire(uv_timer_t* t) {
    if (auto* self = ownerOf<Timer>(t)) {
      auto fn = self->fn_;  // the callback may re-arm or destroy the timer
      fn();
    }
  }

  uv_loop_t* loop_;
  UvHandle<uv_timer_t> handle_;
  std::function<void()> fn_;
};

}  // namespace gatehouse
