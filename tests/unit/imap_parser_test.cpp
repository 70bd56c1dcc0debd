// Unit tests for the pre-auth IMAP command parser. Every input is also fed one byte at a time
// and split in two at every offset: the results must not depend on how bytes arrive.
#include "proxy/imap/imap_parser.h"

#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::imap {
namespace {

using namespace std::string_literals;

std::string render(const Token& token) {
  switch (token.kind) {
    case TokenKind::Atom:
      return "A:" + token.value;
    case TokenKind::String:
      return "S:" + token.value;
    case TokenKind::Nil:
      return "NIL:" + token.value;
    case TokenKind::ListStart:
      return "(";
    case TokenKind::ListEnd:
      return ")";
  }
  return "?";
}

// One line per result, so that Catch prints a readable difference.
std::string render(const Result& result) {
  switch (result.kind) {
    case ResultKind::NeedMore:
      return "MORE";
    case ResultKind::Continue:
      return "CONT " + result.command.tag + " " + result.command.name;
    case ResultKind::Error:
      return std::string(result.error.fatal ? "FATAL " : "ERR ") + result.error.tag + " " +
             result.error.message;
    case ResultKind::Command: {
      std::string out = "CMD " + result.command.tag + " " + result.command.name;
      for (const Token& token : result.command.args) out += " " + render(token);
      return out;
    }
  }
  return "?";
}

ParserLimits smallLimits() {
  ParserLimits limits;
  limits.max_line = 40;
  limits.max_literal = 20;
  limits.max_command = 100;
  return limits;
}

// Calls next() until NeedMore or a fatal error; returns false after a fatal error.
bool drain(CommandParser& parser, std::vector<std::string>& out) {
  for (;;) {
    const Result result = parser.next();
    if (result.kind == ResultKind::NeedMore) return true;
    out.push_back(render(result));
    if (result.kind == ResultKind::Error && result.error.fatal) return false;
  }
}

std::vector<std::string> runChunks(const std::vector<std::string>& chunks, ParserLimits limits) {
  CommandParser parser(limits);
  std::vector<std::string> out;
  for (const std::string& chunk : chunks) {
    parser.feed(chunk);
    if (!drain(parser, out)) break;
  }
  return out;
}

// Parses `input` whole, byte by byte and split at every offset; all must agree.
std::vector<std::string> parseAll(const std::string& input, ParserLimits limits = {}) {
  const std::vector<std::string> whole = runChunks({input}, limits);
  std::vector<std::string> bytes;
  for (char c : input) bytes.emplace_back(1, c);
  INFO("input fed byte by byte");
  CHECK(runChunks(bytes, limits) == whole);
  for (size_t split = 0; split <= input.size(); ++split) {
    INFO("input split at " << split);
    const std::vector<std::string> parts =
        runChunks({input.substr(0, split), input.substr(split)}, limits);
    CHECK(parts == whole);
    if (parts != whole) break;  // one failure tells enough
  }
  return whole;
}

using Lines = std::vector<std::string>;

TEST_CASE("imap parser: simple commands", "[imap_parser]") {
  CHECK(parseAll("a1 CAPABILITY\r\n") == Lines{"CMD a1 CAPABILITY"});
  CHECK(parseAll("a1 noop\r\n") == Lines{"CMD a1 NOOP"});
  CHECK(parseAll("tag.1 Login alice secret\r\n") == Lines{"CMD tag.1 LOGIN A:alice A:secret"});
  // Bare LF is accepted.
  CHECK(parseAll("x LOGOUT\n") == Lines{"CMD x LOGOUT"});
  // ']' is an ASTRING-CHAR; NIL is recognised in any case.
  CHECK(parseAll("a LOGIN us]er nIl\r\n") == Lines{"CMD a LOGIN A:us]er NIL:nIl"});
  CHECK(parseAll("a AUTHENTICATE PLAIN dGVzdAB0ZXN0AHRlc3Q=\r\n") ==
        Lines{"CMD a AUTHENTICATE A:PLAIN A:dGVzdAB0ZXN0AHRlc3Q="});
}

TEST_CASE("imap parser: incomplete input waits", "[imap_parser]") {
  CHECK(parseAll("a1 NOOP").empty());
  CHECK(parseAll("a1 NOOP\r").empty());
  CHECK(parseAll("").empty());
}

TEST_CASE("imap parser: pipelined commands come out in order", "[imap_parser]") {
  CHECK(parseAll("a CAPABILITY\r\nb NOOP\nc LOGIN x y\r\nd LOG") ==
        Lines{"CMD a CAPABILITY", "CMD b NOOP", "CMD c LOGIN A:x A:y"});
  // An error in the middle does not disturb the neighbours.
  CHECK(parseAll("a NOOP\r\nb LOGIN \"x\r\nc NOOP\r\n") ==
        Lines{"CMD a NOOP", "ERR b Unterminated quoted string", "CMD c NOOP"});
}

TEST_CASE("imap parser: quoted strings", "[imap_parser]") {
  CHECK(parseAll(R"(a LOGIN "al ice" "p\"w\\d")"
                 "\r\n") == Lines{R"(CMD a LOGIN S:al ice S:p"w\d)"});
  CHECK(parseAll("a LOGIN \"\" \"\"\r\n") == Lines{"CMD a LOGIN S: S:"});
  CHECK(parseAll("a LOGIN \"NIL\" x\r\n") == Lines{"CMD a LOGIN S:NIL A:x"});
  // UTF-8 passwords.
  CHECK(parseAll("a LOGIN j\"\xc3\xb6rg\" \"p\xc3\xa4ss\"\r\n") ==
        Lines{"ERR a Invalid characters in command"});
  CHECK(parseAll("a LOGIN \"j\xc3\xb6rg\" \"p\xc3\xa4ss\"\r\n") ==
        Lines{"CMD a LOGIN S:j\xc3\xb6rg S:p\xc3\xa4ss"});
  // Control characters other than NUL, CR and LF are TEXT-CHARs.
  CHECK(parseAll("a LOGIN \"x\ty\x01\" z\r\n") == Lines{"CMD a LOGIN S:x\ty\x01 A:z"});
}

TEST_CASE("imap parser: quoted string errors", "[imap_parser]") {
  CHECK(parseAll("a LOGIN \"x\\y\" z\r\nb NOOP\r\n") ==
        Lines{"ERR a Invalid escape in quoted string", "CMD b NOOP"});
  CHECK(parseAll("a LOGIN \"x\\\" z\r\n") == Lines{"ERR a Unterminated quoted string"});
  CHECK(parseAll("a LOGIN \"x\0y\" z\r\nb NOOP\r\n"s) ==
        Lines{"ERR a Invalid characters in quoted string", "CMD b NOOP"});
  CHECK(parseAll("a LOGIN \"x\ry\" z\r\n") == Lines{"ERR a Invalid characters in quoted string"});
  // An LF ends the line, and the quoted string with it.
  CHECK(parseAll("a LOGIN \"x\ny\" z\r\n") ==
        Lines{"ERR a Unterminated quoted string", "ERR * Invalid tag"});
  CHECK(parseAll("a LOGIN x\"y\" z\r\n") == Lines{"ERR a Invalid characters in command"});
}

TEST_CASE("imap parser: NUL and other bytes outside strings", "[imap_parser]") {
  CHECK(parseAll("a NO\0OP\r\nb NOOP\r\n"s) ==
        Lines{"ERR a Invalid characters in command", "CMD b NOOP"});
  CHECK(parseAll("a\0 NOOP\r\n"s) == Lines{"ERR * Invalid tag"});
  CHECK(parseAll("a LOGIN x\r\r\n") == Lines{"ERR a Invalid characters in command"});
  CHECK(parseAll("a LOGIN x  y\r\n") == Lines{"ERR a Invalid characters in command"});
  // A trailing space is tolerated (Dovecot does), inside a list it is still unclosed.
  CHECK(parseAll("a LOGIN x \r\n") == Lines{"CMD a LOGIN A:x"});
  CHECK(parseAll("a NOOP \r\n") == Lines{"CMD a NOOP"});
  CHECK(parseAll("a ID (x \r\n") == Lines{"ERR a Unclosed list"});
  CHECK(parseAll("a LIST \"\" *\r\n") == Lines{"ERR a Invalid characters in command"});
}

TEST_CASE("imap parser: tags and names", "[imap_parser]") {
  CHECK(parseAll("+ NOOP\r\nb NOOP\r\n") == Lines{"ERR * Invalid tag", "CMD b NOOP"});
  CHECK(parseAll("a+ NOOP\r\n") == Lines{"ERR * Invalid tag"});
  CHECK(parseAll("* NOOP\r\n") == Lines{"ERR * Invalid tag"});
  CHECK(parseAll(" NOOP\r\n") == Lines{"ERR * Invalid tag"});
  CHECK(parseAll("\r\nb NOOP\r\n") == Lines{"ERR * Empty command line", "CMD b NOOP"});
  CHECK(parseAll("\"a\" NOOP\r\n") == Lines{"ERR * Invalid tag"});
  CHECK(parseAll("a\r\n") == Lines{"ERR a Missing command name"});
  CHECK(parseAll("a \r\n") == Lines{"ERR a Missing command name"});
  CHECK(parseAll("a \"NOOP\"\r\n") == Lines{"ERR a Invalid command name"});
  CHECK(parseAll("a NO]OP\r\n") == Lines{"ERR a Invalid characters in command"});
  CHECK(parseAll("a] NOOP\r\n") == Lines{"CMD a] NOOP"});
}

TEST_CASE("imap parser: lists for ID", "[imap_parser]") {
  CHECK(parseAll("a ID (\"name\" \"x\")\r\n") == Lines{"CMD a ID ( S:name S:x )"});
  CHECK(parseAll("a ID NIL\r\n") == Lines{"CMD a ID NIL:NIL"});
  CHECK(parseAll("a ID ()\r\n") == Lines{"CMD a ID ( )"});
  CHECK(parseAll("a ID (\"k\" NIL \"v\" (x))\r\n") ==
        Lines{"CMD a ID ( S:k NIL:NIL S:v ( A:x ) )"});
  CHECK(parseAll("a ID (\"name\" \"x\"\r\n") == Lines{"ERR a Unclosed list"});
  CHECK(parseAll("a ID (\r\n") == Lines{"ERR a Unclosed list"});
  CHECK(parseAll("a ID )\r\n") == Lines{"ERR a Unexpected ')'"});
  CHECK(parseAll("a ID (x )\r\n") == Lines{"ERR a Unexpected ')'"});
  CHECK(parseAll("a ID (x))\r\n") == Lines{"ERR a Unexpected ')'"});
  CHECK(parseAll("a ID (x)y\r\n") == Lines{"ERR a Invalid characters in command"});
  CHECK(parseAll("a ID ((((((((((x))))))))))\r\n") == Lines{"ERR a Lists nested too deeply"});
}

TEST_CASE("imap parser: synchronising literal asks for continuation once", "[imap_parser]") {
  CHECK(parseAll("a LOGIN {5}\r\nalice {3}\r\npwd\r\n") ==
        Lines{"CONT a LOGIN", "CONT a LOGIN", "CMD a LOGIN S:alice S:pwd"});
  CHECK(parseAll("a LOGIN {5}\r\nal\0ce x\r\n"s) == Lines{"CONT a LOGIN", "ERR a NUL in literal"});
  CHECK(parseAll("a LOGIN {0}\r\n x\r\n") == Lines{"CONT a LOGIN", "CMD a LOGIN S: A:x"});
  // Literal bytes are not interpreted: CRLF, quotes and 8-bit bytes pass through.
  CHECK(parseAll("a LOGIN x {6}\r\n\"\r\n\xff) \r\n") ==
        Lines{"CONT a LOGIN", "CMD a LOGIN A:x S:\"\r\n\xff) "});
  // A literal inside a list.
  CHECK(parseAll("a ID ({4}\r\nname \"x\")\r\n") == Lines{"CONT a ID", "CMD a ID ( S:name S:x )"});
  // The line after the literal must go on with a separator.
  CHECK(parseAll("a LOGIN {1}\r\nxy\r\nb NOOP\r\n") ==
        Lines{"CONT a LOGIN", "ERR a Invalid characters in command", "CMD b NOOP"});
  // Only the literal's own bytes are waited for.
  CHECK(parseAll("a LOGIN {5}\r\nali") == Lines{"CONT a LOGIN"});
}

TEST_CASE("imap parser: LITERAL+ needs no continuation", "[imap_parser]") {
  CHECK(parseAll("a LOGIN {5+}\r\nalice {3+}\r\npwd\r\nb NOOP\r\n") ==
        Lines{"CMD a LOGIN S:alice S:pwd", "CMD b NOOP"});
  CHECK(parseAll("a LOGIN {3+}\r\na\0c x\r\nb NOOP\r\n"s) ==
        Lines{"ERR a NUL in literal", "CMD b NOOP"});
}

TEST_CASE("imap parser: literal syntax errors", "[imap_parser]") {
  CHECK(parseAll("a LOGIN {5} x\r\n") == Lines{"ERR a Invalid literal"});
  CHECK(parseAll("a LOGIN {}\r\n") == Lines{"ERR a Invalid literal"});
  CHECK(parseAll("a LOGIN {x}\r\n") == Lines{"ERR a Invalid literal"});
  CHECK(parseAll("a LOGIN {5+\r\n") == Lines{"ERR a Invalid literal"});
  CHECK(parseAll("a LOGIN x{5}\r\nb NOOP\r\n") ==
        Lines{"ERR a Invalid characters in command", "CMD b NOOP"});
  CHECK(parseAll("{5}\r\nb NOOP\r\n") == Lines{"ERR * Invalid tag", "CMD b NOOP"});
  CHECK(parseAll("a {5}\r\nb NOOP\r\n") == Lines{"ERR a Invalid command name", "CMD b NOOP"});
}

TEST_CASE("imap parser: synchronising literal too large is refused, session goes on",
          "[imap_parser]") {
  CHECK(parseAll("a LOGIN {21}\r\nb NOOP\r\n", smallLimits()) ==
        Lines{"ERR a Literal too large", "CMD b NOOP"});
  CHECK(parseAll("a LOGIN {20}\r\n12345678901234567890\r\n", smallLimits()) ==
        Lines{"CONT a LOGIN", "CMD a LOGIN S:12345678901234567890"});
  CHECK(parseAll("a LOGIN {8193}\r\nb NOOP\r\n") == Lines{"ERR a Literal too large", "CMD b NOOP"});
}

TEST_CASE("imap parser: LITERAL+ too large ends the session", "[imap_parser]") {
  CHECK(parseAll("a LOGIN {21+}\r\n123456789012345678901\r\nb NOOP\r\n", smallLimits()) ==
        Lines{"FATAL a Literal too large"});
  CHECK(parseAll("a LOGIN {8193+}\r\n") == Lines{"FATAL a Literal too large"});
}

TEST_CASE("imap parser: huge literal sizes are fatal, without overflow", "[imap_parser]") {
  CHECK(parseAll("a LOGIN {99999999999999999999999}\r\n") == Lines{"FATAL a Literal too large"});
  CHECK(parseAll("a LOGIN {18446744073709551617+}\r\n") == Lines{"FATAL a Literal too large"});
  CHECK(parseAll("a LOGIN {4294967296}\r\nb NOOP\r\n") ==
        Lines{"ERR a Literal too large", "CMD b NOOP"});
  // Leading zeros say nothing about the size (number = 1*DIGIT; Dovecot and nginx take them).
  CHECK(parseAll("a LOGIN {0000000000000000000005}\r\nalice x\r\n") ==
        Lines{"CONT a LOGIN", "CMD a LOGIN S:alice A:x"});
  CHECK(parseAll("a LOGIN {000000000000000000000099999999999}\r\n") ==
        Lines{"FATAL a Literal too large"});
  // Also on a line that is rejected for another reason.
  CHECK(parseAll("a LOGIN \x01 {99999999999+}\r\n") == Lines{"FATAL a Literal too large"});
}

TEST_CASE("imap parser: invalid line with {n+} skips the literal", "[imap_parser]") {
  // The literal looks like a command; it must not come out as one (nginx-tests mail_imap.t).
  CHECK(parseAll("a LOGIN \"x\\y\" {8+}\r\nb LOGOUT\r\nc NOOP\r\n") ==
        Lines{"ERR a Invalid escape in quoted string", "CMD c NOOP"});
  CHECK(parseAll("a ID (\"name\" \x01 {8+}\r\nb LOGOUT)\r\nc NOOP\r\n") ==
        Lines{"ERR a Invalid characters in command", "CMD c NOOP"});
  // The rest of the command may announce more literals: those are skipped too.
  CHECK(parseAll("+ x {3+}\r\nb N {8+}\r\nb LOGOUT\r\nc NOOP\r\n") ==
        Lines{"ERR * Invalid tag", "CMD c NOOP"});
  // A bad literal payload: the rest of its command is skipped the same way.
  CHECK(parseAll("a LOGIN {2+}\r\n\0\0 {8+}\r\nb LOGOUT\r\nc NOOP\r\n"s) ==
        Lines{"ERR a NUL in literal", "CMD c NOOP"});
  // Quoted strings do not hide an announcement from the skipper.
  CHECK(parseAll("a LOGIN \"{8+}\r\nb LOGOUT\r\nc NOOP\r\n") ==
        Lines{"ERR a Unterminated quoted string", "CMD c NOOP"});
}

TEST_CASE("imap parser: invalid line with {n} waits for nothing", "[imap_parser]") {
  CHECK(parseAll("a LOGIN \"x\\y\" {8}\r\nb LOGOUT\r\n") ==
        Lines{"ERR a Invalid escape in quoted string", "CMD b LOGOUT"});
  CHECK(parseAll("a LOGIN \"x\\y\" {21}\r\nb LOGOUT\r\n", smallLimits()) ==
        Lines{"ERR a Invalid escape in quoted string", "CMD b LOGOUT"});
  CHECK(parseAll("a LOGIN \"x\\y\" {21+}\r\nb LOGOUT\r\n", smallLimits()) ==
        Lines{"FATAL a Literal too large"});
}

TEST_CASE("imap parser: line length limit", "[imap_parser]") {
  const ParserLimits limits = smallLimits();
  const std::string at_limit = "a LOGIN " + std::string(limits.max_line - 8, 'x');
  CHECK(parseAll(at_limit + "\r\n", limits) == Lines{"CMD a LOGIN A:" + at_limit.substr(8)});
  CHECK(parseAll(at_limit + "\n", limits) == Lines{"CMD a LOGIN A:" + at_limit.substr(8)});
  CHECK(parseAll(at_limit + "y\r\n", limits) == Lines{"FATAL * Line too long"});
  CHECK(parseAll(at_limit + "\r\r\n", limits) == Lines{"FATAL * Line too long"});
  // Detected before any line end arrives: a client cannot make us buffer without limit.
  CHECK(parseAll(at_limit + "yy", limits) == Lines{"FATAL * Line too long"});
  CHECK(parseAll(at_limit + "\r", limits).empty());
  // The limit applies to each line of a command, and to lines being skipped.
  CHECK(parseAll("a LOGIN {1}\r\nx " + std::string(40, 'y') + "\r\n", limits) ==
        Lines{"CONT a LOGIN", "FATAL a Line too long"});
  CHECK(parseAll("+ {1+}\r\nx" + std::string(41, 'y') + "\r\n", limits) ==
        Lines{"ERR * Invalid tag", "FATAL * Line too long"});
}

TEST_CASE("imap parser: whole command limit", "[imap_parser]") {
  const ParserLimits limits = smallLimits();  // 100 bytes
  // 13 + 20 + 8 + 20 + 8 + 20 = 89 bytes before the last line, which brings 13 more.
  const std::string input = "a ID ({20+}\r\n" + std::string(20, 'x') + " {20+}\r\n" +
                            std::string(20, 'y') + " {20+}\r\n" + std::string(20, 'z') +
                            ") 123456789\r\n";
  CHECK(parseAll(input, limits) == Lines{"FATAL a Command too long"});
  // The announced size counts before any "+ OK": the client is not asked to send it.
  CHECK(parseAll("a ID ({20+}\r\n" + std::string(20, 'x') + " {20+}\r\n" + std::string(20, 'y') +
                     " {20+}\r\n" + std::string(20, 'z') + " {20}\r\n",
                 limits) == Lines{"FATAL a Command too long"});
  const std::string fits =
      "a ID ({20+}\r\n" + std::string(20, 'x') + " {20+}\r\n" + std::string(20, 'y') + ")\r\n";
  CHECK(parseAll(fits, limits) ==
        Lines{"CMD a ID ( S:" + std::string(20, 'x') + " S:" + std::string(20, 'y') + " )"});
}

TEST_CASE("imap parser: fatal error is sticky and drops input", "[imap_parser]") {
  CommandParser parser(smallLimits());
  parser.feed(std::string(50, 'x'));
  CHECK(render(parser.next()) == "FATAL * Line too long");
  CHECK(parser.buffered() == 0);
  parser.feed("a NOOP\r\n");
  CHECK(parser.buffered() == 0);
  CHECK(render(parser.next()) == "FATAL * Line too long");
  CHECK(render(parser.nextLine()) == "FATAL * Line too long");
}

TEST_CASE("imap parser: nextLine reads SASL continuation lines", "[imap_parser]") {
  const std::string input = "a AUTHENTICATE PLAIN\r\ndGVzdAB0ZXN0AHRlc3Q=\r\n*\nb NOOP\r\n";
  for (size_t split = 0; split <= input.size(); ++split) {
    INFO("split at " << split);
    CommandParser parser(ParserLimits{});
    parser.feed(input.substr(0, split));
    bool fed_all = false;
    // The session's calls in order; NeedMore is answered by feeding the second part once.
    auto call = [&](bool line) {
      Result result = line ? parser.nextLine() : parser.next();
      if (result.kind == ResultKind::NeedMore && !fed_all) {
        parser.feed(input.substr(split));
        fed_all = true;
        result = line ? parser.nextLine() : parser.next();
      }
      return result;
    };
    CHECK(render(call(false)) == "CMD a AUTHENTICATE A:PLAIN");
    const Result response = call(true);
    CHECK(response.kind == ResultKind::Command);
    CHECK(response.command.tag.empty());
    CHECK(response.command.name == "dGVzdAB0ZXN0AHRlc3Q=");
    CHECK(call(true).command.name == "*");
    CHECK(render(call(false)) == "CMD b NOOP");
    CHECK(call(false).kind == ResultKind::NeedMore);
  }
}

TEST_CASE("imap parser: nextLine limits", "[imap_parser]") {
  CommandParser parser(smallLimits());
  parser.feed("ab\0c\r\n"s);
  CHECK(render(parser.nextLine()) == "ERR * NUL in line");
  parser.feed("\r\n");
  const Result empty = parser.nextLine();
  CHECK(empty.kind == ResultKind::Command);
  CHECK(empty.command.name.empty());
  parser.feed(std::string(41, 'A'));
  CHECK(render(parser.nextLine()) == "FATAL * Line too long");

  CommandParser inside(ParserLimits{});
  inside.feed("a LOGIN {3}\r\n");
  CHECK(inside.next().kind == ResultKind::Continue);
  CHECK(render(inside.nextLine()) == "FATAL a Line requested inside a command");
}

TEST_CASE("imap parser: takeRemainder is byte-exact", "[imap_parser]") {
  const std::string tail = "b SELECT {5+}\r\nINBOX\r\nc FETCH 1 (BODY[])\r\n\0\xff partial"s;
  CommandParser parser(ParserLimits{});
  parser.feed("a LOGIN alice \"pw\"\r\n" + tail.substr(0, 10));
  parser.feed(tail.substr(10));
  CHECK(render(parser.next()) == "CMD a LOGIN A:alice S:pw");
  CHECK(parser.buffered() == tail.size());
  CHECK(parser.takeRemainder() == tail);
  CHECK(parser.buffered() == 0);
  CHECK(parser.takeRemainder().empty());
  parser.feed("z NOOP\r\n");
  CHECK(render(parser.next()) == "CMD z NOOP");
}

TEST_CASE("imap parser: takeRemainder keeps a partly received command", "[imap_parser]") {
  CommandParser parser(ParserLimits{});
  parser.feed("a LOGIN {5}\r\nal");
  CHECK(parser.next().kind == ResultKind::Continue);
  CHECK(parser.next().kind == ResultKind::NeedMore);
  CHECK(parser.takeRemainder() == "a LOGIN {5}\r\nal");
  // Afterwards the parser starts afresh.
  parser.feed("b NOOP\r\n");
  CHECK(render(parser.next()) == "CMD b NOOP");
}

TEST_CASE("imap parser: discardBuffered drops what followed STARTTLS", "[imap_parser]") {
  CommandParser parser(ParserLimits{});
  parser.feed("a STARTTLS\r\nb LOGIN injected x\r\nc NOOP\r\n");
  CHECK(render(parser.next()) == "CMD a STARTTLS");
  parser.discardBuffered();
  CHECK(parser.buffered() == 0);
  CHECK(parser.next().kind == ResultKind::NeedMore);
  parser.feed("d CAPABILITY\r\n");
  CHECK(render(parser.next()) == "CMD d CAPABILITY");

  // Also in the middle of a command or of a skipped literal.
  parser.feed("e LOGIN {5}\r\nab");
  CHECK(parser.next().kind == ResultKind::Continue);
  parser.discardBuffered();
  parser.feed("+ {5+}\r\nab");
  CHECK(render(parser.next()) == "ERR * Invalid tag");
  parser.discardBuffered();
  parser.feed("f NOOP\r\n");
  CHECK(render(parser.next()) == "CMD f NOOP");
}

TEST_CASE("imap parser: buffered() shrinks as commands are taken", "[imap_parser]") {
  CommandParser parser(ParserLimits{});
  CHECK(parser.buffered() == 0);
  parser.feed("a NOOP\r\nbb NOOP\r\nc NO");
  CHECK(parser.buffered() == 21);
  CHECK(parser.next().kind == ResultKind::Command);
  CHECK(parser.buffered() == 13);
  CHECK(parser.next().kind == ResultKind::Command);
  CHECK(parser.buffered() == 4);
  CHECK(parser.next().kind == ResultKind::NeedMore);
  CHECK(parser.buffered() == 4);
  parser.feed("OP\r\n");
  CHECK(parser.next().kind == ResultKind::Command);
  CHECK(parser.buffered() == 0);

  // A skipped literal is dropped as it arrives, not held.
  parser.feed("+ {1000+}\r\n");
  CHECK(parser.next().kind == ResultKind::Error);
  parser.feed(std::string(600, 'x'));
  CHECK(parser.next().kind == ResultKind::NeedMore);
  CHECK(parser.buffered() == 0);
  parser.feed(std::string(400, 'x') + "\r\nb NOOP\r\n");
  CHECK(render(parser.next()) == "CMD b NOOP");
  CHECK(parser.buffered() == 0);
}

TEST_CASE("imap parser: many pipelined commands", "[imap_parser]") {
  std::string input;
  for (int i = 0; i < 2000; ++i) input += "t" + std::to_string(i) + " NOOP\r\n";
  CommandParser parser(ParserLimits{});
  parser.feed(input);
  for (int i = 0; i < 2000; ++i) {
    const Result result = parser.next();
    REQUIRE(result.kind == ResultKind::Command);
    REQUIRE(result.command.tag == "t" + std::to_string(i));
  }
  CHECK(parser.next().kind == ResultKind::NeedMore);
  CHECK(parser.buffered() == 0);
}

}  // namespace
}  // namespace gatehouse::imap
