// Unit tests for the shared SASL server (PLAIN, LOGIN) that IMAP AUTHENTICATE, POP3 AUTH and SMTP
// AUTH use: initial responses, continuations, aborts, and what must be refused.
#include "proxy/core/sasl_server.h"

#include <catch2/catch.hpp>
#include <string>

#include "proxy/core/base64.h"

namespace gatehouse {
namespace {

using namespace std::string_literals;
using Outcome = SaslServer::Outcome;

std::string b64(const std::string& s) {
  return base64Encode(s);
}

TEST_CASE("sasl: mechanism names are case-insensitive", "[sasl][smtp]") {
  CHECK(SaslServer::mechanismFrom("plain") == SaslServer::Mechanism::Plain);
  CHECK(SaslServer::mechanismFrom("LOGIN") == SaslServer::Mechanism::Login);
  CHECK_FALSE(SaslServer::mechanismFrom("CRAM-MD5"));
  CHECK_FALSE(SaslServer::mechanismFrom(""));
}

TEST_CASE("sasl: PLAIN with an initial response, with and without authzid", "[sasl][smtp]") {
  SaslServer plain(SaslServer::Mechanism::Plain);
  auto step = plain.start(b64("\0alice\0secret"s));
  REQUIRE(step.outcome == Outcome::Done);
  CHECK(step.user == "alice");
  CHECK(step.password.reveal() == "secret");

  SaslServer same(SaslServer::Mechanism::Plain);
  step = same.start(b64("alice\0alice\0pw with spaces"s));
  REQUIRE(step.outcome == Outcome::Done);
  CHECK(step.user == "alice");
  CHECK(step.password.reveal() == "pw with spaces");
}

TEST_CASE("sasl: PLAIN asking to act as someone else is refused", "[sasl][smtp]") {
  SaslServer plain(SaslServer::Mechanism::Plain);
  CHECK(plain.start(b64("bob\0alice\0secret"s)).outcome == Outcome::Refused);
  SaslServer no_user(SaslServer::Mechanism::Plain);
  CHECK(no_user.start(b64("\0\0secret"s)).outcome == Outcome::Refused);
  SaslServer nul_in_password(SaslServer::Mechanism::Plain);
  CHECK(nul_in_password.start(b64("\0alice\0se\0cret"s)).outcome == Outcome::Refused);
}

TEST_CASE("sasl: PLAIN without an initial response asks with an empty challenge", "[sasl][smtp]") {
  SaslServer plain(SaslServer::Mechanism::Plain);
  auto step = plain.start(std::nullopt);
  REQUIRE(step.outcome == Outcome::Challenge);
  CHECK(step.challenge.empty());
  step = plain.respond(b64("\0alice\0secret"s));
  REQUIRE(step.outcome == Outcome::Done);
  CHECK(step.user == "alice");
}

TEST_CASE("sasl: LOGIN in two steps", "[sasl][smtp]") {
  SaslServer login(SaslServer::Mechanism::Login);
  auto step = login.start(std::nullopt);
  REQUIRE(step.outcome == Outcome::Challenge);
  CHECK(*base64Decode(step.challenge) == "Username:");
  step = login.respond(b64("alice"));
  REQUIRE(step.outcome == Outcome::Challenge);
  CHECK(*base64Decode(step.challenge) == "Password:");
  step = login.respond(b64("secret"));
  REQUIRE(step.outcome == Outcome::Done);
  CHECK(step.user == "alice");
  CHECK(step.password.reveal() == "secret");

  SaslServer with_initial(SaslServer::Mechanism::Login);
  step = with_initial.start(b64("alice"));
  REQUIRE(step.outcome == Outcome::Challenge);
  CHECK(*base64Decode(step.challenge) == "Password:");
}

TEST_CASE("sasl: \"=\" is an empty initial response", "[sasl][smtp]") {
  SaslServer plain(SaslServer::Mechanism::Plain);
  CHECK(plain.start("=").outcome == Outcome::Refused);  // empty is not a PLAIN message
  SaslServer login(SaslServer::Mechanism::Login);
  SaslServer::Step step = login.start("=");  // as Dovecot and Postfix: the user name is asked for
  REQUIRE(step.outcome == Outcome::Challenge);
  CHECK(*base64Decode(step.challenge) == "Username:");
}

TEST_CASE("sasl: \"*\" aborts at any step", "[sasl][smtp]") {
  SaslServer plain(SaslServer::Mechanism::Plain);
  plain.start(std::nullopt);
  CHECK(plain.respond("*").outcome == Outcome::Aborted);
  SaslServer login(SaslServer::Mechanism::Login);
  login.start(std::nullopt);
  login.respond(b64("alice"));
  CHECK(login.respond("*").outcome == Outcome::Aborted);
}

TEST_CASE("sasl: malformed base64 and PLAIN messages without two NULs", "[sasl][smtp]") {
  for (std::string_view bad : {"not base64!", "YWxpY2U", "YWxp Y2U=", "YW=xpY2U", "\r"}) {
    INFO(bad);
    SaslServer plain(SaslServer::Mechanism::Plain);
    CHECK(plain.start(bad).outcome == Outcome::Malformed);
  }
  SaslServer one_nul(SaslServer::Mechanism::Plain);
  // Decodable but not a PLAIN message: a failed login, not a syntax error.
  CHECK(one_nul.start(b64("alice\0secret"s)).outcome == Outcome::Refused);
  SaslServer login(SaslServer::Mechanism::Login);
  login.start(std::nullopt);
  CHECK(login.respond("%%%%").outcome == Outcome::Malformed);
}

}  // namespace
}  // namespace gatehouse
