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
  filter.expectReply(0);
  std::string out;
  auto feed = [&](std::string_view part) {
    std::string scratch;
    out += filter.filter(part, scratch);
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

// What the client gets of `reply` after the guard saw the client send `commands`.
std::string throughGuard(RelayGuard& guard, std::string_view commands, std::string_view reply) {
  REQUIRE(guard.fromClient(commands));
  std::string out;
  for (char c : reply) {  // byte by byte: the worst split
    std::string scratch;
    out += guard.fromBackend(std::string_view(&c, 1), scratch);
  }
  return out;
}

TEST_CASE("smtp guard: each EHLO's own reply is filtered, pipelined or not", "[smtp]") {
  const std::string ehlo_reply = "250-h\r\n250-XCLIENT NAME\r\n250 SIZE\r\n";
  const std::string filtered = "250-h\r\n250 SIZE\r\n";
  RelayGuard guard;
  CHECK(throughGuard(guard, "EHLO client.example\r\n", ehlo_reply) == filtered);
  // RFC 2920 3.1: RSET then EHLO in one group. RSET's reply comes first and is not EHLO's.
  CHECK(throughGuard(guard, "RSET\r\nehlo x\r\n", "250 2.0.0 Ok\r\n" + ehlo_reply) ==
        "250 2.0.0 Ok\r\n" + filtered);
  // Two EHLOs around a NOOP, the replies arriving in one piece.
  REQUIRE(guard.fromClient("EHLO a\r\nNOOP\r\nEHLO b\r\n"));
  std::string scratch;
  const std::string three = ehlo_reply + "250 2.0.0 Ok\r\n" + ehlo_reply;
  CHECK(guard.fromBackend(three, scratch) == filtered + "250 2.0.0 Ok\r\n" + filtered);
  // A multi-line 250 that answers something else is left alone, and so are HELO's and EHLOX's.
  CHECK(
      throughGuard(guard, "NOOP\r\nHELO x\r\nEHLOX\r\n", ehlo_reply + ehlo_reply + "502 no\r\n") ==
      ehlo_reply + ehlo_reply + "502 no\r\n");
  // An EHLO sent while the reply before it is half read: the rest of that reply is counted.
  REQUIRE(guard.fromClient("NOOP\r\n"));
  CHECK(guard.fromBackend("250 2.0", scratch) == "250 2.0");
  CHECK(throughGuard(guard, "EHLO c\r\n", ".0 Ok\r\n" + ehlo_reply) == ".0 Ok\r\n" + filtered);
  // Intermediate replies (354) are not final ones.
  CHECK(throughGuard(guard, "DATA\r\n", "354 go on\r\n") == "354 go on\r\n");
  REQUIRE(guard.fromClient("x\r\n.\r\n"));
  CHECK(throughGuard(guard, "EHLO d\r\n", "250 2.0.0 queued\r\n" + ehlo_reply) ==
        "250 2.0.0 queued\r\n" + filtered);
}

}  // namespace
}  // namespace gatehouse::smtp
