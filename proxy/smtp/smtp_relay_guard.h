// Follows both directions of a relayed SMTP session just enough to keep the client from sending
// the back-end a command that would undo the login Gatehouse made for it. Pure code, no sockets.
//
// Postfix decides once per connection whether XCLIENT is allowed, from the connecting address
// (Gatehouse's): a client could send `XCLIENT LOGIN=bob` through the relay and be taken for bob.
// XFORWARD could rewrite the logged client, and STARTTLS (to the back-end, inside our TLS) would
// hide every later command from this guard. BDAT is refused too: Gatehouse never offers CHUNKING,
// and whether the back-end reads the next n bytes as a chunk or as commands depends on whether it
// accepts the BDAT line (Postfix skips the chunk after "503 need RCPT", not after "501 Syntax" or
// "502 not implemented"), so a chunk could hide a command from the guard or glue one together.
// So these verbs are refused at any command-line start.
//
// Message content is not checked once the back-end has certainly entered DATA: its 354 answered a
// DATA line that was the only unanswered command, and the client had sent nothing after it. In
// every other case (pipelined content, counts that no longer add up) all lines are checked as
// commands: refusing too much is possible, letting a command through is not.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "proxy/smtp/smtp_ehlo_filter.h"

namespace gatehouse::smtp {

class RelayGuard {
 public:
  // Client bytes about to go to the back-end. False: they hold (the start of) a refused command;
  // none of the bytes may be forwarded and the session must end. Stays false afterwards.
  bool fromClient(std::string_view data);
  // Back-end bytes about to go to the client: what the client gets of them (`data` itself, or
  // a view of `scratch` when an EHLO reply lost lines, see EhloReplyFilter).
  std::string_view fromBackend(std::string_view data, std::string& scratch);

  // The back-end is between replies: a reply injected now reaches the client whole, neither
  // inside a line nor between the lines of a multi-line reply (RFC 5321 4.2.1: one code each).
  bool atReplyLineStart() const { return reply_column_ == 0 && !inside_multiline_; }
  // The back-end said goodbye itself: a reply line starting with 221 (QUIT) or 421.
  bool backendSaidGoodbye() const { return saw_goodbye_; }
  // Command lines sent that have not had their final reply (DATA's comes after the content).
  bool awaitingReplies() const { return outstanding_ > 0; }
  // The verb that was refused, for the log.
  const std::string& refusedVerb() const { return refused_; }

 private:
  enum class Mode { Command, Data };
  enum class Dot { Start, Seen, No };  // the line so far: empty / "." blanks / other

  void clientLineEnd();
  bool checkVerb();
  void replyCodeSeen();  // the first three bytes of a reply line are in
  void replyLineEnd();

  // Client side. Only the start of each line is kept: enough for a verb or a lone ".".
  Mode mode_ = Mode::Command;
  std::string line_;        // first kLineKeep bytes of the current line, leading blanks dropped
  size_t line_length_ = 0;  // bytes of the current line so far
  Dot dot_ = Dot::Start;
  bool last_was_data_ = false;  // the last complete command line was DATA, nothing sent since
  uint64_t outstanding_ = 0;    // command lines sent minus final replies seen
  std::string refused_;

  // Back-end side.
  EhloReplyFilter ehlo_filter_;
  size_t reply_column_ = 0;
  char reply_head_[4] = {};
  bool inside_multiline_ = false;  // the last complete line was a "NNN-" continuation
  bool saw_goodbye_ = false;
};

}  // namespace gatehouse::smtp
