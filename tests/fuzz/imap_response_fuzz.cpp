// libFuzzer: back-end output must never crash the response parser or the relay's scanners, and
// the scanners' verdicts (response side, command side) must not depend on how the bytes were
// split into reads.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "backends/imap_response.h"
#include "proxy/imap/imap_command_counter.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t pos = 0;
  while (pos < input.size()) {
    size_t lf = input.find('\n', pos);
    std::string_view line = input.substr(pos, lf == std::string_view::npos ? lf : lf - pos);
    if (auto r = gatehouse::imap::parseResponseLine(line)) {
      gatehouse::imap::splitCapabilities(r->code);
    }
    gatehouse::imap::trailingLiteralSize(line);
    if (lf == std::string_view::npos) break;
    pos = lf + 1;
  }
  gatehouse::imap::ResponseScanner whole;
  whole.feed(input);
  gatehouse::imap::ResponseScanner split;
  size_t cut = size > 0 ? data[0] % (size + 1) : 0;
  split.feed(input.substr(0, cut));
  split.feed(input.substr(cut));
  if (whole.atLineStart() != split.atLineStart() || whole.sawBye() != split.sawBye() ||
      whole.taggedResponses() != split.taggedResponses()) {
    abort();
  }
  gatehouse::imap::CommandCounter commands_whole;
  commands_whole.feed(input);
  gatehouse::imap::CommandCounter commands_split;
  commands_split.feed(input.substr(0, cut));
  commands_split.feed(input.substr(cut));
  if (commands_whole.commands() != commands_split.commands()) abort();
  return 0;
}
