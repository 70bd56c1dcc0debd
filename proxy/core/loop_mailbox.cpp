#include "proxy/core/loop_mailbox.h"

namespace gatehouse {

LoopMailbox::LoopMailbox(uv_loop_t* loop) : loop_(loop) {
  async_.init(this, [loop](uv_async_t* h) { return uv_async_init(loop, h, onAsync); });
  // A pending mailbox must not keep a loop alive that has nothing else to do.
  uv_unref(async_.base());
  idle_.init(this, [loop](uv_idle_t* h) { return uv_idle_init(loop, h); });
}

LoopMailbox::~LoopMailbox() {
  close();
}

bool LoopMailbox::post(std::function<void()> fn) {
  if (owner_.load(std::memory_order_relaxed) == std::this_thread::get_id()) {
    if (!idle_) return false;  // closed: only the owner thread closes, so no lock is needed
    if (local_.empty()) uv_idle_start(idle_.get(), onIdle);
    local_.push_back(std::move(fn));
    return true;
  }
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
  idle_.reset();
  local_.clear();
}

void LoopMailbox::onAsync(uv_async_t* handle) {
  if (auto* self = ownerOf<LoopMailbox>(handle)) self->drain();
}

void LoopMailbox::onIdle(uv_idle_t* handle) {
  if (auto* self = ownerOf<LoopMailbox>(handle)) self->drainLocal();
}

void LoopMailbox::drainLocal() {
  uv_idle_stop(idle_.get());
  std::vector<std::function<void()>> batch;
  batch.swap(local_);
  for (auto& fn : batch) {
    fn();
    if (!idle_) return;  // a function closed the mailbox: drop the rest, as a closed one does
  }
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
