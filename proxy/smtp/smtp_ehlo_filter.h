// Takes out of a relayed EHLO reply the extensions that the relay refuses (see smtp_relay_guard.h):
// after login the client talks to the back-end, whose EHLO reply offers what it offers Gatehouse's
// trusted address (Postfix: XCLIENT, XFORWARD), STARTTLS and CHUNKING. A server should not offer
// what it will not take (RFC 5321 4.1.1.1), and a client that uses an offered BDAT or XCLIENT
// would lose its session. Pure code: bytes in, bytes out, whatever the split.
//
// The filter sees every back-end byte and counts final replies, so that an EHLO pipelined behind
// other commands (RFC 2920 3.1: "RSET, EHLO") has its own reply filtered, not the first one to
// come.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

namespace gatehouse::smtp {

class EhloReplyFilter {
 public:
  // The client sent an EHLO that `replies_before` final replies to earlier commands precede.
  void expectReply(uint64_t replies_before);
  // Back-end bytes in, what the client gets: `data` itself when nothing can be taken out,
  // otherwise a view of `scratch`.
  std::string_view filter(std::string_view data, std::string& scratch);

 private:
  void filterLines(std::string_view data, std::string& out);
  void lineDone(std::string& out);
  void stepAside(std::string& out);
  void track(std::string_view part);  // the line's first bytes, for endsFinalReply
  void replyLineEnded();

  uint64_t replies_seen_ = 0;     // final replies whose last line has gone by
  std::deque<uint64_t> targets_;  // values of replies_seen_ at which an EHLO reply starts
  char head_[4] = {};
  size_t column_ = 0;           // bytes of the current line so far, LF excluded
  bool buffering_ = false;      // the current line is an EHLO reply line, held in line_
  bool first_line_ = true;      // the next line of the EHLO reply is its first
  bool stepped_aside_ = false;  // the rest of this EHLO reply goes through as it came
  std::string line_;            // the EHLO reply line being read, with its line end once complete
  std::string held_;  // the last continuation line kept: it becomes final if the next is dropped
};

}  // namespace gatehouse::smtp
