// Counts the commands a client sends through the relay (a line "tag SP ...", with its literals),
// so that a back-end that closes while it still owes answers can be told from one that closed
// with nothing owed. IDLE's "DONE" and SASL responses carry no space: they are not commands.
#pragma once

#include <cstdint>
#include <string_view>

#include "proxy/imap/imap_line_follower.h"

namespace gatehouse::imap {

class CommandCounter {
 public:
  void feed(std::string_view data) {
    lines_.feed(data, [this](const LineStart& line) {
      if (line.spaced) ++commands_;
    });
  }
  uint64_t commands() const { return commands_; }

 private:
  LineFollower lines_;
  uint64_t commands_ = 0;
};

}  // namespace gatehouse::imap
