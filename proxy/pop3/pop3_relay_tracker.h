// Follows a relayed POP3 session just enough to know where back-end responses end: which client
// commands get multi-line answers, and where those end. Lets the session inject a goodbye only
// between responses, and tell a back-end that answered QUIT from one that died. Pure code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::pop3 {

class RelayTracker {
 public:
  // Bytes the client sent (after login, including what it pipelined behind the login command).
  void fromClient(std::string_view data);
  // Bytes the back-end sent after its login answer.
  void fromBackend(std::string_view data);

  // True when the back-end stream is at a response boundary: a line written to the client now is
  // read as the answer to its next command, never as part of a multi-line response.
  bool betweenResponses() const { return !lost_ && backend_ == Backend::ResponseStart; }
  // True once the back-end completed its answer to the client's QUIT.
  bool quitAnswered() const { return quit_answered_; }
  // True while a client command has not had its whole answer (or the count was lost: then always).
  bool awaitingResponses() const {
    return lost_ || pending_head_ < pending_.size() || backend_ != Backend::ResponseStart;
  }

 private:
  enum class Expect : uint8_t { SingleLine, MultiLine, Quit };
  enum class Backend : uint8_t {
    ResponseStart,  // before the first byte of a response
    StatusLine,     // inside "+OK ..." / "-ERR ..."
    BodyLineStart,  // multi-line body, at the start of a line
    BodyDot,        // after a "." at the start of a body line
    BodyDotCr,      // after ".\r" at the start of a body line
    BodyLine,       // inside a body line
  };

  void clientLineDone();
  void statusLineDone();
  void responseDone();

  // One per client command not yet answered, oldest at pending_head_. A vector, not a deque:
  // libstdc++'s deque allocates ~600 bytes up front, and idle sessions should hold nothing.
  std::vector<Expect> pending_;
  size_t pending_head_ = 0;
  std::string client_head_;  // first bytes of the client's current line
  std::string status_head_;  // first bytes of the back-end's current status line
  Backend backend_ = Backend::ResponseStart;
  bool lost_ = false;  // too many unanswered commands to follow: never sure again
  bool quit_answered_ = false;
};

}  // namespace gatehouse::pop3
