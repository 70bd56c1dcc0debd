// The way back from a directory thread to the session that asked: a post to its loop, run only if
// the session still holds its PendingAuth (a shared flag both sides can see).
#pragma once

#include <atomic>
#include <memory>
#include <utility>

#include "directory/directory.h"

namespace gatehouse {

class AuthReply {
 public:
  AuthReply(std::shared_ptr<LoopMailbox> reply_to, AuthCallback done)
      : reply_to_(std::move(reply_to)),
        cancelled_(std::make_shared<std::atomic<bool>>(false)),
        done_(std::move(done)) {}

  // The handle for the caller; destroying it sets the flag.
  std::unique_ptr<PendingAuth> handle() const { return std::make_unique<Handle>(cancelled_); }
  bool cancelled() const { return cancelled_->load(); }

  // Runs the callback now, unless the handle is gone. Only on reply_to's loop thread, from a loop
  // callback (never on the stack of the session's own call).
  void deliverHere(AuthResult result) {
    if (!done_) return;
    AuthCallback done = std::move(done_);
    done_ = nullptr;
    if (!cancelled()) done(std::move(result));
  }

  // Posts the answer; the flag is read on the receiving loop, where the handle is destroyed, so
  // the callback cannot run after that. A closed mailbox drops it (its loop is going away).
  void send(AuthResult result) {
    if (!done_) return;
    reply_to_->post(
        [cancelled = cancelled_, done = std::move(done_), result = std::move(result)]() mutable {
          if (!cancelled->load()) done(std::move(result));
        });
    done_ = nullptr;
  }

 private:
  class Handle : public PendingAuth {
   public:
    explicit Handle(std::shared_ptr<std::atomic<bool>> cancelled)
        : cancelled_(std::move(cancelled)) {}
    ~Handle() override { cancelled_->store(true); }

   private:
    std::shared_ptr<std::atomic<bool>> cancelled_;
  };

  std::shared_ptr<LoopMailbox> reply_to_;
  std::shared_ptr<std::atomic<bool>> cancelled_;
  AuthCallback done_;
};

}  // namespace gatehouse
