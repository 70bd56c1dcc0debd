// libFuzzer target for the pre-auth IMAP parser and the string helpers: no crash, no UB, and
// results that do not depend on how the input is split between reads.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/core/base64.h"
#include "proxy/imap/imap_id.h"
#include "proxy/imap/imap_parser.h"
#include "proxy/imap/imap_string.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using gatehouse::imap::CommandParser;
using gatehouse::imap::ParserLimits;
using gatehouse::imap::Result;
using gatehouse::imap::ResultKind;
using gatehouse::imap::TokenKind;

using fuzzing::check;

bool isAtomChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u < 0x7f && std::string_view("(){%*\"\\]").find(c) == std::string_view::npos;
}

void checkCommand(const Result& result) {
  const auto& command = result.command;
  check(!command.tag.empty(), "command without tag");
  for (char c : command.tag) check(c != '+' && (isAtomChar(c) || c == ']'), "bad tag char");
  check(!command.name.empty(), "command without name");
  for (char c : command.name) check(isAtomChar(c) && !(c >= 'a' && c <= 'z'), "bad name char");
  int depth = 0;
  for (const auto& token : command.args) {
    if (token.kind == TokenKind::ListStart) ++depth;
    if (token.kind == TokenKind::ListEnd) check(--depth >= 0, "list closed before opened");
    check(token.value.find('\0') == std::string::npos, "NUL in a token");
    if (token.kind == TokenKind::Atom) check(!token.value.empty(), "empty atom");
  }
  check(depth == 0, "unbalanced list");
  // The session checks ID's arguments on whatever the parser produced: it must hold for any.
  if (isValidIdArgument(command.args)) {
    check(command.args.size() == 1 || command.args.size() <= 62, "ID with more than 30 pairs");
  }
}

void checkResult(const Result& result) {
  if (result.kind == ResultKind::Command) checkCommand(result);
  if (result.kind == ResultKind::Error) {
    check(!result.error.message.empty() && !result.error.tag.empty(), "empty error");
    check(result.error.message.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos,
          "error message unsafe to send");
  }
}

std::string render(const Result& result) {
  std::string out = std::to_string(static_cast<int>(result.kind)) + "|" + result.command.tag + "|" +
                    result.command.name + "|" + result.error.tag + "|" + result.error.message +
                    (result.error.fatal ? "|F" : "|-");
  for (const auto& token : result.command.args) {
    out += "|" + std::to_string(static_cast<int>(token.kind)) + ":" + token.value;
  }
  return out;
}

// Plays a session: next() for commands, nextLine() once after AUTHENTICATE.
struct Run {
  explicit Run(ParserLimits limits) : parser(limits) {}

  void feed(std::string_view bytes) {
    if (failed) return;
    fed += bytes.size();
    parser.feed(bytes);
    for (;;) {
      const Result result = want_line ? parser.nextLine() : parser.next();
      if (result.kind == ResultKind::NeedMore) break;
      if (!want_line) checkResult(result);
      want_line =
          !want_line && result.kind == ResultKind::Command && result.command.name == "AUTHENTICATE";
      results.push_back(render(result));
      if (result.kind == ResultKind::Error && result.error.fatal) {
        failed = true;
        break;
      }
    }
    check(failed || parser.buffered() <= fed, "buffered more than fed");
  }

  CommandParser parser;
  std::vector<std::string> results;
  size_t fed = 0;
  bool want_line = false;
  bool failed = false;
};

void checkStrings(std::string_view data) {
  const auto decoded = gatehouse::base64Decode(gatehouse::base64Encode(data));
  check(decoded && *decoded == data, "base64 round trip");
  // Strict decoding accepts only canonical text, so encoding gives it back unchanged.
  if (const auto strict = gatehouse::base64Decode(data)) {
    check(gatehouse::base64Encode(*strict) == data, "base64 not canonical");
  }
  if (data.find('\0') != std::string_view::npos || data.size() > 4000) return;
  CommandParser parser(ParserLimits{});
  parser.feed("a LOGIN " + gatehouse::imap::imapAstring(data, false) + " x\r\n");
  Result result = parser.next();
  if (result.kind == ResultKind::Continue) result = parser.next();
  check(result.kind == ResultKind::Command && result.command.args.size() == 2 &&
            result.command.args[0].kind == TokenKind::String &&
            result.command.args[0].value == data,
        "astring round trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size < 2) return 0;
  ParserLimits limits;
  if (bytes[0] & 1) {  // small limits reach the limit paths with short inputs
    limits.max_line = 40;
    limits.max_literal = 20;
    limits.max_command = 100;
  } else {
    limits.max_line = 300;
    limits.max_literal = 200;
    limits.max_command = 1000;
  }
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
  if (!whole.failed) {
    check(whole.parser.buffered() == single.parser.buffered(), "buffered() differs");
    const std::string remainder = whole.parser.takeRemainder();
    check(remainder == halves.parser.takeRemainder(), "remainder differs");
    check(input.substr(input.size() - remainder.size()) == remainder, "remainder not a suffix");
    check(whole.parser.buffered() == 0, "bytes left after takeRemainder");
  }
  if (bytes[0] & 2) checkStrings(input);
  return 0;
}
