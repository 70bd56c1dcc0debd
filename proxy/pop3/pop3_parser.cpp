// Resumable parser for pre-login POP3 command lines: line framing with limits, keyword and
// arguments. See pop3_parser.h for the contract.
#include "proxy/pop3/pop3_parser.h"

namespace gatehouse::pop3 {
namespace {

// RFC 1939 keywords have 3 or 4 characters; extensions (RFC 2449: CAPA, STLS, XCLIENT...) stay
// short. Anything longer is not a command and is not worth upper-casing.
constexpr size_t kMaxKeyword = 16;
// Consumed bytes are moved out of the buffer once they are this many and more than half of it,
// so a long pipelined burst costs linear time, not quadratic.
constexpr size_t kCompactAt = 4096;
// An empty buffer with more capacity than this is freed: an idle session holds no buffer.
constexpr size_t kKeepCapacity = 512;

bool isKeywordChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u < 0x7f;
}

Result error(std::string_view message) {
  Result r;
  r.kind = ResultKind::Error;
  r.error = message;
  return r;
}

}  // namespace

void CommandParser::feed(std::string_view bytes) {
  if (skipping_) {
    // The rest of an overlong line, already reported: never buffered.
    auto lf = bytes.find('\n');
    if (lf == std::string_view::npos) return;
    skipping_ = false;
    bytes.remove_prefix(lf + 1);
  }
  buffer_.append(bytes);
}

bool CommandParser::nextRawLine(std::string* line, Result* result) {
  if (skipping_) return false;  // NeedMore: feed() drops bytes until the overlong line ends
  const size_t lf = buffer_.find('\n', scan_);
  if (lf == std::string::npos) {
    scan_ = buffer_.size();
    const size_t pending = buffer_.size() - start_;
    // Without its line end the line may still fit if its last byte is the CR of a CRLF.
    const bool too_long = pending > limits_.max_line + 1 ||
                          (pending == limits_.max_line + 1 && buffer_.back() != '\r');
    if (too_long) {
      skipping_ = true;
      consumeTo(buffer_.size());
      *result = error("Line too long.");
    }
    return false;
  }
  std::string_view content(buffer_.data() + start_, lf - start_);
  if (!content.empty() && content.back() == '\r') content.remove_suffix(1);
  if (content.size() > limits_.max_line) {
    consumeTo(lf + 1);
    *result = error("Line too long.");
    return false;
  }
  if (content.find('\0') != std::string_view::npos) {
    consumeTo(lf + 1);
    *result = error("NUL character in command.");
    return false;
  }
  line->assign(content);
  consumeTo(lf + 1);
  return true;
}

Result CommandParser::next() {
  Result result;
  std::string line;
  if (!nextRawLine(&line, &result)) return result;
  const size_t space = line.find(' ');
  const std::string_view keyword = std::string_view(line).substr(0, space);
  if (keyword.empty()) return error("Empty command.");
  if (keyword.size() > kMaxKeyword) return error("Unknown command.");
  for (char c : keyword) {
    if (!isKeywordChar(c)) return error("Unknown command.");
  }
  result.kind = ResultKind::Command;
  Command& command = result.command;
  command.name.reserve(keyword.size());
  for (char c : keyword) command.name.push_back(c >= 'a' && c <= 'z' ? char(c - 'a' + 'A') : c);
  if (space == std::string::npos) return result;
  command.rest = line.substr(space + 1);
  size_t pos = 0;
  const std::string& rest = command.rest;
  while (pos < rest.size()) {
    if (rest[pos] == ' ') {
      ++pos;
      continue;
    }
    size_t end = rest.find(' ', pos);
    if (end == std::string::npos) end = rest.size();
    command.args.push_back(rest.substr(pos, end - pos));
    pos = end;
  }
  return result;
}

Result CommandParser::nextLine() {
  Result result;
  std::string line;
  if (!nextRawLine(&line, &result)) return result;
  result.kind = ResultKind::Line;
  result.line = std::move(line);
  return result;
}

std::string CommandParser::takeRemainder() {
  std::string rest = buffer_.substr(start_);
  discardBuffered();
  return rest;
}

void CommandParser::discardBuffered() {
  std::string().swap(buffer_);
  start_ = 0;
  scan_ = 0;
  skipping_ = false;
}

void CommandParser::consumeTo(size_t offset) {
  start_ = offset;
  scan_ = offset;
  if (start_ == buffer_.size()) {
    if (buffer_.capacity() > kKeepCapacity) {
      std::string().swap(buffer_);
    } else {
      buffer_.clear();
    }
    start_ = 0;
    scan_ = 0;
  } else if (start_ >= kCompactAt && start_ * 2 > buffer_.size()) {
    buffer_.erase(0, start_);
    start_ = 0;
    scan_ = 0;
  }
}

}  // namespace gatehouse::pop3
