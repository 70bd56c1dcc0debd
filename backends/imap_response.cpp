#include "backends/imap_response.h"

#include <algorithm>
#include <cctype>

#include "proxy/core/ascii.h"

namespace gatehouse::imap {
namespace {

constexpr size_t kHeadBytes = 8;
constexpr size_t kTailBytes = 24;  // "{" + 20 digits + "+}\r"
constexpr uint64_t kMaxLiteralDigits = 19;

ResponseStatus statusOf(std::string_view word) {
  if (asciiEqualsIgnoreCase(word, "OK")) return ResponseStatus::Ok;
  if (asciiEqualsIgnoreCase(word, "NO")) return ResponseStatus::No;
  if (asciiEqualsIgnoreCase(word, "BAD")) return ResponseStatus::Bad;
  if (asciiEqualsIgnoreCase(word, "BYE")) return ResponseStatus::Bye;
  if (asciiEqualsIgnoreCase(word, "PREAUTH")) return ResponseStatus::Preauth;
  return ResponseStatus::None;
}

std::string_view nextWord(std::string_view& rest) {
  auto space = rest.find(' ');
  std::string_view word = rest.substr(0, space);
  rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
  return word;
}

}  // namespace

std::optional<Response> parseResponseLine(std::string_view line) {
  Response r;
  if (!line.empty() && line.front() == '+') {
    r.kind = ResponseKind::Continuation;
    r.text = std::string(line.substr(line.size() > 1 && line[1] == ' ' ? 2 : 1));
    return r;
  }
  std::string_view rest = line;
  std::string_view tag = nextWord(rest);
  if (tag.empty()) return std::nullopt;
  if (tag == "*") {
    r.kind = ResponseKind::Untagged;
  } else {
    r.kind = ResponseKind::Tagged;
    r.tag = std::string(tag);
  }
  std::string_view before_status = rest;
  std::string_view word = nextWord(rest);
  r.status = statusOf(word);
  if (r.status == ResponseStatus::None) {
    if (r.kind == ResponseKind::Tagged) return std::nullopt;  // tagged lines always carry a status
    r.text = std::string(before_status);
    return r;
  }
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    r.code = std::string(rest.substr(1, close - 1));
    rest.remove_prefix(close + 1);
    if (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  }
  r.text = std::string(rest);
  return r;
}

std::vector<std::string_view> splitCapabilities(std::string_view list) {
  std::vector<std::string_view> caps;
  caps.reserve(32);
  std::string_view rest = list;
  bool first = true;
  while (!rest.empty()) {
    std::string_view word = nextWord(rest);
    if (word.empty()) continue;
    if (first && asciiEqualsIgnoreCase(word, "CAPABILITY")) {
      first = false;
      continue;
    }
    first = false;
    caps.push_back(word);
  }
  return caps;
}

bool hasCapability(const std::vector<std::string_view>& caps, std::string_view name) {
  return std::any_of(caps.begin(), caps.end(),
                     [&](std::string_view c) { return asciiEqualsIgnoreCase(c, name); });
}

std::optional<uint64_t> trailingLiteralSize(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.empty() || line.back() != '}') return std::nullopt;
  line.remove_suffix(1);
  if (!line.empty() && line.back() == '+') line.remove_suffix(1);
  size_t digits = 0;
  while (digits < line.size() &&
         std::isdigit(static_cast<unsigned char>(line[line.size() - 1 - digits]))) {
    ++digits;
  }
  if (digits == 0 || digits > kMaxLiteralDigits || digits == line.size() ||
      line[line.size() - 1 - digits] != '{') {
    return std::nullopt;
  }
  uint64_t n = 0;
  for (char c : line.substr(line.size() - digits)) n = n * 10 + static_cast<uint64_t>(c - '0');
  return n;
}

void ResponseScanner::feed(std::string_view data) {
  while (!data.empty()) {
    if (literal_left_ > 0) {
      uint64_t skip = std::min<uint64_t>(literal_left_, data.size());
      literal_left_ -= skip;
      data.remove_prefix(skip);
      continue;
    }
    auto lf = data.find('\n');
    std::string_view chunk = data.substr(0, lf);
    if (head_.size() < kHeadBytes) head_.append(chunk.substr(0, kHeadBytes - head_.size()));
    if (chunk.size() >= kTailBytes) {
      tail_.assign(chunk.substr(chunk.size() - kTailBytes));
    } else {
      tail_.append(chunk);
      if (tail_.size() > kTailBytes) tail_.erase(0, tail_.size() - kTailBytes);
    }
    line_len_ += chunk.size();
    if (lf == std::string_view::npos) return;
    data.remove_prefix(lf + 1);
    endOfLine();
  }
}

void ResponseScanner::endOfLine() {
  if (asciiStartsWithIgnoreCase(head_, "* BYE ")) saw_bye_ = true;
  auto literal = trailingLiteralSize(tail_);
  head_.clear();
  tail_.clear();
  if (literal) {
    literal_left_ = *literal;
    line_len_ = 1;         // the line goes on after the literal
    head_.assign(1, '~');  // ... and what follows it is not the start of a line
  } else {
    line_len_ = 0;
  }
}

}  // namespace gatehouse::imap
