// Resumable parser for the SMTP command lines a client sends before AUTH (RFC 5321 4.1.1) and
// for AUTH continuation lines (RFC 4954). Pure code: bytes in, results out; no sockets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gatehouse::smtp {

enum class ResultKind {
  NeedMore,  // feed more bytes, then call again
  Command,   // a command line (next()) or a raw line (nextLine())
  Error,     // the line was refused and consumed; the session answers and goes on
};

enum class ErrorKind {
  None,
  LineTooLong,   // longer than the limit; the whole line up to its LF is dropped
  BadCharacter,  // NUL, or a CR that does not end the line
  Syntax,        // empty line, or a verb that is not letters, digits and '-'
};

struct Command {
  std::string verb;  // upper-cased keyword (RFC 5321 Ldh-str); empty from nextLine()
  std::string args;  // the rest after the spaces that follow the verb, trailing blanks removed;
                     // from nextLine(): the whole line without its line end
};

struct Result {
  ResultKind kind = ResultKind::NeedMore;
  Command command;
  ErrorKind error = ErrorKind::None;
};

// The chunk size of "BDAT <size> [LAST]" from its arguments (Command::args), as Postfix reads
// it: digits only, at most 18 of them, then nothing or LAST in any case. nullopt otherwise: then
// Postfix does not skip a chunk either, and the bytes that follow are commands.
std::optional<uint64_t> bdatChunkSize(std::string_view args);

// Feed bytes as they arrive and call next() (or nextLine()) until it returns NeedMore. Results
// depend only on the bytes, never on how they were split between feed() calls. A line ends with
// CRLF or a bare LF (RFC 5321 2.3.8 asks for CRLF; common clients and test tools send LF alone).
class CommandParser {
 public:
  // `max_line`: bytes of one line without its line end.
  explicit CommandParser(size_t max_line) : max_line_(max_line) {}

  void feed(std::string_view bytes);
  Result next();
  // One raw line (an AUTH continuation: base64 or "*"), line end removed, in Command::args.
  Result nextLine();
  // Everything not yet returned, byte-exact (after AUTH it goes to the back-end). Leaves the
  // parser empty, at a line start.
  std::string takeRemainder();
  // Drops everything not yet returned (after STARTTLS: plaintext pipelined behind the command
  // must never be read as if it came through TLS, CVE-2011-0411). Leaves the parser empty.
  void discardBuffered();
  // Drops the next `bytes` bytes, those fed and not yet returned first, then those still to come:
  // the chunk of a refused BDAT, which the client sends anyway (RFC 3030; Postfix skips it too).
  // Call at a line start, after next() returned the command.
  void skip(uint64_t bytes);
  // Bytes fed and not yet returned or dropped.
  size_t buffered() const { return buffer_.size() - start_; }

 private:
  Result line(bool raw);
  void consume(size_t offset);

  size_t max_line_;
  std::string buffer_;
  size_t start_ = 0;        // first byte not yet returned
  size_t scanned_ = 0;      // bytes of the current line before this offset hold no LF
  bool skipping_ = false;   // dropping the rest of a too-long line, up to its LF
  uint64_t skip_left_ = 0;  // bytes of a refused BDAT chunk still to drop as they arrive
};

}  // namespace gatehouse::smtp
