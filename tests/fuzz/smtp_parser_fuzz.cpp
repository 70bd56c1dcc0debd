// libFuzzer target for the SMTP command parser, the relayed-SMTP guard and the relayed EHLO reply
// filter: no crash, no UB, and results that do not depend on how the input is split between reads.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "backends/smtp_reply.h"
#include "proxy/smtp/smtp_ehlo_filter.h"
#include "proxy/smtp/smtp_parser.h"
#include "proxy/smtp/smtp_relay_guard.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using gatehouse::smtp::CommandParser;
using gatehouse::smtp::EhloReplyFilter;
using gatehouse::smtp::RelayGuard;
using gatehouse::smtp::Result;
using gatehouse::smtp::ResultKind;

using fuzzing::check;

// Plays a session: next() for commands, nextLine() once after "AUTH <mechanism>", a refused
// BDAT's chunk skipped.
struct Run {
  explicit Run(size_t max_line) : parser(max_line), max_line(max_line) {}

  void feed(std::string_view bytes) {
    fed += bytes.size();
    parser.feed(bytes);
    for (;;) {
      const Result r = want_line ? parser.nextLine() : parser.next();
      if (r.kind == ResultKind::NeedMore) break;
      if (r.kind == ResultKind::Command) {
        const auto& c = r.command;
        check(c.args.size() <= max_line, "line longer than the limit");
        check(c.args.find_first_of(std::string_view("\0\r\n", 3)) == std::string::npos,
              "NUL, CR or LF in a line");
        if (!want_line) {
          check(!c.verb.empty(), "command without verb");
          for (char ch : c.verb)
            check(ch == '-' || (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z'), "bad verb");
        }
      }
      if (!want_line && r.kind == ResultKind::Command && r.command.verb == "BDAT") {
        if (auto size = gatehouse::smtp::bdatChunkSize(r.command.args)) {
          check(*size <= 999999999999999999u, "BDAT size over 18 digits");
          parser.skip(*size);
        }
      }
      const bool was_line = want_line;
      want_line = !was_line && r.kind == ResultKind::Command && r.command.verb == "AUTH" &&
                  r.command.args.find(' ') == std::string::npos;
      results.push_back(std::to_string(static_cast<int>(r.kind)) + "|" +
                        std::to_string(static_cast<int>(r.error)) + "|" + r.command.verb + "|" +
                        r.command.args);
    }
    check(parser.buffered() <= fed, "buffered more than fed");
  }

  CommandParser parser;
  size_t max_line;
  std::vector<std::string> results;
  size_t fed = 0;
  bool want_line = false;
};

void fuzzParser(std::string_view input, size_t max_line, size_t split) {
  Run whole(max_line);
  whole.feed(input);
  Run halves(max_line);
  halves.feed(input.substr(0, split));
  halves.feed(input.substr(split));
  Run single(max_line);
  for (char c : input) single.feed(std::string_view(&c, 1));
  check(whole.results == halves.results, "split input gives other results");
  check(whole.results == single.results, "byte-by-byte input gives other results");
  const std::string remainder = whole.parser.takeRemainder();
  check(remainder == halves.parser.takeRemainder(), "remainder differs");
  check(remainder == single.parser.takeRemainder(), "remainder differs byte by byte");
  check(input.substr(input.size() - remainder.size()) == remainder, "remainder not a suffix");
}

struct GuardState {
  bool refused = false;
  std::string verb;
  bool line_start = true;
  bool goodbye = false;
  std::string to_client;  // the back-end bytes as the client gets them (EHLO replies filtered)
  bool operator==(const GuardState&) const = default;
};

// '|' alternates between client and back-end bytes.
GuardState playGuard(std::string_view input, bool bytewise) {
  RelayGuard guard;
  bool client = true;
  bool refused = false;
  std::string to_client;
  while (true) {
    size_t bar = input.find('|');
    std::string_view part = input.substr(0, bar);
    if (client && !refused) {
      if (bytewise) {
        for (char c : part) refused = refused || !guard.fromClient(std::string_view(&c, 1));
      } else {
        refused = !guard.fromClient(part);
      }
    } else if (!client) {
      if (bytewise) {
        for (char c : part) {
          std::string scratch;
          to_client += guard.fromBackend(std::string_view(&c, 1), scratch);
        }
      } else {
        std::string scratch;
        to_client += guard.fromBackend(part, scratch);
      }
    }
    if (bar == std::string_view::npos) break;
    input.remove_prefix(bar + 1);
    client = !client;
  }
  return {refused, guard.refusedVerb(), guard.atReplyLineStart(), guard.backendSaidGoodbye(),
          to_client};
}

// What the client gets of back-end bytes read in two pieces cut at `split` (or one byte at a
// time), the filter expecting EHLO replies first and third.
std::string filterEhlo(std::string_view input, size_t split, bool bytewise) {
  EhloReplyFilter filter;
  filter.expectReply(0);
  filter.expectReply(2);  // and the third reply too, as after "EHLO, NOOP, EHLO"
  std::string out;
  auto feed = [&](std::string_view part) {
    std::string scratch;
    out += filter.filter(part, scratch);
  };
  if (bytewise) {
    for (char c : input) feed(std::string_view(&c, 1));
  } else {
    feed(input.substr(0, split));
    feed(input.substr(split));
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size < 2) return 0;
  const std::string_view input(reinterpret_cast<const char*>(bytes) + 2, size - 2);
  const size_t split = input.empty() ? 0 : bytes[1] * input.size() / 255;
  if (bytes[0] & 4) {
    const std::string whole = filterEhlo(input, input.size(), false);
    check(whole == filterEhlo(input, split, false), "EHLO filter depends on the split");
    check(whole == filterEhlo(input, 0, true), "EHLO filter depends on read sizes");
    check(whole.size() <= input.size(), "EHLO filter added bytes");
    return 0;
  }
  if (bytes[0] & 2) {
    check(playGuard(input, false) == playGuard(input, true), "guard depends on read sizes");
    return 0;
  }
  fuzzParser(input, (bytes[0] & 1) ? 16 : 512, split);  // a small limit reaches the limit paths
  if (auto reply = gatehouse::smtp::parseReplyLine(input.substr(0, input.find('\n')))) {
    check(reply->code >= 200 && reply->code <= 559, "reply code out of range");
  }
  const std::string x = gatehouse::smtp::xtext(input);
  for (char c : x) check(c > ' ' && c <= '~' && c != '=', "xtext not printable");
  return 0;
}
