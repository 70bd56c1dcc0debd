// Unit tests for the POP3 relay tracker: where back-end responses end, whatever the split, so a
// goodbye is never injected into a multi-line answer.
#include "proxy/pop3/pop3_relay_tracker.h"

#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::pop3 {
namespace {

// Feeds the back-end bytes in pieces of `step` bytes and records betweenResponses() after each
// complete input (the boundary state must not depend on the split).
bool boundaryAfter(std::string_view client, std::string_view backend, size_t step) {
  RelayTracker t;
  t.fromClient(client);
  for (size_t i = 0; i < backend.size(); i += step) t.fromBackend(backend.substr(i, step));
  return t.betweenResponses();
}

void checkBoundary(std::string_view client, std::string_view backend, bool expected) {
  for (size_t step = 1; step <= backend.size() + 1; ++step) {
    INFO("step " << step);
    CHECK(boundaryAfter(client, backend, step) == expected);
  }
}

TEST_CASE("pop3 tracker: single-line answers", "[pop3]") {
  checkBoundary("STAT\r\n", "", true);
  checkBoundary("STAT\r\n", "+OK 2 3", false);
  checkBoundary("STAT\r\n", "+OK 2 320\r\n", true);
  checkBoundary("LIST 1\r\n", "+OK 1 120\r\n", true);
  checkBoundary("UIDL 1\r\n", "+OK 1 abc\r\n", true);
  checkBoundary("NOOP\r\nDELE 1\r\n", "+OK\r\n+OK Marked.\r\n", true);
}

TEST_CASE("pop3 tracker: multi-line answers end at the terminator only", "[pop3]") {
  const std::string body = "+OK 12 octets\r\nline\r\n..stuffed\r\n.\r\n";
  checkBoundary("RETR 1\r\n", body, true);
  checkBoundary("RETR 1\r\n", body.substr(0, body.size() - 1), false);
  checkBoundary("RETR 1\r\n", "+OK\r\n..\r\n", false);
  checkBoundary("RETR 1\r\n", "+OK\r\n.x\r\n", false);
  checkBoundary("RETR 1\r\n", "+OK\r\n. \r\n", false);
  checkBoundary("RETR 1\r\n", "+OK\r\nabc.\r\n", false);
  checkBoundary("RETR 1\r\n", "+OK\r\n.\rx\r\n", false);
  checkBoundary("TOP 1 0\r\n", "+OK\r\nSubject: x\r\n\r\n.\r\n", true);
  checkBoundary("LIST\r\n", "+OK 2 messages\r\n1 10\r\n2 20\r\n.\r\n", true);
  checkBoundary("LIST\r\n", "+OK 2 messages\r\n1 10\r\n", false);
  checkBoundary("uidl\r\n", "+OK\r\n1 a\r\n.\r\n", true);
  checkBoundary("CAPA\r\n", "+OK\r\nTOP\r\n.\r\n", true);
  checkBoundary("CAPA\r\n", "+OK\r\nTOP\r\n", false);
  // Bare LF line ends are followed too.
  checkBoundary("RETR 1\n", "+OK\nbody\n.\n", true);
}

TEST_CASE("pop3 tracker: a refusal of a multi-line command is one line", "[pop3]") {
  checkBoundary("RETR 9\r\n", "-ERR There's no message 9.\r\n", true);
  checkBoundary("RETR 9\r\nSTAT\r\n", "-ERR no such message\r\n+OK 1 2\r\n", true);
}

TEST_CASE("pop3 tracker: pipelined commands are answered in order", "[pop3]") {
  const std::string client = "STAT\r\nRETR 1\r\nLIST 1\r\nLIST\r\n";
  const std::string backend =
      "+OK 1 5\r\n+OK 5\r\n+OK looks like a status\r\n.\r\n+OK 1 5\r\n+OK\r\n1 5\r\n.\r\n";
  checkBoundary(client, backend, true);
  checkBoundary(client, backend.substr(0, backend.find("+OK 1 5\r\n+OK\r\n")), true);
  checkBoundary(client, backend.substr(0, backend.find("+OK looks")), false);
  // Commands split across reads, and the keyword split too.
  RelayTracker t;
  t.fromClient("RE");
  t.fromClient("TR 1\r");
  t.fromClient("\n");
  t.fromBackend("+OK\r\n");
  CHECK_FALSE(t.betweenResponses());
  t.fromBackend(".\r\n");
  CHECK(t.betweenResponses());
}

TEST_CASE("pop3 tracker: QUIT answered", "[pop3]") {
  RelayTracker t;
  t.fromClient("STAT\r\nQUIT\r\n");
  t.fromBackend("+OK 0 0\r\n");
  CHECK_FALSE(t.quitAnswered());
  t.fromBackend("+OK Logging out.");
  CHECK_FALSE(t.quitAnswered());
  t.fromBackend("\r\n");
  CHECK(t.quitAnswered());
  CHECK(t.betweenResponses());
}

TEST_CASE("pop3 tracker: answers still owed", "[pop3]") {
  RelayTracker t;
  CHECK_FALSE(t.awaitingResponses());
  t.fromClient("STAT\r\nRETR 1\r\n");
  CHECK(t.awaitingResponses());
  t.fromBackend("+OK 1 12\r\n+OK 12 octets\r\nline\r\n");
  CHECK(t.awaitingResponses());  // inside RETR's body
  t.fromBackend(".\r\n");
  CHECK_FALSE(t.awaitingResponses());
  t.fromClient("NOOP");  // a command line not yet complete is not owed an answer
  CHECK_FALSE(t.awaitingResponses());
}

TEST_CASE("pop3 tracker: unsolicited lines keep it at a boundary", "[pop3]") {
  checkBoundary("", "-ERR Disconnected for inactivity.\r\n", true);
  // A client that runs far ahead is no longer followed: never at a boundary again.
  RelayTracker t;
  std::string many;
  for (int i = 0; i < 5000; ++i) many += "NOOP\r\n";
  t.fromClient(many);
  CHECK_FALSE(t.betweenResponses());
  t.fromBackend("+OK\r\n");
  CHECK_FALSE(t.betweenResponses());
  CHECK(t.awaitingResponses());  // not followed: a close is always taken as a loss
}

TEST_CASE("pop3 tracker: a 2 MB body in odd pieces", "[pop3]") {
  std::string body = "+OK\r\n";
  for (int i = 0; body.size() < 2'000'000; ++i)
    body += (i % 7 == 0 ? ".." : "") + std::string(70, 'a' + i % 26) + "\r\n";
  body += ".\r\n";
  for (size_t step : {1u, 3u, 4096u, 65536u}) {
    INFO("step " << step);
    CHECK(boundaryAfter("RETR 1\r\n", body, step));
    CHECK_FALSE(
        boundaryAfter("RETR 1\r\n", std::string_view(body).substr(0, body.size() - 2), step));
  }
}

}  // namespace
}  // namespace gatehouse::pop3
