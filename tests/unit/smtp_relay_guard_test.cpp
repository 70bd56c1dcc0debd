// Unit tests for the relayed-SMTP guard and the SMTP reply helpers: refused verbs anywhere a
// command may start, message content skipped only when DATA certainly began.
#include "proxy/smtp/smtp_relay_guard.h"

#include <catch2/catch.hpp>
#include <string>
#include <string_view>

#include "backends/smtp_reply.h"

namespace gatehouse::smtp {
namespace {

// Back-end bytes the guard sees (and may filter) on their way to the client.
void backend(RelayGuard& guard, std::string_view data) {
  std::string scratch;
  guard.fromBackend(data, scratch);
}

// Feeds client bytes one at a time: the guard must refuse no later than the whole write would.
bool clientBytewise(RelayGuard& guard, std::string_view data) {
  for (char c : data) {
    if (!guard.fromClient(std::string_view(&c, 1))) return false;
  }
  return true;
}

TEST_CASE("smtp guard: refused verbs at a command start, any case, after blanks", "[smtp]") {
  for (std::string_view line :
       {"XCLIENT LOGIN=bob\r\n", "xclient ADDR=1.2.3.4\r\n", " \tXForward NAME=x\r\n",
        "\rSTARTTLS\r\n", "starttls\n", "BDAT 1\r\nX", "bdat 5 LAST\r\n"}) {
    INFO(line);
    RelayGuard whole;
    CHECK_FALSE(whole.fromClient(line));
    CHECK_FALSE(whole.refusedVerb().empty());
    RelayGuard bytewise;
    CHECK_FALSE(clientBytewise(bytewise, line));
    CHECK_FALSE(bytewise.fromClient("NOOP\r\n"));  // stays refused
  }
  RelayGuard guard;
  CHECK(guard.fromClient("MAIL FROM:<a@b>\r\nRCPT TO:<XCLIENT@b>\r\nNOOP XCLIENT\r\n"));
  // The refusal comes before the line is complete: the back-end never sees its end.
  CHECK_FALSE(
      guard.fromClient("XCLIEN"
                       "T"));
}

TEST_CASE("smtp guard: content after a certain 354 is not checked", "[smtp]") {
  RelayGuard guard;
  CHECK(guard.fromClient("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"));
  backend(guard, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
  CHECK(guard.fromClient("DATA\r\n"));
  backend(guard, "354 End data with <CR><LF>.<CR><LF>\r\n");
  CHECK(guard.fromClient("Subject: x\r\n\r\nXCLIENT LOGIN=bob\r\nSTARTTLS\r\n..\r\n"));
  CHECK(guard.fromClient(".\r\n"));
  backend(guard, "250 2.0.0 Ok: queued\r\n");
  CHECK_FALSE(guard.fromClient("XCLIENT LOGIN=bob\r\n"));  // a command again
}

TEST_CASE("smtp guard: a dot with bare LF or trailing blanks ends content early", "[smtp]") {
  RelayGuard guard;
  CHECK(guard.fromClient("DATA\r\n"));
  backend(guard, "354 go\r\n");
  CHECK(guard.fromClient("text\n.\r\r\n"));
  CHECK_FALSE(guard.fromClient("XCLIENT LOGIN=bob\r\n"));
}

TEST_CASE("smtp guard: a blank before the dot keeps the line content", "[smtp]") {
  RelayGuard guard;
  CHECK(guard.fromClient("DATA\r\n"));
  backend(guard, "354 go\r\n");
  // As Postfix reads it: " ." is a content line, and so is what follows it.
  CHECK(guard.fromClient("text\r\n .\r\nSTARTTLS is a verb\r\n.\r\n"));
  backend(guard, "250 2.0.0 Ok: queued\r\n");
  // In step with the back-end: the next message's content is skipped too.
  CHECK(guard.fromClient("DATA\r\n"));
  backend(guard, "354 go\r\n");
  CHECK(guard.fromClient("Starttls, again\r\n.\r\n"));
  backend(guard, "250 2.0.0 Ok: queued\r\n");
  CHECK_FALSE(guard.fromClient("STARTTLS\r\n"));
}

TEST_CASE("smtp guard: pipelined content before 354 stays checked", "[smtp]") {
  // The attack: content and a second DATA sent before the first 354 arrives. The back-end leaves
  // DATA at the first ".", so the guard must not believe the later 354 opens content.
  RelayGuard guard;
  CHECK(guard.fromClient("DATA\r\n.\r\nDATA\r\n"));
  backend(guard, "354 go\r\n");
  CHECK_FALSE(guard.fromClient("XCLIENT LOGIN=bob\r\n"));

  RelayGuard eager;  // content sent before 354: every line is checked as a command
  CHECK(eager.fromClient("DATA\r\nSubject: x\r\n"));
  backend(eager, "354 go\r\n");
  CHECK_FALSE(eager.fromClient("XCLIENT LOGIN=bob\r\n"));

  RelayGuard rejected;  // DATA refused: no 354, still commands
  CHECK(rejected.fromClient("DATA\r\n"));
  backend(rejected, "554 5.5.1 Error: no valid recipients\r\n");
  CHECK_FALSE(rejected.fromClient("XCLIENT LOGIN=bob\r\n"));
}

TEST_CASE("smtp guard: multi-line and intermediate replies are counted right", "[smtp]") {
  RelayGuard guard;
  CHECK(guard.fromClient("EHLO x\r\n"));
  backend(guard, "250-mx\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
  CHECK(guard.fromClient("DATA\r\n"));
  backend(guard, "35");
  backend(guard, "4 go\r\n");
  CHECK(guard.fromClient("XCLIENT is text here\r\n.\r\n"));

  // An AUTH exchange through the relay sends a line (the response) that has no reply of its
  // own: the count stays high, and from then on everything is checked. Too strict, never lax.
  RelayGuard authed;
  CHECK(authed.fromClient("AUTH PLAIN\r\n"));
  backend(authed, "334 \r\n");
  CHECK(authed.fromClient("*\r\n"));
  backend(authed, "501 5.7.0 aborted\r\n");
  CHECK(authed.fromClient("DATA\r\n"));
  backend(authed, "354 go\r\n");
  CHECK_FALSE(authed.fromClient("XCLIENT is text here\r\n"));
}

TEST_CASE("smtp guard: replies still owed to the client", "[smtp]") {
  RelayGuard guard;
  CHECK_FALSE(guard.awaitingReplies());
  CHECK(guard.fromClient("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"));
  CHECK(guard.awaitingReplies());
  backend(guard, "250 ok\r\n250-multi\r\n");
  CHECK(guard.awaitingReplies());  // RCPT's reply is not final yet
  backend(guard, "250 ok\r\n");
  CHECK_FALSE(guard.awaitingReplies());
  CHECK(guard.fromClient("DATA\r\n"));
  backend(guard, "354 go\r\n");
  CHECK(guard.awaitingReplies());  // DATA's final reply comes after the content
  CHECK(guard.fromClient("Subject: x\r\n\r\nbody\r\n.\r\n"));
  CHECK(guard.awaitingReplies());
  backend(guard, "250 2.0.0 queued\r\n");
  CHECK_FALSE(guard.awaitingReplies());
}

TEST_CASE("smtp guard: reply line starts and goodbyes", "[smtp]") {
  RelayGuard guard;
  CHECK(guard.atReplyLineStart());
  backend(guard, "250-mx");
  CHECK_FALSE(guard.atReplyLineStart());
  backend(guard, "\r\n");
  CHECK_FALSE(guard.atReplyLineStart());  // between the lines of one reply: no code of our own
  backend(guard, "250 ok\r\n");
  CHECK(guard.atReplyLineStart());
  backend(guard, "354 go ahead\r\n");
  CHECK(guard.atReplyLineStart());  // an intermediate reply is whole too
  CHECK_FALSE(guard.backendSaidGoodbye());
  backend(guard, "221 2.0.0 Bye\r\n");
  CHECK(guard.backendSaidGoodbye());
  RelayGuard timeout;
  backend(timeout, "421 4.4.2 mx Error: timeout exceeded\r\n");
  CHECK(timeout.backendSaidGoodbye());
}

TEST_CASE("smtp reply: lines, EHLO keywords and xtext", "[smtp]") {
  auto r = parseReplyLine("250-PIPELINING");
  REQUIRE(r);
  CHECK(r->code == 250);
  CHECK_FALSE(r->last);
  CHECK(r->text == "PIPELINING");
  r = parseReplyLine("220");
  REQUIRE(r);
  CHECK(r->last);
  CHECK_FALSE(parseReplyLine("25"));
  CHECK_FALSE(parseReplyLine("250x"));
  CHECK_FALSE(parseReplyLine("650 no"));
  CHECK_FALSE(parseReplyLine("* OK imap"));

  EhloKeyword k = parseEhloLine("xclient NAME ADDR  LOGIN");
  CHECK(k.name == "XCLIENT");
  CHECK(k.params == std::vector<std::string>{"NAME", "ADDR", "LOGIN"});
  CHECK(hasParam(k, "login"));
  CHECK_FALSE(hasParam(k, "PORT"));
  std::vector<EhloKeyword> all = {parseEhloLine("SIZE 100"), k};
  CHECK(findKeyword(all, "XCLIENT") == &all[1]);
  CHECK(findKeyword(all, "AUTH") == nullptr);

  CHECK(xtext("alice@example.com") == "alice@example.com");
  CHECK(xtext("a+b=c d\x01\xc3\xa9") == "a+2Bb+3Dc+20d+01+C3+A9");
  CHECK(xtext("[UNAVAILABLE]") == "[UNAVAILABLE]");
}

}  // namespace
}  // namespace gatehouse::smtp
