// Resumable parser for the IMAP commands a client sends before login: tag, name, atoms, strings,
// literals and lists. Pure code: bytes in, results out; the session decides what to send.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::imap {

struct ParserLimits {
  size_t max_line = 8192;      // bytes of one line, CRLF excluded
  size_t max_literal = 8192;   // bytes of one literal
  size_t max_command = 65536;  // lines, line ends and literals of one command together
};

enum class TokenKind {
  Atom,
  String,  // quoted or literal, unescaped; may hold 8-bit bytes, never NUL
  Nil,
  ListStart,
  ListEnd,
};

struct Token {
  TokenKind kind = TokenKind::Atom;
  std::string value;  // empty for ListStart and ListEnd; for Nil, the atom as typed ("nil")
};

// An astring (RFC 3501), as LOGIN's arguments are: an atom or a string. NIL is an atom too:
// "a LOGIN nil secret" is a login as the user "nil", where an nstring would be NIL.
inline bool isAstring(const Token& t) {
  return t.kind == TokenKind::Atom || t.kind == TokenKind::String || t.kind == TokenKind::Nil;
}

struct Command {
  std::string tag;   // never empty from next(); empty from nextLine()
  std::string name;  // upper-cased; from nextLine(): the raw line without its line end
  std::vector<Token> args;
};

enum class ResultKind {
  NeedMore,  // feed more bytes, then call again
  Command,
  Continue,  // send "+ OK" now: the client waits before sending a synchronising literal
  Error,
};

struct ParseError {
  std::string tag;      // "*" when the line had no valid tag
  std::string message;  // fixed text, never client bytes: safe after "tag BAD "
  bool fatal = false;   // the session must end ("* BYE"); the parser accepts nothing more
};

struct Result {
  ResultKind kind = ResultKind::NeedMore;
  Command command;   // Command; for Continue only tag and name are set
  ParseError error;  // Error only
};

// Feed bytes as they arrive and call next() until it returns NeedMore. Results depend only on
// the bytes, never on how they were split between feed() calls. After a fatal Error every call
// returns that error again and fed bytes are dropped.
class CommandParser {
 public:
  explicit CommandParser(ParserLimits limits);

  // Appends to the buffer. Limits bound one command, not what a client pipelines behind it: the
  // session stops reading while next() still returns results, or while buffered() is large.
  void feed(std::string_view bytes);
  Result next();
  // One raw line (an AUTHENTICATE continuation: base64 or "*"), line end removed, returned in
  // Command::name. Only between commands; a call inside a command is a fatal Error.
  Result nextLine();
  // Everything not yet returned as a command or an error, byte-exact (after login it goes to the
  // back-end). Leaves the parser empty, between commands.
  std::string takeRemainder();
  // Drops everything not yet returned (after STARTTLS: plaintext sent with the command must not
  // be read as if it came through TLS, CVE-2011-0411). Leaves the parser empty.
  void discardBuffered();
  // Bytes fed and not yet returned, including a partly received command.
  size_t buffered() const { return buffer_.size() - command_start_; }

 private:
  enum class State { kLine, kLiteral, kSkipLiteral, kSkipLine, kFailed };
  // What the tokenizer accepts next; it keeps its place across the lines of one command.
  enum class Expect { kTag, kSeparator, kToken, kTokenOrClose };
  enum class LineStatus { kComplete, kLiteral, kError };
  struct LiteralSpec {
    uint64_t size = 0;
    bool plus = false;             // LITERAL+ / LITERAL- {n+}: the data follows without "+ OK"
    bool too_many_digits = false;  // size not parsed: it could overflow
  };
  struct LineScan {
    enum class Kind { kNeedMore, kTooLong, kFound } kind = Kind::kNeedMore;
    std::string_view content;  // without CRLF or LF; valid until the buffer changes
    size_t next = 0;           // buffer offset after the line end
  };

  // Each step returns a result for the caller, or nothing when it changed state_ and the loop
  // in next() should go on.
  std::optional<Result> stepLine();
  std::optional<Result> stepLiteral();
  std::optional<Result> stepSkipLiteral();
  std::optional<Result> stepSkipLine();
  std::optional<Result> startLiteral(const LiteralSpec& literal, size_t next);
  Result rejectLine(std::string_view content, size_t next);
  std::optional<Result> startSkip(std::string_view content, size_t next);

  LineScan scanLine();
  bool addCommandBytes(uint64_t count);
  LineStatus tokenizeLine(std::string_view line, LiteralSpec* literal);
  bool tokenizeTagAndName(std::string_view line, size_t* pos);
  bool tokenizeArgs(std::string_view line, size_t* pos, LiteralSpec* literal, bool* is_literal);
  static bool parseLiteralSpec(std::string_view line, size_t brace, LiteralSpec* literal);
  bool tokenizeQuoted(std::string_view line, size_t* pos);
  bool tokenizeAtom(std::string_view line, size_t* pos);

  Result fail(std::string_view message);
  Result nonFatal(std::string_view message) const;
  void consumeTo(size_t offset);
  void finishCommand(size_t offset);
  void resetCommand();
  void compact();
  void releaseBuffer();

  ParserLimits limits_;
  std::string buffer_;
  State state_ = State::kLine;
  size_t command_start_ = 0;  // first byte not yet returned
  size_t line_start_ = 0;     // first byte of the line being scanned
  size_t scan_ = 0;           // bytes before this offset hold no LF of the current line
  size_t literal_start_ = 0;
  uint64_t literal_size_ = 0;
  uint64_t skip_ = 0;           // literal bytes of a rejected command still to drop
  uint64_t command_bytes_ = 0;  // of the current (or rejected) command, literals included
  Expect expect_ = Expect::kTag;
  size_t depth_ = 0;  // open parentheses
  Command command_;
  std::string error_message_;  // set by the tokenizer when it returns false
  ParseError failure_;
};

}  // namespace gatehouse::imap
