// Follows an IMAP byte stream, either direction, through lines and the literals they announce
// ("{n}" or "{n+}" before CRLF, RFC 3501 section 4.3, RFC 7888): which bytes start a line and
// where each line ends, skipping literal payloads in bulk. Holds a fixed few bytes, whatever it
// is fed: the relay runs one per direction for the whole life of a session. Pure code.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace gatehouse::imap {

// How a line (with every literal it carries) began.
struct LineStart {
  std::string_view head;  // its first bytes, up to LineFollower::kHeadBytes, before any literal
  bool spaced = false;    // a space came before the first literal or the line end ("tag SP ...")
};

class LineFollower {
 public:
  static constexpr size_t kHeadBytes = 24;  // a tag and a verb

  // Follows `data`, calling on_line(const LineStart&) as each line ends.
  template <typename OnLine>
  void feed(std::string_view data, OnLine&& on_line) {
    while (!data.empty()) {
      if (literal_left_ > 0) {
        data.remove_prefix(skipLiteral(data.size()));
        continue;
      }
      const size_t lf = data.find('\n');
      takeSegmentBytes(data.substr(0, lf));
      if (lf == std::string_view::npos) return;
      data.remove_prefix(lf + 1);
      if (segmentEndsLine()) {
        on_line(LineStart{std::string_view(head_.data(), head_len_), spaced_});
        startLine();
      }
    }
  }

  // Between lines: not inside a line, nor inside a literal.
  bool atLineStart() const { return literal_left_ == 0 && line_len_ == 0; }

 private:
  static constexpr size_t kTailBytes = 24;  // "{" + 20 digits + "+}\r"

  size_t skipLiteral(size_t available);
  void takeSegmentBytes(std::string_view bytes);
  // At a LF: true if the line ends here, false if it announced a literal and goes on after it.
  bool segmentEndsLine();
  void startLine();

  uint64_t literal_left_ = 0;
  uint64_t line_len_ = 0;
  std::array<char, kHeadBytes> head_{};
  std::array<char, kTailBytes> tail_{};  // last bytes of the current segment, to spot "{123}"
  uint8_t head_len_ = 0;
  uint8_t tail_len_ = 0;
  bool in_first_segment_ = true;
  bool spaced_ = false;
};

// The size announced by a line that ends in "{n}" or "{n+}" (before CRLF), if any.
std::optional<uint64_t> trailingLiteralSize(std::string_view line);

}  // namespace gatehouse::imap
