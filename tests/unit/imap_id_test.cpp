// Unit tests for the ID command's argument check, fed through the command parser as a session
// receives them.
#include "proxy/imap/imap_id.h"

#include <catch2/catch.hpp>
#include <string>

#include "proxy/imap/imap_parser.h"

using namespace gatehouse::imap;

namespace {

// The ID command's arguments as the parser hands them to the session.
bool validId(const std::string& arguments) {
  CommandParser parser{ParserLimits{}};
  parser.feed("a ID " + arguments + "\r\n");
  Result r = parser.next();
  REQUIRE(r.kind == ResultKind::Command);
  return isValidIdArgument(r.command.args);
}

std::string pairs(size_t n, const std::string& field = "f", const std::string& value = "\"v\"") {
  std::string list = "(";
  for (size_t i = 0; i < n; ++i) list += (i ? " \"" : "\"") + field + "\" " + value;
  return list + ")";
}

}  // namespace

TEST_CASE("imap id: NIL and field/value pairs", "[imap_id]") {
  CHECK(validId("NIL"));
  CHECK(validId(R"(("name" "Thunderbird" "version" "115.3"))"));
  CHECK(validId(R"(("name" NIL))"));
  CHECK(validId("(name Thunderbird)"));  // unquoted, as some clients send it
  CHECK(validId("()"));  // "#" in RFC 2971's grammar allows no pair at all; Dovecot takes it
}

TEST_CASE("imap id: what RFC 2971 does not allow", "[imap_id]") {
  CHECK_FALSE(validId(R"(("name"))"));                // a field without a value
  CHECK_FALSE(validId(R"(("a" "b" "c"))"));           // odd count
  CHECK_FALSE(validId(R"((("name" "x")))"));          // nested list
  CHECK_FALSE(validId(R"(("name" ("x")))"));          // a list as a value
  CHECK_FALSE(validId(R"((NIL "x"))"));               // NIL as a field
  CHECK_FALSE(validId(R"("name" "x")"));              // not a list
  CHECK_FALSE(validId(R"(("name" "x") ("a" "b"))"));  // two lists
  CHECK_FALSE(validId("foo"));
}

TEST_CASE("imap id: limits of 30 pairs, 30-octet fields and 1024-octet values", "[imap_id]") {
  CHECK(validId(pairs(30)));
  CHECK_FALSE(validId(pairs(31)));
  CHECK(validId(pairs(1, std::string(30, 'f'))));
  CHECK_FALSE(validId(pairs(1, std::string(31, 'f'))));
  CHECK(validId(pairs(1, "f", "\"" + std::string(1024, 'v') + "\"")));
  CHECK_FALSE(validId(pairs(1, "f", "\"" + std::string(1025, 'v') + "\"")));
}
