#include "proxy/smtp/smtp_ehlo_filter.h"

#include "proxy/core/ascii.h"

namespace gatehouse::smtp {
namespace {

// Longer than any EHLO reply line (RFC 5321 4.5.3.1.5: 512 bytes); past it the filter steps aside.
constexpr size_t kMaxLine = 1024;

constexpr std::string_view kRefusedExtensions[] = {"XCLIENT", "XFORWARD", "STARTTLS", "CHUNKING"};

// "250-KEYWORD params\r\n" or "250 KEYWORD\r\n": whether KEYWORD is one the relay refuses.
bool offersRefused(std::string_view line) {
  std::string_view keyword = line.substr(4);
  const size_t end = keyword.find_first_of(" \r\n");
  keyword = keyword.substr(0, end);
  for (std::string_view refused : kRefusedExtensions) {
    if (asciiEqualsIgnoreCase(keyword, refused)) return true;
  }
  return false;
}

}  // namespace

void EhloReplyFilter::expectReply() {
  state_ = State::FirstLine;
  line_.clear();
  held_.clear();
}

void EhloReplyFilter::filter(std::string_view data, std::string& out) {
  while (!data.empty() && active()) {
    const size_t lf = data.find('\n');
    const size_t take = lf == std::string_view::npos ? data.size() : lf + 1;
    line_.append(data.substr(0, take));
    data.remove_prefix(take);
    if (line_.size() > kMaxLine) {
      passRest(out);  // not an EHLO reply as this filter knows them
    } else if (lf != std::string_view::npos) {
      lineDone(out);
    }
  }
  out.append(data);
}

void EhloReplyFilter::lineDone(std::string& out) {
  const std::string_view view = line_;
  const bool well_formed = view.size() >= 5 && view.substr(0, 3) == "250" &&
                           (view[3] == '-' || view[3] == ' ' || view[3] == '\r');
  if (!well_formed) {  // a refusal (5xx), or something else: passed on as it is
    passRest(out);
    return;
  }
  std::string line;
  line.swap(line_);
  const bool final = line[3] != '-';
  // The first line ("250-host greets") names no extension; it is kept like the others.
  const bool first = state_ == State::FirstLine;
  state_ = State::Extensions;
  if (first || !offersRefused(line)) {
    out += held_;
    held_.clear();
    if (final) {
      out += line;
      state_ = State::Idle;
    } else {
      held_ = std::move(line);
    }
    return;
  }
  if (final) {  // the last line goes: the one kept before it ends the reply instead
    if (!held_.empty()) held_[3] = ' ';
    out += held_;
    held_.clear();
    state_ = State::Idle;
  }
}

void EhloReplyFilter::passRest(std::string& out) {
  out += held_;
  out += line_;
  held_.clear();
  line_.clear();
  state_ = State::Idle;
}

}  // namespace gatehouse::smtp
