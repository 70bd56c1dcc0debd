// Unit tests for the pre-login POP3 command parser. Every input is also fed one byte at a time
// and split in two at every offset: the results must not depend on how bytes arrive.
#include "proxy/pop3/pop3_parser.h"

#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::pop3 {
namespace {

using namespace std::string_literals;

// One line per result, so that Catch prints a readable difference.
std::string render(const Result& result) {
  switch (result.kind) {
    case ResultKind::NeedMore:
      return "MORE";
    case ResultKind::Line:
      return "LINE [" + result.line + "]";
    case ResultKind::Error:
      return "ERR " + result.error;
    case ResultKind::Command: {
      std::string out = "CMD " + result.command.name;
      for (const std::string& arg : result.command.args) out += " <" + arg + ">";
      out += " rest=[" + result.command.rest + "]";
      return out;
    }
  }
  return "?";
}

// Plays a session: next() for commands, nextLine() for the line after each "AUTH x" without an
// initial response (as the session does for a SASL continuation).
struct Run {
  explicit Run(ParserLimits limits) : parser(limits) {}

  void feed(std::string_view bytes) {
    parser.feed(bytes);
    for (;;) {
      const Result r = want_line ? parser.nextLine() : parser.next();
      if (r.kind == ResultKind::NeedMore) break;
      want_line = !want_line && r.kind == ResultKind::Command && r.command.name == "AUTH" &&
                  r.command.args.size() == 1;
      out.push_back(render(r));
    }
  }

  CommandParser parser;
  std::vector<std::string> out;
  bool want_line = false;
};

ParserLimits smallLimits() {
  ParserLimits limits;
  limits.max_line = 20;
  return limits;
}

// Feeds `input` whole, byte by byte and split at every offset; all must give `expected`, and the
// same remainder.
void check(std::string_view input, const std::vector<std::string>& expected,
           std::string_view remainder = {}, ParserLimits limits = smallLimits()) {
  Run whole(limits);
  whole.feed(input);
  CHECK(whole.out == expected);
  CHECK(whole.parser.buffered() == remainder.size());
  CHECK(whole.parser.takeRemainder() == remainder);
  CHECK(whole.parser.buffered() == 0);

  Run single(limits);
  for (char c : input) single.feed(std::string_view(&c, 1));
  CHECK(single.out == expected);
  CHECK(single.parser.takeRemainder() == remainder);

  for (size_t split = 0; split <= input.size(); ++split) {
    Run halves(limits);
    halves.feed(input.substr(0, split));
    halves.feed(input.substr(split));
    INFO("split at " << split);
    CHECK(halves.out == expected);
    CHECK(halves.parser.takeRemainder() == remainder);
  }
}

TEST_CASE("pop3 parser: keywords and arguments", "[pop3]") {
  check("CAPA\r\n", {"CMD CAPA rest=[]"});
  check("capa\r\nStls\n", {"CMD CAPA rest=[]", "CMD STLS rest=[]"});
  check("USER alice\r\n", {"CMD USER <alice> rest=[alice]"});
  check("LIST  1 \r\n", {"CMD LIST <1> rest=[ 1 ]"});
  check("TOP 1 10\r\n", {"CMD TOP <1> <10> rest=[1 10]"});
  check("XCLIENT\r\n", {"CMD XCLIENT rest=[]"});
}

TEST_CASE("pop3 parser: PASS keeps the rest of the line byte-exact", "[pop3]") {
  check("PASS  a b\t\xc3\xa4 \r\n", {"CMD PASS <a> <b\t\xc3\xa4> rest=[ a b\t\xc3\xa4 ]"});
  // A CR inside the line is a byte of it; only the one before LF is a line end.
  check("PASS a\rb\r\n", {"CMD PASS <a\rb> rest=[a\rb]"});
  check("PASS x\r\r\n", {"CMD PASS <x\r> rest=[x\r]"});
}

TEST_CASE("pop3 parser: invalid lines are errors and parsing goes on", "[pop3]") {
  check("\r\nCAPA\r\n", {"ERR Empty command.", "CMD CAPA rest=[]"});
  check(" CAPA\r\n", {"ERR Empty command."});
  check("TOOLONGKEYWORD123\r\nQUIT\r\n", {"ERR Unknown command.", "CMD QUIT rest=[]"});
  check("CA\x01PA\r\n", {"ERR Unknown command."});
  check("C\xc3\xa4PA\r\n", {"ERR Unknown command."});
  check("USER a\0b\r\nCAPA\r\n"s, {"ERR NUL character in command.", "CMD CAPA rest=[]"});
}

TEST_CASE("pop3 parser: line length limit", "[pop3]") {
  const std::string fits(20, 'x');  // max_line 20: content of exactly 20 bytes is fine
  check("PASS " + fits.substr(5) + "\r\n",
        {"CMD PASS <" + fits.substr(5) + "> rest=[" + fits.substr(5) + "]"});
  check("PASS " + fits.substr(5) + "\n",
        {"CMD PASS <" + fits.substr(5) + "> rest=[" + fits.substr(5) + "]"});
  // One byte more: an error, then the next line is read normally.
  check("PASS " + fits.substr(4) + "\r\nCAPA\r\n", {"ERR Line too long.", "CMD CAPA rest=[]"});
  check("PASS " + fits.substr(4) + "\nCAPA\r\n", {"ERR Line too long.", "CMD CAPA rest=[]"});
  // A CR that is not part of the line end counts.
  check(fits + "\r\rCAPA\nQUIT\n", {"ERR Line too long.", "CMD QUIT rest=[]"});
  // An overlong line is reported before its end arrives, and what follows it is dropped.
  check(std::string(100, 'y'), {"ERR Line too long."});
  check(std::string(100, 'y') + "\r\nCAPA\r\n", {"ERR Line too long.", "CMD CAPA rest=[]"});
  // Length is checked before NUL, whatever the split.
  check(std::string(30, '\0') + "\n", {"ERR Line too long."});
}

TEST_CASE("pop3 parser: raw lines for SASL continuations", "[pop3]") {
  check("AUTH PLAIN\r\nAGFsaWNlAHB3\r\nCAPA\r\n",
        {"CMD AUTH <PLAIN> rest=[PLAIN]", "LINE [AGFsaWNlAHB3]", "CMD CAPA rest=[]"});
  check("AUTH LOGIN\r\n*\r\n", {"CMD AUTH <LOGIN> rest=[LOGIN]", "LINE [*]"});
  check("AUTH LOGIN\r\n\r\n", {"CMD AUTH <LOGIN> rest=[LOGIN]", "LINE []"});
  check("AUTH PLAIN\r\n" + std::string(25, 'Q') + "\r\nCAPA\r\n",
        {"CMD AUTH <PLAIN> rest=[PLAIN]", "ERR Line too long.", "CMD CAPA rest=[]"});
  check("AUTH PLAIN\r\na\0\r\n"s,
        {"CMD AUTH <PLAIN> rest=[PLAIN]", "ERR NUL character in command."});
}

TEST_CASE("pop3 parser: remainder after the last command is byte-exact", "[pop3]") {
  check("USER a\r\nPASS b\r\nSTAT\r\nRETR 1",
        {"CMD USER <a> rest=[a]", "CMD PASS <b> rest=[b]", "CMD STAT rest=[]"}, "RETR 1");
  // The test plays every command; here the session stops after PASS, so check directly.
  CommandParser parser(smallLimits());
  parser.feed("USER a\r\nPASS b\r\nSTAT\r\nRETR 1\r\nTOP 1\0 2\r\npartial"s);
  CHECK(render(parser.next()) == "CMD USER <a> rest=[a]");
  CHECK(render(parser.next()) == "CMD PASS <b> rest=[b]");
  CHECK(parser.takeRemainder() == "STAT\r\nRETR 1\r\nTOP 1\0 2\r\npartial"s);
  CHECK(parser.buffered() == 0);
  CHECK(render(parser.next()) == "MORE");
}

TEST_CASE("pop3 parser: discardBuffered drops pipelined plaintext", "[pop3]") {
  CommandParser parser(smallLimits());
  parser.feed("STLS\r\nCAPA\r\nUSER x");
  CHECK(render(parser.next()) == "CMD STLS rest=[]");
  parser.discardBuffered();
  CHECK(parser.buffered() == 0);
  CHECK(render(parser.next()) == "MORE");
  parser.feed("NOOP\r\n");
  CHECK(render(parser.next()) == "CMD NOOP rest=[]");
  // Also in the middle of skipping an overlong line: the next TLS bytes are a fresh line.
  parser.feed(std::string(50, 'z'));
  CHECK(render(parser.next()) == "ERR Line too long.");
  parser.discardBuffered();
  parser.feed("CAPA\r\n");
  CHECK(render(parser.next()) == "CMD CAPA rest=[]");
}

TEST_CASE("pop3 parser: a long pipelined burst", "[pop3]") {
  std::string input;
  std::vector<std::string> expected;
  for (int i = 0; i < 3000; ++i) {
    input += "LIST " + std::to_string(i) + "\r\n";
    expected.push_back("CMD LIST <" + std::to_string(i) + "> rest=[" + std::to_string(i) + "]");
  }
  Run whole(ParserLimits{});
  whole.feed(input);
  CHECK(whole.out == expected);
  Run chunks(ParserLimits{});
  for (size_t i = 0; i < input.size(); i += 777)
    chunks.feed(std::string_view(input).substr(i, 777));
  CHECK(chunks.out == expected);
}

}  // namespace
}  // namespace gatehouse::pop3
