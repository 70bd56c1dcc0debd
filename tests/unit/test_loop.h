// A libuv loop with a LoopMailbox for unit tests of asynchronous code, run until something
// happened and never longer than a bound, so a missing callback fails the test instead of hanging.
#pragma once

#include <uv.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>

#include "proxy/core/loop_mailbox.h"
#include "proxy/core/uv_handle.h"

namespace gatehouse::testing {

// Bounds every wait.
constexpr uint64_t kLoopTimeoutMs = 5000;

// A loop, its mailbox, and a bounded way to run it until something happened.
class TestLoop {
 public:
  TestLoop() {
    uv_loop_init(&loop_);
    mailbox_ = std::make_shared<LoopMailbox>(&loop_);
    mailbox_->bindToThisThread();  // the test's thread runs the loop
  }
  ~TestLoop() {
    if (mailbox_) shutdown();
  }

  std::shared_ptr<LoopMailbox> mailbox() const { return mailbox_; }
  uv_loop_t* loop() { return &loop_; }

  // Runs until `done` returns true or kLoopTimeoutMs pass; returns done().
  template <typename Done>
  bool runUntil(Done done) {
    bool timed_out = false;
    UvHandle<uv_timer_t> timer;
    timer.init(&timed_out, [this](uv_timer_t* t) { return uv_timer_init(&loop_, t); });
    uv_timer_start(
        timer.get(), [](uv_timer_t* t) { *static_cast<bool*>(t->data) = true; }, kLoopTimeoutMs, 0);
    while (!done() && !timed_out) uv_run(&loop_, UV_RUN_ONCE);
    timer.reset();
    return done();
  }

  // Runs everything already posted: a marker posted now runs after all earlier posts.
  void drainPosted() {
    bool marker = false;
    mailbox_->post([&marker] { marker = true; });
    REQUIRE(runUntil([&marker] { return marker; }));
  }

  // Closes every handle; a leaked handle makes uv_loop_close fail.
  int shutdown() {
    mailbox_->close();
    mailbox_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);
    return uv_loop_close(&loop_);
  }

 private:
  uv_loop_t loop_{};
  std::shared_ptr<LoopMailbox> mailbox_;
};

}  // namespace gatehouse::testing
