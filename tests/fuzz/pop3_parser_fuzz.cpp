// libFuzzer target for the pre-login POP3 parser and the relay tracker: no crash, no UB, and
// results that do not depend on how the input is split between reads.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/pop3/pop3_parser.h"
#include "proxy/pop3/pop3_relay_tracker.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using gatehouse::pop3::CommandParser;
using gatehouse::pop3::ParserLimits;
using gatehouse::pop3::RelayTracker;
using gatehouse::pop3::Result;
using gatehouse::pop3::ResultKind;

using fuzzing::check;

void checkResult(const Result& r, size_t max_line) {
  if (r.kind == ResultKind::Error) {
    check(!r.error.empty(), "empty error");
    check(r.error.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos,
          "error message unsafe to send");
  }
  if (r.kind == ResultKind::Line) {
    check(r.line.size() <= max_line, "line over the limit");
    check(r.line.find('\0') == std::string::npos, "NUL in a line");
  }
  if (r.kind == ResultKind::Command) {
    const auto& c = r.command;
    check(!c.name.empty() && c.name.size() <= 16, "bad keyword length");
    for (char ch : c.name)
      check(ch > 0x20 && ch < 0x7f && !(ch >= 'a' && ch <= 'z'), "bad keyword");
    check(c.rest.size() < max_line, "rest over the limit");
    check(c.rest.find('\0') == std::string::npos, "NUL in arguments");
    for (const auto& arg : c.args) {
      check(!arg.empty() && arg.find(' ') == std::string::npos, "bad argument");
      check(c.rest.find(arg) != std::string::npos, "argument not from the line");
    }
  }
}

std::string render(const Result& r) {
  std::string out = std::to_string(static_cast<int>(r.kind)) + "|" + r.command.name + "|" +
                    r.command.rest + "|" + r.line + "|" + r.error;
  for (const auto& arg : r.command.args) out += "|" + arg;
  return out;
}

// Plays a session: nextLine() once after each "AUTH mechanism" without an initial response.
struct Run {
  explicit Run(ParserLimits limits) : parser(limits), max_line(limits.max_line) {}

  void feed(std::string_view bytes) {
    fed += bytes.size();
    parser.feed(bytes);
    for (;;) {
      const Result r = want_line ? parser.nextLine() : parser.next();
      if (r.kind == ResultKind::NeedMore) break;
      checkResult(r, max_line);
      want_line = !want_line && r.kind == ResultKind::Command && r.command.name == "AUTH" &&
                  r.command.args.size() == 1;
      results.push_back(render(r));
    }
    check(parser.buffered() <= fed, "buffered more than fed");
    // Between calls only a partial line is held, never more than one line's worth.
    check(parser.buffered() <= max_line + 1, "buffered more than one line");
  }

  CommandParser parser;
  size_t max_line;
  std::vector<std::string> results;
  size_t fed = 0;
  bool want_line = false;
};

// The tracker: the first part of the input is what the client sent, the rest the back-end.
void checkTracker(std::string_view input, size_t split) {
  const std::string_view client = input.substr(0, split);
  const std::string_view backend = input.substr(split);
  RelayTracker whole;
  whole.fromClient(client);
  whole.fromBackend(backend);
  RelayTracker single;
  for (char c : client) single.fromClient(std::string_view(&c, 1));
  for (char c : backend) single.fromBackend(std::string_view(&c, 1));
  check(whole.betweenResponses() == single.betweenResponses(), "tracker depends on the split");
  check(whole.quitAnswered() == single.quitAnswered(), "tracker QUIT depends on the split");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size < 2) return 0;
  ParserLimits limits;
  limits.max_line = (bytes[0] & 1) ? 20 : 255;  // small limits reach the limit paths quickly
  const std::string_view input(reinterpret_cast<const char*>(bytes) + 2, size - 2);
  const size_t split = input.empty() ? 0 : bytes[1] * input.size() / 255;

  Run whole(limits);
  whole.feed(input);
  Run halves(limits);
  halves.feed(input.substr(0, split));
  halves.feed(input.substr(split));
  Run single(limits);
  for (char c : input) single.feed(std::string_view(&c, 1));

  check(whole.results == halves.results, "split input gives other results");
  check(whole.results == single.results, "byte-by-byte input gives other results");
  check(whole.parser.buffered() == single.parser.buffered(), "buffered() differs");
  const std::string remainder = whole.parser.takeRemainder();
  check(remainder == halves.parser.takeRemainder(), "remainder differs");
  check(input.substr(input.size() - remainder.size()) == remainder, "remainder not a suffix");
  check(whole.parser.buffered() == 0, "bytes left after takeRemainder");

  checkTracker(input, split);
  return 0;
}
