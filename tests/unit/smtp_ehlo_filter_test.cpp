// Unit tests for the relayed EHLO reply filter: refused extensions taken out, whatever the split,
// the last line's "250 " moved when the last extension goes, everything else passed as it came.
#include "proxy/smtp/smtp_ehlo_filter.h"

#include <catch2/catch.hpp>
#include <string>
#include <string_view>

#include "proxy/smtp/smtp_relay_guard.h"

namespace gatehouse::smtp {
namespace {

// What Postfix 3.7 answers EHLO from an address in smtpd_authorized_xclient_hosts.
constexpr std::string_view kPostfixReply =
    "250-mail.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n"
    "250-STARTTLS\r\n250-XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN\r\n"
    "250-XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT\r\n250-ENHANCEDSTATUSCODES\r\n"
    "250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n";
constexpr std::string_view kFiltered =
    "250-mail.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n"
    "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250 SMTPUTF8\r\n";

// The reply cut at `cut` (and, with step 1, fed byte by byte), followed by the next reply.
std::string run(std::string_view reply, size_t cut, size_t step = 0) {
  EhloReplyFilter filter;
  filter.expectReply();
  std::string out;
  auto feed = [&](std::string_view part) {
    std::string scratch;
    if (filter.active()) {
      filter.filter(part, scratch);
      out += scratch;
    } else {
      out += part;
    }
  };
  if (step == 0) {
    feed(reply.substr(0, cut));
    feed(reply.substr(cut));
  } else {
    for (char c : reply) feed(std::string_view(&c, 1));
  }
  feed("250 2.0.0 Ok\r\n");  // the next reply is not touched
  return out;
}

TEST_CASE("ehlo filter: Postfix's refused extensions go, at every split", "[smtp]") {
  const std::string expected = std::string(kFiltered) + "250 2.0.0 Ok\r\n";
  for (size_t cut = 0; cut <= kPostfixReply.size(); ++cut) {
    INFO("cut at " << cut);
    REQUIRE(run(kPostfixReply, cut) == expected);
  }
  CHECK(run(kPostfixReply, 0, 1) == expected);
}

TEST_CASE("ehlo filter: keywords in any case; a one-line reply; other replies untouched",
          "[smtp]") {
  CHECK(run("250-h\r\n250-xclient NAME\r\n250-Chunking\r\n250 SIZE\r\n", 3) ==
        "250-h\r\n250 SIZE\r\n250 2.0.0 Ok\r\n");
  CHECK(run("250-h\r\n250 STARTTLS\r\n", 9) == "250 h\r\n250 2.0.0 Ok\r\n");
  CHECK(run("250 h\r\n", 2) == "250 h\r\n250 2.0.0 Ok\r\n");
  // A keyword that only starts like a refused one stays.
  CHECK(run("250-h\r\n250 XCLIENTX\r\n", 0) == "250-h\r\n250 XCLIENTX\r\n250 2.0.0 Ok\r\n");
  // A refusal, or anything not a 250 reply, goes through as it came.
  CHECK(run("501 5.5.4 Syntax: EHLO hostname\r\n", 4) ==
        "501 5.5.4 Syntax: EHLO hostname\r\n250 2.0.0 Ok\r\n");
  CHECK(run("250-h\r\n502 odd\r\n250 XCLIENT\r\n", 5) ==
        "250-h\r\n502 odd\r\n250 XCLIENT\r\n250 2.0.0 Ok\r\n");
  // Bare LF line ends are kept as they are.
  CHECK(run("250-h\n250-XFORWARD\n250 8BITMIME\n", 1) == "250-h\n250 8BITMIME\n250 2.0.0 Ok\r\n");
}

TEST_CASE("ehlo filter: an overlong line makes it step aside, holding nothing", "[smtp]") {
  const std::string long_line = "250-" + std::string(2000, 'x') + "\r\n";
  const std::string reply = "250-h\r\n" + long_line + "250 XCLIENT\r\n";
  CHECK(run(reply, 10) == reply + "250 2.0.0 Ok\r\n");
}

TEST_CASE("smtp guard: an EHLO is flagged when its reply is the next one", "[smtp]") {
  RelayGuard guard;
  REQUIRE(guard.fromClient("EHLO client.example\r\n"));
  CHECK(guard.takeEhloSent());
  CHECK_FALSE(guard.takeEhloSent());  // once
  guard.fromBackend("250-h\r\n250 SIZE\r\n");
  REQUIRE(guard.fromClient("ehlo\r\nNOOP\r\n"));
  CHECK(guard.takeEhloSent());
  // Behind an unanswered command the next reply is not EHLO's: nothing is flagged.
  guard.fromBackend("250 h\r\n250 Ok\r\n");
  REQUIRE(guard.fromClient("NOOP\r\nEHLO x\r\n"));
  CHECK_FALSE(guard.takeEhloSent());
  REQUIRE(guard.fromClient("EHLOX\r\nHELO x\r\n"));
  CHECK_FALSE(guard.takeEhloSent());
}

}  // namespace
}  // namespace gatehouse::smtp
