// Where relayed POP3 responses end: client command keywords queue the kind of answer each one
// gets (RFC 1939, RFC 2449), and the back-end stream is followed through status lines and
// dot-terminated bodies.
#include "proxy/pop3/pop3_relay_tracker.h"

#include "proxy/core/ascii.h"

namespace gatehouse::pop3 {
namespace {

// Enough of a client line to see its keyword and whether an argument follows ("UIDL 1"), and
// short enough for std::string's inline buffer: following a line allocates nothing.
constexpr size_t kClientHead = 15;
// Enough of a status line to tell "+OK" from "-ERR".
constexpr size_t kStatusHead = 3;
// A client that pipelines more commands than this ahead of the back-end's answers is not
// followed further (memory stays bounded); the session then closes without injecting anything.
constexpr size_t kMaxPending = 4096;

}  // namespace

void RelayTracker::fromClient(std::string_view data) {
  while (!data.empty() && !lost_) {
    const size_t lf = data.find('\n');
    const std::string_view part = data.substr(0, lf);
    if (client_head_.size() < kClientHead) {
      client_head_.append(part.substr(0, kClientHead - client_head_.size()));
    }
    if (lf == std::string_view::npos) return;
    data.remove_prefix(lf + 1);
    clientLineDone();
    client_head_.clear();
  }
}

void RelayTracker::clientLineDone() {
  std::string_view line = client_head_;
  const size_t end = line.find_first_of(" \r");
  const std::string keyword = asciiUpper(line.substr(0, end));
  bool has_argument = false;
  if (end != std::string_view::npos) {
    const std::string_view after = line.substr(end);
    has_argument = after.find_first_not_of(" \r") != std::string_view::npos;
  }
  Expect expect = Expect::SingleLine;
  if (keyword == "CAPA" || keyword == "RETR" || keyword == "TOP") {
    expect = Expect::MultiLine;
  } else if (keyword == "LIST" || keyword == "UIDL" || keyword == "AUTH") {
    // With an argument: one message's line (or, for AUTH, a refusal in TRANSACTION state).
    expect = has_argument ? Expect::SingleLine : Expect::MultiLine;
  } else if (keyword == "QUIT") {
    expect = Expect::Quit;
  }
  if (pending_.size() - pending_head_ >= kMaxPending) {
    lost_ = true;
    std::vector<Expect>().swap(pending_);
    pending_head_ = 0;
    return;
  }
  if (pending_head_ > 0 && pending_head_ * 2 >= pending_.size()) {
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<ptrdiff_t>(pending_head_));
    pending_head_ = 0;
  }
  pending_.push_back(expect);
}

void RelayTracker::fromBackend(std::string_view data) {
  while (!data.empty()) {
    switch (backend_) {
      case Backend::ResponseStart:
        status_head_.clear();
        backend_ = Backend::StatusLine;
        break;
      case Backend::StatusLine: {
        const size_t lf = data.find('\n');
        if (status_head_.size() < kStatusHead) {
          status_head_.append(data.substr(0, lf).substr(0, kStatusHead - status_head_.size()));
        }
        if (lf == std::string_view::npos) return;
        data.remove_prefix(lf + 1);
        statusLineDone();
        break;
      }
      case Backend::BodyLineStart:
        if (data.front() == '.') {
          backend_ = Backend::BodyDot;
          data.remove_prefix(1);
        } else {
          backend_ = Backend::BodyLine;
        }
        break;
      case Backend::BodyDot:
        // "." CRLF ends the body; ".." is a dot-stuffed line (RFC 1939 section 3).
        if (data.front() == '\r') {
          backend_ = Backend::BodyDotCr;
          data.remove_prefix(1);
        } else if (data.front() == '\n') {
          data.remove_prefix(1);
          responseDone();
        } else {
          backend_ = Backend::BodyLine;
        }
        break;
      case Backend::BodyDotCr:
        if (data.front() == '\n') {
          data.remove_prefix(1);
          responseDone();
        } else {
          backend_ = Backend::BodyLine;
        }
        break;
      case Backend::BodyLine: {
        const size_t lf = data.find('\n');
        if (lf == std::string_view::npos) return;
        data.remove_prefix(lf + 1);
        backend_ = Backend::BodyLineStart;
        break;
      }
    }
  }
}

void RelayTracker::statusLineDone() {
  const Expect expect =
      pending_head_ == pending_.size() ? Expect::SingleLine : pending_[pending_head_];
  // Only a positive answer carries a body; "-ERR" is always one line.
  if (expect == Expect::MultiLine && status_head_ == "+OK") {
    backend_ = Backend::BodyLineStart;
    return;
  }
  responseDone();
}

void RelayTracker::responseDone() {
  backend_ = Backend::ResponseStart;
  if (pending_head_ == pending_.size()) return;  // unsolicited (e.g. the back-end's timeout notice)
  if (pending_[pending_head_] == Expect::Quit) quit_answered_ = true;
  if (++pending_head_ == pending_.size()) {
    pending_.clear();  // keeps its small capacity: the next command reuses it
    pending_head_ = 0;
  }
}

}  // namespace gatehouse::pop3
