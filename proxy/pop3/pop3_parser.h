// Resumable parser for the POP3 commands a client sends before login (RFC 1939, RFC 2449): one
// line each, a keyword and arguments. Pure code: bytes in, results out; the session answers.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::pop3 {

struct ParserLimits {
  // Bytes of one line, line end excluded. RFC 2449 caps commands at 255 octets but SASL
  // responses may be longer (RFC 5034), so the session passes its configured line limit.
  size_t max_line = 8192;
};

struct Command {
  std::string name;               // the keyword, upper-cased
  std::vector<std::string> args;  // split at runs of spaces; may hold 8-bit bytes, never NUL
  std::string
      rest;  // everything after the keyword and its space, byte-exact (PASS may hold spaces)
};

enum class ResultKind {
  NeedMore,  // feed more bytes, then call again
  Command,   // from next()
  Line,      // from nextLine(): the raw line in `line`
  Error,     // the line was consumed (or is being skipped); answer -ERR and go on
};

struct Result {
  ResultKind kind = ResultKind::NeedMore;
  Command command;    // Command only
  std::string line;   // Line only: without its line end
  std::string error;  // Error only: fixed text, never client bytes, safe after "-ERR "
};

// Feed bytes as they arrive and call next() (or nextLine()) until it returns NeedMore. Results
// depend only on the bytes, never on how they were split between feed() calls. A line ends at
// LF; a CR before it is dropped. Nothing is fatal: a bad line is one Error and parsing goes on.
class CommandParser {
 public:
  explicit CommandParser(ParserLimits limits) : limits_(limits) {}

  // Appends to the buffer. The session stops reading while it waits (e.g. for the directory), so
  // what is buffered is what the client pipelined, bounded by one read.
  void feed(std::string_view bytes);
  // The next command line.
  Result next();
  // The next line, raw (a SASL continuation: base64 or "*").
  Result nextLine();
  // Everything not yet returned, byte-exact (after login it goes to the back-end). Leaves the
  // parser empty, at a line start.
  std::string takeRemainder();
  // Drops everything not yet returned (after STLS: plaintext sent with the command must not be
  // read as if it came through TLS, CVE-2011-0411). Leaves the parser empty, at a line start.
  void discardBuffered();
  // Bytes fed and not yet returned.
  size_t buffered() const { return buffer_.size() - start_; }

 private:
  // Copies the next complete line into `line`; returns false with `result` set when there is none
  // (NeedMore, or an Error for an overlong or invalid line).
  bool nextRawLine(std::string* line, Result* result);
  void consumeTo(size_t offset);

  ParserLimits limits_;
  std::string buffer_;
  size_t start_ = 0;       // first byte not yet returned
  size_t scan_ = 0;        // bytes before this offset hold no LF of the current line
  bool skipping_ = false;  // an overlong line was reported: drop bytes up to its LF
};

}  // namespace gatehouse::pop3
