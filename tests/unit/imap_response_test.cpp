// Back-end response parsing: status lines, response codes, capability lists, and the scanner
// that tells the relay where the server's lines start (across literals) and whether it said BYE.
#include "backends/imap_response.h"

#include <catch2/catch.hpp>
#include <string>

namespace gatehouse::imap {
namespace {

TEST_CASE("imap response: greeting with a capability code", "[imap_response]") {
  auto r = parseResponseLine("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] Dovecot ready.");
  REQUIRE(r);
  CHECK(r->kind == ResponseKind::Untagged);
  CHECK(r->status == ResponseStatus::Ok);
  CHECK(r->code == "CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN");
  CHECK(r->text == "Dovecot ready.");
  auto caps = splitCapabilities(r->code);
  CHECK(caps == std::vector<std::string_view>{"IMAP4rev1", "SASL-IR", "AUTH=PLAIN"});
  CHECK(hasCapability(caps, "auth=plain"));
  CHECK_FALSE(hasCapability(caps, "LITERAL+"));
}

TEST_CASE("imap response: tagged, untagged data, continuation, malformed", "[imap_response]") {
  auto tagged = parseResponseLine("L NO [AUTHENTICATIONFAILED] Authentication failed.");
  REQUIRE(tagged);
  CHECK(tagged->kind == ResponseKind::Tagged);
  CHECK(tagged->tag == "L");
  CHECK(tagged->status == ResponseStatus::No);
  CHECK(tagged->code == "AUTHENTICATIONFAILED");

  auto data = parseResponseLine("* 3 EXISTS");
  REQUIRE(data);
  CHECK(data->status == ResponseStatus::None);
  CHECK(data->text == "3 EXISTS");

  auto cont = parseResponseLine("+ ");
  REQUIRE(cont);
  CHECK(cont->kind == ResponseKind::Continuation);

  CHECK_FALSE(parseResponseLine(""));
  CHECK_FALSE(parseResponseLine("L MAYBE"));  // tagged lines carry a status
  CHECK_FALSE(parseResponseLine("* OK [UNCLOSED code"));
}

struct Scan {
  bool line_start;
  bool bye;
  uint64_t tagged;
};

// Feeds `input` whole, at every split and byte by byte, checking the scanner ends in the same
// state.
void checkScan(const std::string& input, Scan want) {
  auto check = [&](const ResponseScanner& s) {
    CHECK(s.atLineStart() == want.line_start);
    CHECK(s.sawBye() == want.bye);
    CHECK(s.taggedResponses() == want.tagged);
  };
  for (size_t split = 0; split <= input.size(); ++split) {
    ResponseScanner s;
    s.feed(std::string_view(input).substr(0, split));
    s.feed(std::string_view(input).substr(split));
    INFO("split at " << split);
    check(s);
  }
  ResponseScanner bytewise;
  for (char c : input) bytewise.feed(std::string_view(&c, 1));
  check(bytewise);
}

TEST_CASE("imap response scanner: lines, literals, BYE", "[imap_response]") {
  checkScan("* 1 EXISTS\r\na OK done\r\n", {true, false, 1});
  checkScan("* 1 EXISTS\r\na OK do", {false, false, 0});
  checkScan("* BYE Logging out\r\na OK Logout completed.\r\n", {true, true, 1});
  checkScan("* bye autologout\r\n", {true, true, 0});
  // A literal whose payload looks like a BYE line is payload, not a BYE.
  checkScan("* 1 FETCH (BODY[] {20}\r\n* BYE fake\r\n12345678)\r\n", {true, false, 0});
  // Inside a literal we are not at a line start, even right after a CRLF in the payload.
  checkScan("* 1 FETCH (BODY[] {10}\r\nab\r\n", {false, false, 0});
  checkScan("* 1 FETCH (BODY[] {2}\r\nab", {false, false, 0});
  // After the literal the line goes on; its end is the line start again.
  checkScan("* 1 FETCH (BODY[] {2}\r\nab)\r\n", {true, false, 0});
}

TEST_CASE("imap response scanner: counts the commands answered", "[imap_response]") {
  // Continuation requests and untagged data answer nothing; each tagged status line one command.
  checkScan("+ idling\r\n* 2 EXISTS\r\na OK Idle done\r\nb NO [TRYCREATE] no\r\n",
            {true, false, 2});
  // A payload line that looks tagged is payload; the line after the literal is the same response.
  checkScan("* 1 FETCH (BODY[] {9}\r\nx OK no\r\n UID 4)\r\nf OK done\r\n", {true, false, 1});
  // Two literals in one response, the second one empty.
  checkScan("* 1 FETCH (BODY[1] {1}\r\nz BODY[2] {0}\r\n)\r\nf OK\r\n", {true, false, 1});
  // An overlong tag is still a tag.
  checkScan("A000000000000001 OK done\r\n", {true, false, 1});
}

}  // namespace
}  // namespace gatehouse::imap
