#include "proxy/imap/imap_line_follower.h"

#include <algorithm>
#include <cstring>

namespace gatehouse::imap {
namespace {

constexpr size_t kMaxLiteralDigits = 19;  // below 2^64

constexpr bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

}  // namespace

std::optional<uint64_t> trailingLiteralSize(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.empty() || line.back() != '}') return std::nullopt;
  line.remove_suffix(1);
  if (!line.empty() && line.back() == '+') line.remove_suffix(1);
  size_t digits = 0;
  while (digits < line.size() && isDigit(line[line.size() - 1 - digits])) ++digits;
  if (digits == 0 || digits == line.size() || line[line.size() - 1 - digits] != '{') {
    return std::nullopt;
  }
  std::string_view number = line.substr(line.size() - digits);
  // Leading zeros are allowed (number = 1*DIGIT) and say nothing about the size.
  while (number.size() > 1 && number.front() == '0') number.remove_prefix(1);
  if (number.size() > kMaxLiteralDigits) return std::nullopt;
  uint64_t n = 0;
  for (char c : number) n = n * 10 + static_cast<uint64_t>(c - '0');
  return n;
}

size_t LineFollower::skipLiteral(size_t available) {
  const uint64_t skip = std::min<uint64_t>(literal_left_, available);
  literal_left_ -= skip;
  return static_cast<size_t>(skip);
}

void LineFollower::takeSegmentBytes(std::string_view bytes) {
  if (in_first_segment_) {
    const size_t n = std::min(bytes.size(), kHeadBytes - head_len_);
    std::memcpy(head_.data() + head_len_, bytes.data(), n);
    head_len_ = static_cast<uint8_t>(head_len_ + n);
    if (!spaced_ && bytes.find(' ') != std::string_view::npos) spaced_ = true;
  }
  if (bytes.size() >= kTailBytes) {
    std::memcpy(tail_.data(), bytes.data() + bytes.size() - kTailBytes, kTailBytes);
    tail_len_ = kTailBytes;
  } else {
    const size_t keep = std::min<size_t>(tail_len_, kTailBytes - bytes.size());
    std::memmove(tail_.data(), tail_.data() + tail_len_ - keep, keep);
    std::memcpy(tail_.data() + keep, bytes.data(), bytes.size());
    tail_len_ = static_cast<uint8_t>(keep + bytes.size());
  }
  line_len_ += bytes.size();
}

bool LineFollower::segmentEndsLine() {
  const auto literal = trailingLiteralSize(std::string_view(tail_.data(), tail_len_));
  tail_len_ = 0;
  if (!literal) return true;
  literal_left_ = *literal;
  line_len_ = 1;  // the line goes on after the literal
  in_first_segment_ = false;
  return false;
}

void LineFollower::startLine() {
  line_len_ = 0;
  head_len_ = 0;
  in_first_segment_ = true;
  spaced_ = false;
}

}  // namespace gatehouse::imap
