// Resumable parser for the IMAP commands a client sends before login (RFC 3501 / 9051 syntax,
// LITERAL+ from RFC 7888). Lines are tokenized once, when their line end has arrived.
#include "proxy/imap/imap_parser.h"

#include <algorithm>
#include <utility>

namespace gatehouse::imap {
namespace {

// Ten digits hold every size a limit can allow; more can only be junk or an overflow attempt.
constexpr size_t kMaxLiteralDigits = 10;
// Nothing before login needs nesting (ID uses one level); a cap keeps token lists flat.
constexpr size_t kMaxListDepth = 8;
// A buffer that grew past this for one big command is given back once it is mostly empty, so an
// idle session does not keep it.
constexpr size_t kRetainedCapacity = 16 * 1024;

constexpr std::string_view kEmptyLine = "Empty command line";
constexpr std::string_view kInvalidTag = "Invalid tag";
constexpr std::string_view kMissingName = "Missing command name";
constexpr std::string_view kInvalidName = "Invalid command name";
constexpr std::string_view kInvalidChars = "Invalid characters in command";
constexpr std::string_view kUnexpectedClose = "Unexpected ')'";
constexpr std::string_view kUnclosedList = "Unclosed list";
constexpr std::string_view kListTooDeep = "Lists nested too deeply";
constexpr std::string_view kInvalidLiteral = "Invalid literal";
constexpr std::string_view kBadEscape = "Invalid escape in quoted string";
constexpr std::string_view kBadQuotedChar = "Invalid characters in quoted string";
constexpr std::string_view kUnterminatedQuoted = "Unterminated quoted string";
constexpr std::string_view kNulInLiteral = "NUL in literal";
constexpr std::string_view kNulInLine = "NUL in line";
constexpr std::string_view kLiteralTooLarge = "Literal too large";
constexpr std::string_view kLineTooLong = "Line too long";
constexpr std::string_view kCommandTooLong = "Command too long";
constexpr std::string_view kLineInsideCommand = "Line requested inside a command";

// ATOM-CHAR: any CHAR except atom-specials ( ) { SP CTL % * " \ ].
bool isAtomChar(char ch) {
  const auto c = static_cast<unsigned char>(ch);
  if (c <= 0x20 || c >= 0x7f) return false;
  switch (c) {
    case '(':
    case ')':
    case '{':
    case '%':
    case '*':
    case '"':
    case '\\':
    case ']':
      return false;
    default:
      return true;
  }
}

bool isAstringChar(char c) {
  return c == ']' || isAtomChar(c);
}

// tag = 1*<any ASTRING-CHAR except "+">: a '+' line is a continuation, not a command.
bool isTagChar(char c) {
  return c != '+' && isAstringChar(c);
}

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

char toUpper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

bool isNil(std::string_view atom) {
  return atom.size() == 3 && toUpper(atom[0]) == 'N' && toUpper(atom[1]) == 'I' &&
         toUpper(atom[2]) == 'L';
}

Result needMore() {
  return Result{};
}

}  // namespace

CommandParser::CommandParser(ParserLimits limits) : limits_(limits) {}

void CommandParser::feed(std::string_view bytes) {
  if (state_ == State::kFailed) return;  // nothing more will be read: do not hold it
  compact();
  buffer_.append(bytes);
}

Result CommandParser::next() {
  for (;;) {
    std::optional<Result> result;
    switch (state_) {
      case State::kFailed:
        return Result{ResultKind::Error, {}, failure_};
      case State::kLine:
        result = stepLine();
        break;
      case State::kLiteral:
        result = stepLiteral();
        break;
      case State::kSkipLiteral:
        result = stepSkipLiteral();
        break;
      case State::kSkipLine:
        result = stepSkipLine();
        break;
    }
    if (result) return std::move(*result);
  }
}

Result CommandParser::nextLine() {
  if (state_ == State::kFailed) return Result{ResultKind::Error, {}, failure_};
  if (state_ != State::kLine || expect_ != Expect::kTag) return fail(kLineInsideCommand);
  const LineScan scan = scanLine();
  if (scan.kind == LineScan::Kind::kNeedMore) return needMore();
  if (scan.kind == LineScan::Kind::kTooLong) return fail(kLineTooLong);
  Result result;
  if (scan.content.find('\0') != std::string_view::npos) {
    result = nonFatal(kNulInLine);
  } else {
    result.kind = ResultKind::Command;
    result.command.name = std::string(scan.content);
  }
  finishCommand(scan.next);
  return result;
}

std::string CommandParser::takeRemainder() {
  std::string remainder = buffer_.substr(command_start_);
  discardBuffered();
  return remainder;
}

void CommandParser::discardBuffered() {
  releaseBuffer();
  if (state_ != State::kFailed) state_ = State::kLine;
  skip_ = 0;
  resetCommand();
}

std::optional<Result> CommandParser::stepLine() {
  const LineScan scan = scanLine();
  if (scan.kind == LineScan::Kind::kNeedMore) return needMore();
  if (scan.kind == LineScan::Kind::kTooLong) return fail(kLineTooLong);
  if (!addCommandBytes(scan.next - line_start_)) return fail(kCommandTooLong);

  LiteralSpec literal;
  switch (tokenizeLine(scan.content, &literal)) {
    case LineStatus::kComplete: {
      Result result;
      result.kind = ResultKind::Command;
      result.command = std::move(command_);
      finishCommand(scan.next);
      return result;
    }
    case LineStatus::kLiteral:
      return startLiteral(literal, scan.next);
    case LineStatus::kError:
      break;
  }
  return rejectLine(scan.content, scan.next);
}

// The size is checked here, before the caller is told to send "+ OK" (Dovecot does the same):
// a client is never invited to send what would be refused.
std::optional<Result> CommandParser::startLiteral(const LiteralSpec& literal, size_t next) {
  if (literal.too_many_digits) return fail(kLiteralTooLarge);
  if (literal.size > limits_.max_literal) {
    // A {n+} client sends the data anyway and we cannot tell it from commands: end the session.
    if (literal.plus) return fail(kLiteralTooLarge);
    // A {n} client waits for "+ OK", which it will not get: its next line is a new command.
    Result result = nonFatal(kLiteralTooLarge);
    finishCommand(next);
    return result;
  }
  if (!addCommandBytes(literal.size)) return fail(kCommandTooLong);
  literal_start_ = next;
  literal_size_ = literal.size;
  state_ = State::kLiteral;
  if (literal.plus) return std::nullopt;
  Result result;
  result.kind = ResultKind::Continue;
  result.command.tag = command_.tag;
  result.command.name = command_.name;
  return result;
}

std::optional<Result> CommandParser::stepLiteral() {
  if (buffer_.size() - literal_start_ < literal_size_) return needMore();
  const std::string_view data = std::string_view(buffer_).substr(literal_start_, literal_size_);
  const size_t end = literal_start_ + literal_size_;
  if (data.find('\0') != std::string_view::npos) {
    // The rest of the command may still carry {n+} literals: skip it like a rejected line.
    Result result = nonFatal(kNulInLiteral);
    consumeTo(end);
    state_ = State::kSkipLine;
    return result;
  }
  command_.args.push_back(Token{TokenKind::String, std::string(data)});
  line_start_ = scan_ = end;
  state_ = State::kLine;
  return std::nullopt;
}

// The error is reported at once; the bytes of the rejected command that may follow ({n+}
// literals and the lines after them) are dropped by the skip states, so that literal data is
// never read as a command.
Result CommandParser::rejectLine(std::string_view content, size_t next) {
  Result result = nonFatal(error_message_);
  if (std::optional<Result> fatal = startSkip(content, next)) return std::move(*fatal);
  return result;
}

// Decides what follows a rejected line: a {n+} literal to skip, or the next command.
std::optional<Result> CommandParser::startSkip(std::string_view content, size_t next) {
  // Whatever the tokenizer thought of the line, a client that ends it with {n+} sends n bytes.
  LiteralSpec literal;
  const size_t brace = content.rfind('{');
  if (brace != std::string_view::npos && parseLiteralSpec(content, brace, &literal)) {
    if (literal.too_many_digits) return fail(kLiteralTooLarge);
    if (literal.plus) {
      if (literal.size > limits_.max_literal) return fail(kLiteralTooLarge);
      if (!addCommandBytes(literal.size)) return fail(kCommandTooLong);
      consumeTo(next);
      skip_ = literal.size;
      state_ = State::kSkipLiteral;
      return std::nullopt;
    }
  }
  finishCommand(next);
  return std::nullopt;
}

std::optional<Result> CommandParser::stepSkipLiteral() {
  const uint64_t available = buffer_.size() - line_start_;
  const uint64_t take = std::min(available, skip_);
  skip_ -= take;
  consumeTo(line_start_ + static_cast<size_t>(take));
  if (skip_ > 0) return needMore();
  state_ = State::kSkipLine;
  return std::nullopt;
}

std::optional<Result> CommandParser::stepSkipLine() {
  const LineScan scan = scanLine();
  if (scan.kind == LineScan::Kind::kNeedMore) return needMore();
  if (scan.kind == LineScan::Kind::kTooLong) return fail(kLineTooLong);
  if (!addCommandBytes(scan.next - line_start_)) return fail(kCommandTooLong);
  return startSkip(scan.content, scan.next);
}

// Looks for the end of the line that starts at line_start_, resuming where the last call
// stopped. The length test on a partial line gives the verdict the complete line would get: the
// content can only grow, except for a CR that may turn out to be half of the CRLF.
CommandParser::LineScan CommandParser::scanLine() {
  LineScan scan;
  const size_t lf = buffer_.find('\n', scan_);
  if (lf == std::string::npos) {
    scan_ = buffer_.size();
    size_t partial = scan_ - line_start_;
    if (partial > 0 && buffer_.back() == '\r') --partial;
    scan.kind = partial > limits_.max_line ? LineScan::Kind::kTooLong : LineScan::Kind::kNeedMore;
    return scan;
  }
  size_t end = lf;
  if (end > line_start_ && buffer_[end - 1] == '\r') --end;
  scan.content = std::string_view(buffer_).substr(line_start_, end - line_start_);
  scan.next = lf + 1;
  scan.kind =
      scan.content.size() > limits_.max_line ? LineScan::Kind::kTooLong : LineScan::Kind::kFound;
  return scan;
}

bool CommandParser::addCommandBytes(uint64_t count) {
  command_bytes_ += count;
  return command_bytes_ <= limits_.max_command;
}

CommandParser::LineStatus CommandParser::tokenizeLine(std::string_view line, LiteralSpec* literal) {
  size_t pos = 0;
  if (expect_ == Expect::kTag && !tokenizeTagAndName(line, &pos)) return LineStatus::kError;
  bool is_literal = false;
  if (!tokenizeArgs(line, &pos, literal, &is_literal)) return LineStatus::kError;
  return is_literal ? LineStatus::kLiteral : LineStatus::kComplete;
}

bool CommandParser::tokenizeTagAndName(std::string_view line, size_t* pos) {
  if (line.empty()) {
    error_message_ = kEmptyLine;
    return false;
  }
  size_t end = 0;
  while (end < line.size() && isTagChar(line[end])) ++end;
  if (end == 0 || (end < line.size() && line[end] != ' ')) {
    error_message_ = kInvalidTag;
    return false;
  }
  command_.tag = std::string(line.substr(0, end));
  const size_t start = end + 1;
  size_t stop = start;
  while (stop < line.size() && isAtomChar(line[stop])) ++stop;
  if (start >= line.size()) {
    error_message_ = kMissingName;
    return false;
  }
  if (stop == start) {
    error_message_ = kInvalidName;
    return false;
  }
  command_.name.reserve(stop - start);
  for (size_t i = start; i < stop; ++i) command_.name.push_back(toUpper(line[i]));
  *pos = stop;
  expect_ = Expect::kSeparator;
  return true;
}

bool CommandParser::tokenizeArgs(std::string_view line, size_t* pos, LiteralSpec* literal,
                                 bool* is_literal) {
  while (*pos < line.size()) {
    const char c = line[*pos];
    if (c == ')') {
      if (depth_ == 0 || expect_ == Expect::kToken) {
        error_message_ = kUnexpectedClose;
        return false;
      }
      --depth_;
      command_.args.push_back(Token{TokenKind::ListEnd, {}});
      expect_ = Expect::kSeparator;
      ++*pos;
      continue;
    }
    if (expect_ == Expect::kSeparator) {
      if (c != ' ') {
        error_message_ = kInvalidChars;
        return false;
      }
      expect_ = Expect::kToken;
      ++*pos;
      continue;
    }
    if (c == '(') {
      if (++depth_ > kMaxListDepth) {
        error_message_ = kListTooDeep;
        return false;
      }
      command_.args.push_back(Token{TokenKind::ListStart, {}});
      expect_ = Expect::kTokenOrClose;
      ++*pos;
      continue;
    }
    if (c == '{') {
      // A literal announcement ends the line; its data and the rest of the command follow.
      if (!parseLiteralSpec(line, *pos, literal)) {
        error_message_ = kInvalidLiteral;
        return false;
      }
      *is_literal = true;
      *pos = line.size();
      expect_ = Expect::kSeparator;
      return true;
    }
    const bool ok = c == '"' ? tokenizeQuoted(line, pos) : tokenizeAtom(line, pos);
    if (!ok) return false;
    expect_ = Expect::kSeparator;
  }
  // A space before the line end is tolerated outside lists, as Dovecot does: some clients send
  // "a NOOP " and nothing is ambiguous about it.
  if (depth_ > 0) {
    error_message_ = kUnclosedList;
    return false;
  }
  return true;
}

// "{" 1*DIGIT ["+"] "}" at `brace`, and nothing after it on the line.
bool CommandParser::parseLiteralSpec(std::string_view line, size_t brace, LiteralSpec* literal) {
  size_t i = brace + 1;
  const size_t first_digit = i;
  while (i < line.size() && isDigit(line[i])) ++i;
  const size_t digits = i - first_digit;
  if (digits == 0) return false;
  literal->plus = i < line.size() && line[i] == '+';
  if (literal->plus) ++i;
  if (i + 1 != line.size() || line[i] != '}') return false;
  // number = 1*DIGIT (RFC 3501): leading zeros are allowed and say nothing about the size.
  size_t significant = first_digit;
  while (significant + 1 < first_digit + digits && line[significant] == '0') ++significant;
  literal->too_many_digits = first_digit + digits - significant > kMaxLiteralDigits;
  literal->size = 0;
  if (literal->too_many_digits) return true;
  for (size_t d = significant; d < first_digit + digits; ++d) {
    literal->size = literal->size * 10 + static_cast<uint64_t>(line[d] - '0');
  }
  return true;
}

// quoted = DQUOTE *QUOTED-CHAR DQUOTE; only \" and \\ are escapes. 8-bit bytes are kept (UTF-8
// passwords); NUL is not a CHAR, and CR or LF would end the line.
bool CommandParser::tokenizeQuoted(std::string_view line, size_t* pos) {
  std::string value;
  for (size_t i = *pos + 1; i < line.size(); ++i) {
    char c = line[i];
    if (c == '"') {
      command_.args.push_back(Token{TokenKind::String, std::move(value)});
      *pos = i + 1;
      return true;
    }
    if (c == '\\') {
      if (++i == line.size()) break;
      c = line[i];
      if (c != '"' && c != '\\') {
        error_message_ = kBadEscape;
        return false;
      }
    } else if (c == '\0' || c == '\r') {
      error_message_ = kBadQuotedChar;
      return false;
    }
    value.push_back(c);
  }
  error_message_ = kUnterminatedQuoted;
  return false;
}

bool CommandParser::tokenizeAtom(std::string_view line, size_t* pos) {
  size_t end = *pos;
  while (end < line.size() && isAstringChar(line[end])) ++end;
  if (end == *pos) {
    error_message_ = kInvalidChars;
    return false;
  }
  const std::string_view atom = line.substr(*pos, end - *pos);
  if (isNil(atom)) {
    command_.args.push_back(Token{TokenKind::Nil, std::string(atom)});
  } else {
    command_.args.push_back(Token{TokenKind::Atom, std::string(atom)});
  }
  *pos = end;
  return true;
}

Result CommandParser::fail(std::string_view message) {
  failure_.tag = command_.tag.empty() ? "*" : command_.tag;
  failure_.message = std::string(message);
  failure_.fatal = true;
  state_ = State::kFailed;
  releaseBuffer();
  resetCommand();
  return Result{ResultKind::Error, {}, failure_};
}

Result CommandParser::nonFatal(std::string_view message) const {
  Result result;
  result.kind = ResultKind::Error;
  result.error.tag = command_.tag.empty() ? "*" : command_.tag;
  result.error.message = std::string(message);
  return result;
}

// Bytes before `offset` were returned (as a command or an error); the current line starts there.
void CommandParser::consumeTo(size_t offset) {
  command_start_ = line_start_ = scan_ = offset;
  // Moving the unread tail costs its length: do it only when the consumed part is at least as
  // big, so pipelined commands cost linear time, and at most half of the buffer is dead bytes.
  if (command_start_ >= buffer_.size() - command_start_) compact();
}

void CommandParser::finishCommand(size_t offset) {
  consumeTo(offset);
  state_ = State::kLine;
  resetCommand();
}

void CommandParser::resetCommand() {
  command_ = Command{};
  command_bytes_ = 0;
  expect_ = Expect::kTag;
  depth_ = 0;
}

void CommandParser::compact() {
  if (command_start_ == 0) return;
  buffer_.erase(0, command_start_);
  line_start_ -= command_start_;
  scan_ -= command_start_;
  literal_start_ = literal_start_ >= command_start_ ? literal_start_ - command_start_ : 0;
  command_start_ = 0;
  if (buffer_.capacity() > kRetainedCapacity && buffer_.size() < buffer_.capacity() / 4) {
    std::string(buffer_).swap(buffer_);
  }
}

void CommandParser::releaseBuffer() {
  std::string().swap(buffer_);
  command_start_ = line_start_ = scan_ = literal_start_ = 0;
}

}  // namespace gatehouse::imap
