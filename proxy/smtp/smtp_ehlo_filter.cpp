#include "proxy/smtp/smtp_ehlo_filter.h"

#include <algorithm>
#include <utility>

#include "backends/smtp_reply.h"
#include "proxy/core/ascii.h"

namespace gatehouse::smtp {
namespace {

// Longer than any EHLO reply line (RFC 5321 4.5.3.1.5: 512 bytes); past it the filter steps aside.
constexpr size_t kMaxLine = 1024;
// EHLOs awaiting their reply that the filter keeps track of; the replies of more are passed as
// they come (the relay guard still refuses what they offer).
constexpr size_t kMaxTargets = 64;

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

void EhloReplyFilter::expectReply(uint64_t replies_before) {
  const uint64_t target = replies_seen_ + replies_before;
  // Targets only grow; one that does not (the counts went out of step) is left out.
  if (targets_.size() < kMaxTargets && (targets_.empty() || target > targets_.back())) {
    targets_.push_back(target);
  }
}

std::string_view EhloReplyFilter::filter(std::string_view data, std::string& scratch) {
  if (targets_.empty()) {  // the usual case: count replies, pass every byte
    for (std::string_view rest = data; !rest.empty();) {
      const size_t lf = rest.find('\n');
      track(rest.substr(0, lf));
      if (lf == std::string_view::npos) break;
      replyLineEnded();
      rest.remove_prefix(lf + 1);
    }
    return data;
  }
  scratch.clear();
  filterLines(data, scratch);
  return scratch;
}

void EhloReplyFilter::filterLines(std::string_view data, std::string& out) {
  while (!data.empty()) {
    const size_t lf = data.find('\n');
    const size_t take = lf == std::string_view::npos ? data.size() : lf + 1;
    const std::string_view part = data.substr(0, take);
    data.remove_prefix(take);
    if (column_ == 0 && !buffering_) {  // a line starts: is it one of the EHLO reply's?
      buffering_ = !stepped_aside_ && !targets_.empty() && targets_.front() == replies_seen_;
    }
    track(part.substr(0, lf == std::string_view::npos ? part.size() : part.size() - 1));
    if (!buffering_) {
      out += part;
    } else {
      line_ += part;
      if (line_.size() > kMaxLine) {
        stepAside(out);  // not an EHLO reply as this filter knows them
      } else if (lf != std::string_view::npos) {
        lineDone(out);
      }
    }
    if (lf != std::string_view::npos) replyLineEnded();
  }
}

void EhloReplyFilter::lineDone(std::string& out) {
  buffering_ = false;
  const std::string_view view = line_;
  const bool well_formed = view.size() >= 5 && view.substr(0, 3) == "250" &&
                           (view[3] == '-' || view[3] == ' ' || view[3] == '\r');
  if (!well_formed) {  // a refusal (5xx), or something else: passed on as it is
    stepAside(out);
    return;
  }
  std::string line;
  line.swap(line_);
  const bool final = line[3] != '-';
  // The first line ("250-host greets") names no extension; it is kept like the others.
  const bool first = std::exchange(first_line_, false);
  if (first || !offersRefused(line)) {
    out += held_;
    held_.clear();
    if (final) {
      out += line;
    } else {
      held_ = std::move(line);
    }
    return;
  }
  if (final) {  // the last line goes: the one kept before it ends the reply instead
    if (!held_.empty()) held_[3] = ' ';
    out += held_;
    held_.clear();
  }
}

void EhloReplyFilter::stepAside(std::string& out) {
  out += held_;
  out += line_;
  held_.clear();
  line_.clear();
  buffering_ = false;
  stepped_aside_ = true;
}

void EhloReplyFilter::track(std::string_view part) {
  for (size_t i = 0; i < part.size() && column_ + i < sizeof head_; ++i)
    head_[column_ + i] = part[i];
  column_ += part.size();
}

void EhloReplyFilter::replyLineEnded() {
  const bool final = endsFinalReply(std::string_view(head_, std::min(column_, sizeof head_)));
  column_ = 0;
  if (!final) return;
  if (!targets_.empty() && targets_.front() == replies_seen_) {  // the EHLO reply is complete
    targets_.pop_front();
    first_line_ = true;
    stepped_aside_ = false;
  }
  ++replies_seen_;
}

}  // namespace gatehouse::smtp
