// Tests for LoopMailbox: posts from the loop's own thread and from other threads run on the loop
// thread, in order, never on the poster's stack, and not at all once the mailbox is closed.
#include "proxy/core/loop_mailbox.h"

#include <uv.h>

#include <catch2/catch.hpp>
#include <memory>
#include <thread>
#include <vector>

#include "proxy/core/uv_handle.h"
#include "test_loop.h"

namespace gatehouse {
namespace {

using testing::TestLoop;

TEST_CASE("a post from the loop thread runs on a later turn, in order", "[mailbox]") {
  TestLoop loop;
  std::vector<int> ran;
  REQUIRE(loop.mailbox()->post([&ran] { ran.push_back(1); }));
  REQUIRE(loop.mailbox()->post([&ran] { ran.push_back(2); }));
  CHECK(ran.empty());  // not on the caller's stack
  // One turn that does not block is enough: no wake-up through the async handle is needed.
  uv_run(loop.mailbox()->loop(), UV_RUN_NOWAIT);
  CHECK(ran == std::vector<int>{1, 2});
}

TEST_CASE("a post made while delivering runs on the following turn", "[mailbox]") {
  TestLoop loop;
  std::vector<int> ran;
  auto mailbox = loop.mailbox();
  mailbox->post([&ran, mailbox] {
    ran.push_back(1);
    mailbox->post([&ran] { ran.push_back(3); });
  });
  mailbox->post([&ran] { ran.push_back(2); });
  REQUIRE(loop.runUntil([&ran] { return ran.size() == 3; }));
  CHECK(ran == std::vector<int>{1, 2, 3});
}

TEST_CASE("a post from another thread runs on the loop thread", "[mailbox]") {
  TestLoop loop;
  const auto loop_thread = std::this_thread::get_id();
  std::thread::id ran_on;
  bool ran = false;
  bool posted = false;
  std::thread poster([&] {
    posted = loop.mailbox()->post([&] {
      ran_on = std::this_thread::get_id();
      ran = true;
    });
  });
  poster.join();
  REQUIRE(posted);
  REQUIRE(loop.runUntil([&ran] { return ran; }));
  CHECK(ran_on == loop_thread);
}

TEST_CASE("posts from the thread that created the mailbox reach the thread that runs the loop",
          "[mailbox]") {
  // As in a worker: created on the main thread, bound by the loop thread, posted to from main.
  uv_loop_t loop{};
  uv_loop_init(&loop);
  auto mailbox = std::make_shared<LoopMailbox>(&loop);
  UvHandle<uv_timer_t> keepalive;  // bounds the run if the post never arrives
  keepalive.init(nullptr, [&loop](uv_timer_t* t) { return uv_timer_init(&loop, t); });
  uv_timer_start(
      keepalive.get(), [](uv_timer_t*) {}, testing::kLoopTimeoutMs, 0);
  std::thread::id ran_on;
  std::thread runner([&] {
    mailbox->bindToThisThread();
    uv_run(&loop, UV_RUN_DEFAULT);
  });
  const std::thread::id loop_thread = runner.get_id();
  REQUIRE(mailbox->post([&] {
    ran_on = std::this_thread::get_id();
    keepalive.reset();  // lets uv_run return
    mailbox->close();
  }));
  runner.join();
  CHECK(ran_on == loop_thread);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("a closed mailbox refuses posts and drops what was queued", "[mailbox]") {
  TestLoop loop;
  auto mailbox = loop.mailbox();
  int ran = 0;
  mailbox->post([&ran, mailbox] {
    ++ran;
    mailbox->close();
  });
  mailbox->post([&ran] { ++ran; });  // queued behind the close: dropped
  REQUIRE(loop.runUntil([&ran] { return ran > 0; }));
  uv_run(mailbox->loop(), UV_RUN_NOWAIT);
  CHECK(ran == 1);
  CHECK_FALSE(mailbox->post([&ran] { ++ran; }));
  bool posted_from_thread = true;
  std::thread poster([&] { posted_from_thread = mailbox->post([&ran] { ++ran; }); });
  poster.join();
  CHECK_FALSE(posted_from_thread);
  CHECK(ran == 1);
}

}  // namespace
}  // namespace gatehouse
