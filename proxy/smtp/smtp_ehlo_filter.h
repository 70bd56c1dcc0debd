// Takes out of a relayed EHLO reply the extensions that the relay refuses (see smtp_relay_guard.h):
// after login the client talks to the back-end, whose EHLO reply offers what it offers Gatehouse's
// trusted address (Postfix: XCLIENT, XFORWARD), STARTTLS and CHUNKING. A server should not offer
// what it will not take (RFC 5321 4.1.1.1), and a client that uses an offered BDAT or XCLIENT
// would lose its session. Pure code: bytes in, bytes out, whatever the split.
#pragma once

#include <string>
#include <string_view>

namespace gatehouse::smtp {

class EhloReplyFilter {
 public:
  // The next reply from the back-end answers EHLO.
  void expectReply();
  bool active() const { return state_ != State::Idle; }
  // Back-end bytes in, what the client gets out (appended to `out`). When not active, `data` is
  // all there is to send and `out` is left alone.
  void filter(std::string_view data, std::string& out);

 private:
  enum class State { Idle, FirstLine, Extensions };
  void lineDone(std::string& out);
  void passRest(std::string& out);

  State state_ = State::Idle;
  std::string line_;  // the reply line being read, with its CRLF once complete
  std::string held_;  // the last continuation line kept: it becomes final if the next is dropped
};

}  // namespace gatehouse::smtp
