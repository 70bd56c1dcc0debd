#include "proxy/core/loop_mailbox.h"

namespace gatehouse {

LoopMailbox::LoopMailbox(uv_loop_t* loop) : loop_(loop) {
  async_.init(this, [loop](uv_async_t* h) { return uv_async_init(loop, h, onAsync); });
  // A pending mailbox must not keep a loop alive that has nothing else to do.
  uv_unref(async_.base());
}

LoopMailbox::~LoopMailbox() { close(); }

bool LoopMailbox::post(std::function<void()> fn) {
  std::lock_guard lock(mutex_);
  if (closed_) return false;
  queue_.push_back(std::move(fn));
  uv_async_send(async_.get());
  return true;
}

void LoopMailbox::close() {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = true;
    queue_.clear();
  }
  async_.reset();
}

void LoopMailbox::onAsync(uv_async_t* handle) {
  if (auto* self = ownerOf<LoopMailbox>(handle)) self->drain();
}

void LoopMailbox::drain() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(queue_);
  }
  for (auto& fn : batch) fn();
}

}  // namespace gatehouse
