// Counts the commands a client sends through the relay (a line "tag SP ...", with its literals),
// so that a back-end that closes while it still owes answers can be told from one that closed
// with nothing owed. IDLE's "DONE" and SASL responses carry no space: they are not commands.
// An IDLE not yet ended by DONE is owed nothing: a back-end closes it silently when the client
// ends its side (Dovecot does).
#pragma once

#include <cstdint>
#include <string_view>

#include "proxy/core/ascii.h"
#include "proxy/imap/imap_line_follower.h"

namespace gatehouse::imap {

class CommandCounter {
 public:
  void feed(std::string_view data) {
    lines_.feed(data, [this](const LineStart& line) {
      idling_ = false;
      if (!line.spaced) return;
      ++commands_;
      std::string_view verb = line.head.substr(line.head.find(' ') + 1);
      verb = verb.substr(0, verb.find_first_of(" \r"));
      idling_ = asciiEqualsIgnoreCase(verb, "IDLE");
    });
  }
  uint64_t commands() const { return commands_; }
  // The commands whose tagged answer the client waits for.
  uint64_t awaitedAnswers() const { return commands_ - (idling_ ? 1 : 0); }

 private:
  LineFollower lines_;
  uint64_t commands_ = 0;
  bool idling_ = false;
};

}  // namespace gatehouse::imap
