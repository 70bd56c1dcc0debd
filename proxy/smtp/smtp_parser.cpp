// Resumable SMTP command-line parser: finds line ends, enforces the line limit and the character
// rules, splits a command into its verb and arguments.
#include "proxy/smtp/smtp_parser.h"

#include <algorithm>

#include "proxy/core/ascii.h"

namespace gatehouse::smtp {
namespace {

// Consumed bytes are moved out of the buffer once they are this many and more than half of it,
// so that a long pipelined burst costs linear time, not quadratic.
constexpr size_t kCompactAfter = 4096;

bool isLdh(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

Result error(ErrorKind kind) {
  Result result;
  result.kind = ResultKind::Error;
  result.error = kind;
  return result;
}

}  // namespace

void CommandParser::feed(std::string_view bytes) {
  if (skip_left_ > 0) {
    size_t dropped = static_cast<size_t>(std::min<uint64_t>(skip_left_, bytes.size()));
    skip_left_ -= dropped;
    bytes.remove_prefix(dropped);
  }
  buffer_.append(bytes);
}

void CommandParser::skip(uint64_t bytes) {
  size_t now = static_cast<size_t>(std::min<uint64_t>(bytes, buffered()));
  consume(start_ + now);
  skip_left_ = bytes - now;
}

Result CommandParser::next() {
  return line(false);
}

Result CommandParser::nextLine() {
  return line(true);
}

Result CommandParser::line(bool raw) {
  for (;;) {
    size_t lf = buffer_.find('\n', scanned_);
    if (skipping_) {
      if (lf == std::string::npos) {
        consume(buffer_.size());
        return {};
      }
      consume(lf + 1);
      skipping_ = false;
      continue;
    }
    if (lf == std::string::npos) {
      scanned_ = buffer_.size();
      // One byte more than the limit may still be the CR of a CRLF.
      if (buffered() > max_line_ + 1) {
        consume(buffer_.size());
        skipping_ = true;
        return error(ErrorKind::LineTooLong);
      }
      return {};
    }
    std::string_view content(buffer_.data() + start_, lf - start_);
    if (!content.empty() && content.back() == '\r') content.remove_suffix(1);
    if (content.size() > max_line_) {
      consume(lf + 1);
      return error(ErrorKind::LineTooLong);
    }
    if (content.find_first_of(std::string_view("\0\r", 2)) != std::string_view::npos) {
      consume(lf + 1);
      return error(ErrorKind::BadCharacter);
    }
    Result result;
    result.kind = ResultKind::Command;
    if (raw) {
      result.command.args = std::string(content);
      consume(lf + 1);
      return result;
    }
    size_t verb_end = 0;
    while (verb_end < content.size() && isLdh(content[verb_end])) ++verb_end;
    if (verb_end == 0 || (verb_end < content.size() && content[verb_end] != ' ')) {
      consume(lf + 1);
      return error(ErrorKind::Syntax);
    }
    std::string_view args = content.substr(verb_end);
    while (!args.empty() && args.front() == ' ') args.remove_prefix(1);
    while (!args.empty() && (args.back() == ' ' || args.back() == '\t')) args.remove_suffix(1);
    result.command.verb.reserve(verb_end);
    for (char c : content.substr(0, verb_end)) {
      result.command.verb.push_back(c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c);
    }
    result.command.args = std::string(args);
    consume(lf + 1);
    return result;
  }
}

void CommandParser::consume(size_t offset) {
  start_ = offset;
  scanned_ = offset;
  if (start_ == buffer_.size()) {
    std::string().swap(buffer_);  // hold no buffer while the client is idle
    start_ = scanned_ = 0;
  } else if (start_ >= kCompactAfter && start_ * 2 > buffer_.size()) {
    buffer_.erase(0, start_);
    start_ = scanned_ = 0;
  }
}

std::string CommandParser::takeRemainder() {
  std::string rest = buffer_.substr(start_);
  discardBuffered();
  return rest;
}

void CommandParser::discardBuffered() {
  std::string().swap(buffer_);
  start_ = scanned_ = 0;
  skipping_ = false;
  skip_left_ = 0;
}

std::optional<uint64_t> bdatChunkSize(std::string_view args) {
  constexpr size_t kMaxDigits = 18;  // fits in 63 bits, as Postfix's off_t
  size_t digits = 0;
  while (digits < args.size() && args[digits] >= '0' && args[digits] <= '9') ++digits;
  if (digits == 0 || digits > kMaxDigits) return std::nullopt;
  std::string_view rest = args.substr(digits);
  if (!rest.empty()) {
    size_t blanks = 0;
    while (blanks < rest.size() && (rest[blanks] == ' ' || rest[blanks] == '\t')) ++blanks;
    rest.remove_prefix(blanks);
    if (blanks == 0 || !asciiEqualsIgnoreCase(rest, "LAST")) return std::nullopt;
  }
  uint64_t size = 0;
  for (size_t i = 0; i < digits; ++i) size = size * 10 + static_cast<uint64_t>(args[i] - '0');
  return size;
}

}  // namespace gatehouse::smtp
