// The relayed-SMTP guard: command-line starts checked against the refused verbs, DATA content
// skipped only when the back-end's 354 certainly started it.
#include "proxy/smtp/smtp_relay_guard.h"

#include <algorithm>

#include "backends/smtp_reply.h"
#include "proxy/core/ascii.h"

namespace gatehouse::smtp {
namespace {

// Enough of a line for the longest refused verb and for "DATA" with trailing blanks.
constexpr size_t kLineKeep = 16;

// Commands that would change who the back-end thinks the client is, or blind the guard.
constexpr std::string_view kRefusedVerbs[] = {"XCLIENT", "XFORWARD", "STARTTLS", "BDAT"};

// What Postfix's command tokenizer skips before a verb (ISSPACE). Treating more bytes as blank
// than the back-end does could only make the guard refuse more.
bool isBlank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

std::string_view trimEnd(std::string_view s) {
  while (!s.empty() && isBlank(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

bool RelayGuard::fromClient(std::string_view data) {
  if (!refused_.empty()) return false;
  while (!data.empty()) {
    size_t lf = data.find('\n');
    std::string_view part = data.substr(0, lf);
    if (!part.empty()) last_was_data_ = false;
    for (size_t i = 0; i < part.size() && line_.size() < kLineKeep; ++i) {
      char c = part[i];
      if (line_.empty() && isBlank(c)) continue;
      line_.push_back(c);
      if (mode_ == Mode::Command && !checkVerb()) return false;
    }
    // A "." at the very start of a line ends DATA (RFC 5321 4.1.1.4; a line " ." is content, to
    // the back-end too). Blanks after it are allowed here, more than the back-end may allow: the
    // guard never believes it is still in message content when the back-end is not.
    for (size_t i = 0; i < part.size() && dot_ != Dot::No; ++i) {
      char c = part[i];
      if (dot_ == Dot::Start) {
        dot_ = c == '.' ? Dot::Seen : Dot::No;
      } else if (!isBlank(c)) {
        dot_ = Dot::No;
      }
    }
    line_length_ += part.size();
    if (lf == std::string_view::npos) break;
    clientLineEnd();
    data.remove_prefix(lf + 1);
  }
  return true;
}

bool RelayGuard::checkVerb() {
  for (std::string_view verb : kRefusedVerbs) {
    if (asciiEqualsIgnoreCase(line_, verb)) {
      refused_ = std::string(verb);
      return false;
    }
  }
  return true;
}

void RelayGuard::clientLineEnd() {
  if (mode_ == Mode::Data) {
    if (dot_ == Dot::Seen) mode_ = Mode::Command;
  } else {
    ++outstanding_;
    std::string_view line = trimEnd(line_);
    last_was_data_ = asciiEqualsIgnoreCase(line, "DATA");
    const bool ehlo =
        asciiStartsWithIgnoreCase(line, "EHLO") && (line.size() == 4 || isBlank(line[4]));
    if (ehlo) ehlo_filter_.expectReply(outstanding_ - 1);
  }
  line_.clear();
  line_length_ = 0;
  dot_ = Dot::Start;
}

std::string_view RelayGuard::fromBackend(std::string_view data, std::string& scratch) {
  data = ehlo_filter_.filter(data, scratch);
  for (char c : data) {
    if (c == '\n') {
      replyLineEnd();
      continue;
    }
    if (reply_column_ < sizeof(reply_head_)) reply_head_[reply_column_] = c;
    ++reply_column_;
    if (reply_column_ == 3) replyCodeSeen();
  }
  return data;
}

void RelayGuard::replyCodeSeen() {
  std::string_view code(reply_head_, 3);
  if (code == "221" || code == "421") saw_goodbye_ = true;
  // The DATA line is the only command without its reply and the client has sent nothing since:
  // this 354 is its answer, and the back-end now reads message content.
  if (code == "354" && mode_ == Mode::Command && outstanding_ == 1 && last_was_data_ &&
      line_length_ == 0) {
    mode_ = Mode::Data;
    last_was_data_ = false;
    dot_ = Dot::Start;
  }
}

void RelayGuard::replyLineEnd() {
  const std::string_view head(reply_head_, std::min(reply_column_, sizeof reply_head_));
  reply_column_ = 0;
  inside_multiline_ = head.size() == 4 && head[3] == '-';
  if (endsFinalReply(head) && outstanding_ > 0) --outstanding_;
}

}  // namespace gatehouse::smtp
