// Unit tests for the SMTP command-line parser. Every input is also fed one byte at a time and
// split in two at every offset: the results must not depend on how bytes arrive.
#include "proxy/smtp/smtp_parser.h"

#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::smtp {
namespace {

using namespace std::string_literals;

std::string render(const Result& r) {
  switch (r.kind) {
    case ResultKind::NeedMore:
      return "MORE";
    case ResultKind::Command:
      return "CMD " + r.command.verb + "|" + r.command.args;
    case ResultKind::Error:
      switch (r.error) {
        case ErrorKind::LineTooLong:
          return "ERR long";
        case ErrorKind::BadCharacter:
          return "ERR char";
        case ErrorKind::Syntax:
          return "ERR syntax";
        case ErrorKind::None:
          return "ERR none";
      }
  }
  return "?";
}

// After AUTH without an initial response the next line is read with nextLine(); after a BDAT
// the chunk is skipped, as the session does when it refuses one.
void drain(CommandParser& parser, std::vector<std::string>& out, bool& raw_next) {
  for (;;) {
    Result r = raw_next ? parser.nextLine() : parser.next();
    if (r.kind == ResultKind::NeedMore) return;
    if (!raw_next && r.kind == ResultKind::Command && r.command.verb == "BDAT") {
      if (auto size = bdatChunkSize(r.command.args)) parser.skip(*size);
    }
    bool was_raw = raw_next;
    raw_next = !was_raw && r.kind == ResultKind::Command && r.command.verb == "AUTH" &&
               r.command.args.find(' ') == std::string::npos;
    out.push_back((was_raw ? "RAW " : "") + render(r));
  }
}

std::vector<std::string> parseChunks(const std::vector<std::string_view>& chunks, size_t max_line,
                                     std::string* remainder = nullptr) {
  CommandParser parser(max_line);
  std::vector<std::string> out;
  bool raw_next = false;
  for (std::string_view chunk : chunks) {
    parser.feed(chunk);
    drain(parser, out, raw_next);
  }
  if (remainder) *remainder = parser.takeRemainder();
  return out;
}

// Whole, byte by byte and split at every offset give the same results and remainder.
std::vector<std::string> parseAllWays(std::string_view input, size_t max_line = 64) {
  std::string whole_rest;
  auto whole = parseChunks({input}, max_line, &whole_rest);
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < input.size(); ++i) bytes.push_back(input.substr(i, 1));
  std::string rest;
  CHECK(parseChunks(bytes, max_line, &rest) == whole);
  CHECK(rest == whole_rest);
  for (size_t split = 0; split <= input.size(); ++split) {
    INFO("split at " << split);
    CHECK(parseChunks({input.substr(0, split), input.substr(split)}, max_line, &rest) == whole);
    CHECK(rest == whole_rest);
  }
  return whole;
}

TEST_CASE("smtp parser: verbs are case-insensitive, arguments kept", "[smtp]") {
  auto out = parseAllWays("ehlo client.example\r\nMail FROM:<a@b.c> SIZE=10\r\nQUIT\r\n");
  CHECK(out == std::vector<std::string>{"CMD EHLO|client.example", "CMD MAIL|FROM:<a@b.c> SIZE=10",
                                        "CMD QUIT|"});
}

TEST_CASE("smtp parser: bare LF ends a line, blanks trimmed", "[smtp]") {
  auto out = parseAllWays("NOOP\nRSET   \r\nEHLO    x  \t\n");
  CHECK(out == std::vector<std::string>{"CMD NOOP|", "CMD RSET|", "CMD EHLO|x"});
}

TEST_CASE("smtp parser: syntax errors, NUL and stray CR are refused line by line", "[smtp]") {
  auto out = parseAllWays("\r\n EHLO x\r\nE:HLO\r\nNO\0OP\r\nNO\rOP\r\nNOOP\r\n"s);
  CHECK(out == std::vector<std::string>{"ERR syntax", "ERR syntax", "ERR syntax", "ERR char",
                                        "ERR char", "CMD NOOP|"});
}

TEST_CASE("smtp parser: a too-long line is one error and is skipped to its end", "[smtp]") {
  std::string longline = "EHLO " + std::string(100, 'x');
  auto out = parseAllWays(longline + "\r\nNOOP\r\n" + std::string(70, 'y'), 64);
  CHECK(out == std::vector<std::string>{"ERR long", "CMD NOOP|", "ERR long"});
  // Exactly the limit passes, CRLF not counted.
  std::string exact = "HELO " + std::string(59, 'h');
  CHECK(parseAllWays(exact + "\r\n", 64) ==
        std::vector<std::string>{"CMD HELO|" + exact.substr(5)});
  CHECK(parseAllWays(exact + "h\r\n", 64) == std::vector<std::string>{"ERR long"});
}

TEST_CASE("smtp parser: AUTH continuation lines are raw", "[smtp]") {
  auto out = parseAllWays("AUTH LOGIN\r\nYWxpY2U=\r\n* \r\nnoop\r\n");
  CHECK(out ==
        std::vector<std::string>{"CMD AUTH|LOGIN", "RAW CMD |YWxpY2U=", "ERR syntax", "CMD NOOP|"});
  out = parseAllWays("AUTH PLAIN\r\n*\r\n");
  CHECK(out == std::vector<std::string>{"CMD AUTH|PLAIN", "RAW CMD |*"});
}

TEST_CASE("smtp parser: remainder is byte-exact and discardBuffered drops it", "[smtp]") {
  CommandParser parser(512);
  parser.feed("AUTH PLAIN AGEAYg==\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDA");
  Result r = parser.next();
  REQUIRE(r.kind == ResultKind::Command);
  CHECK(r.command.verb == "AUTH");
  CHECK(parser.buffered() == 30);
  CHECK(parser.takeRemainder() == "MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDA");
  CHECK(parser.buffered() == 0);
  CHECK(parser.next().kind == ResultKind::NeedMore);

  parser.feed("STARTTLS\r\nRSET\r\n");
  CHECK(parser.next().command.verb == "STARTTLS");
  parser.discardBuffered();
  CHECK(parser.next().kind == ResultKind::NeedMore);
  parser.feed("EHLO x\r\n");
  CHECK(parser.next().command.verb == "EHLO");
}

TEST_CASE("smtp parser: a long pipelined burst is parsed in order", "[smtp]") {
  std::string burst;
  for (int i = 0; i < 2000; ++i) burst += "NOOP " + std::to_string(i) + "\r\n";
  CommandParser parser(512);
  parser.feed(burst);
  for (int i = 0; i < 2000; ++i) {
    Result r = parser.next();
    REQUIRE(r.kind == ResultKind::Command);
    REQUIRE(r.command.args == std::to_string(i));
  }
  CHECK(parser.next().kind == ResultKind::NeedMore);
  CHECK(parser.buffered() == 0);
}

}  // namespace
TEST_CASE("smtp parser: a refused BDAT's chunk is skipped, however it arrives", "[smtp]") {
  using Lines = std::vector<std::string>;
  CHECK(parseAllWays("BDAT 12 LAST\r\nNOOP\r\nNOOP\r\nQUIT\r\n") ==
        Lines{"CMD BDAT|12 LAST", "CMD QUIT|"});
  // A chunk without a line end: the next command starts right after it.
  CHECK(parseAllWays("BDAT 1\r\nXXCLIENT LOGIN=bob\r\n") ==
        Lines{"CMD BDAT|1", "CMD XCLIENT|LOGIN=bob"});
  CHECK(parseAllWays("BDAT 0 LAST\r\nQUIT\r\n") == Lines{"CMD BDAT|0 LAST", "CMD QUIT|"});
  // A chunk longer than what was sent swallows the rest.
  CHECK(parseAllWays("BDAT 100\r\nQUIT\r\n") == Lines{"CMD BDAT|100"});
  // No valid size: nothing is skipped (Postfix answers 501 and reads commands).
  CHECK(parseAllWays("BDAT 5 X\r\nQUIT\r\n") == Lines{"CMD BDAT|5 X", "CMD QUIT|"});
}

TEST_CASE("smtp parser: BDAT chunk sizes as Postfix reads them", "[smtp]") {
  CHECK(bdatChunkSize("0") == 0u);
  CHECK(bdatChunkSize("12 LAST") == 12u);
  CHECK(bdatChunkSize("12\tlast") == 12u);
  CHECK(bdatChunkSize("999999999999999999") == 999999999999999999u);
  CHECK_FALSE(bdatChunkSize("9999999999999999999"));  // 19 digits
  CHECK_FALSE(bdatChunkSize(""));
  CHECK_FALSE(bdatChunkSize("-1"));
  CHECK_FALSE(bdatChunkSize("12LAST"));
  CHECK_FALSE(bdatChunkSize("12 LAST x"));
  CHECK_FALSE(bdatChunkSize("12 FIRST"));
  CHECK_FALSE(bdatChunkSize("0x10"));
}

}  // namespace gatehouse::smtp
