// The client side of the IMAP relay: which lines are commands (and so are owed an answer),
// across literals of both kinds, IDLE's DONE and SASL responses.
#include "proxy/imap/imap_command_counter.h"

#include <catch2/catch.hpp>
#include <string>

namespace gatehouse::imap {
namespace {

// Feeds `input` whole, at every split and byte by byte: the count must not depend on the reads.
void checkCount(const std::string& input, uint64_t commands) {
  for (size_t split = 0; split <= input.size(); ++split) {
    CommandCounter c;
    c.feed(std::string_view(input).substr(0, split));
    c.feed(std::string_view(input).substr(split));
    INFO("split at " << split);
    CHECK(c.commands() == commands);
  }
  CommandCounter bytewise;
  for (char ch : input) bytewise.feed(std::string_view(&ch, 1));
  CHECK(bytewise.commands() == commands);
}

TEST_CASE("imap command counter: one per complete command line", "[imap_command_counter]") {
  checkCount("", 0);
  checkCount("a NOOP\r\n", 1);
  checkCount("a NOOP\r\nb SELECT INBOX\r\nc FETCH 1 (FLAGS)\r\n", 3);
  checkCount("a NOOP\r\nb SELECT INB", 1);  // not complete yet
  checkCount("a NOOP\nb NOOP\n", 2);        // bare LF ends a line too, as Dovecot reads it
}

TEST_CASE("imap command counter: literals belong to their command", "[imap_command_counter]") {
  // A literal's payload is skipped, even where it looks like commands.
  checkCount("a APPEND INBOX {16}\r\nb NOOP\r\nc NOOP\r\n\r\n", 1);
  checkCount("a APPEND INBOX (\\Seen) {3+}\r\nx y{2}\r\nzz\r\n", 1);  // LITERAL+, two literals
  checkCount("a LOGIN {1}\r\nu {1}\r\np\r\nb NOOP\r\n", 2);
  checkCount("a APPEND INBOX {5}\r\nab", 0);  // inside the literal
}

TEST_CASE("imap command counter: DONE and SASL lines are not commands", "[imap_command_counter]") {
  checkCount("a IDLE\r\nDONE\r\nb NOOP\r\n", 2);
  checkCount("a AUTHENTICATE PLAIN\r\nAGFsaWNlAHB3\r\n", 1);
  checkCount("\r\n\r\n", 0);
}

TEST_CASE("imap command counter: an open IDLE awaits no answer", "[imap_command_counter]") {
  auto awaited = [](std::string_view input) {
    CommandCounter c;
    c.feed(input);
    return c.awaitedAnswers();
  };
  CHECK(awaited("a SELECT INBOX\r\ni IDLE\r\n") == 1);
  CHECK(awaited("a SELECT INBOX\r\ni idle\r") == 1);  // not complete: not a command yet
  CHECK(awaited("a SELECT INBOX\r\ni idle\r\n") == 1);
  CHECK(awaited("i IDLE\r\nDONE\r\n") == 1);  // ended: its OK is awaited
  CHECK(awaited("i IDLE\r\nDONE\r\nn NOOP\r\n") == 2);
  CHECK(awaited("i IDLER\r\n") == 1);
  CHECK(awaited("a000000000000000001 IDLE\r\n") == 0);
}

TEST_CASE("imap line follower: trailing literal sizes", "[imap_command_counter]") {
  CHECK(trailingLiteralSize("* 1 FETCH (BODY[] {123}") == 123u);
  CHECK(trailingLiteralSize("* 1 FETCH (BODY[] {0}\r") == 0u);
  CHECK(trailingLiteralSize("a APPEND x {5+}") == 5u);
  CHECK_FALSE(trailingLiteralSize("* OK {abc}"));
  CHECK_FALSE(trailingLiteralSize("* OK }"));
  CHECK_FALSE(trailingLiteralSize("{}"));
  CHECK_FALSE(trailingLiteralSize("{99999999999999999999}"));                    // would overflow
  CHECK(trailingLiteralSize("a APPEND x {000000000000000000000000005}") == 5u);  // RFC 3501 number
  CHECK(trailingLiteralSize("a APPEND x {00}") == 0u);
}

}  // namespace
}  // namespace gatehouse::imap
