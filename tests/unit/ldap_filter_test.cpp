// Tests for RFC 4515 escaping and the filter template: injection attempts, NUL, parentheses,
// backslashes, 8-bit bytes, and %u / %% expansion.
#include "directory/ldap_filter.h"

#include <catch2/catch.hpp>
#include <string>

namespace gatehouse {
namespace {

using namespace std::string_literals;

TEST_CASE("ldap filter: escaping metacharacters", "[ldap_filter]") {
  CHECK(escapeFilterValue("alice") == "alice");
  CHECK(escapeFilterValue("") == "");
  CHECK(escapeFilterValue("*") == "\\2a");
  CHECK(escapeFilterValue("*)(uid=*") == "\\2a\\29\\28uid=\\2a");
  CHECK(escapeFilterValue("alice)(uid=*") == "alice\\29\\28uid=\\2a");
  CHECK(escapeFilterValue("(x)") == "\\28x\\29");
  CHECK(escapeFilterValue("EXAMPLE\\alice") == "EXAMPLE\\5calice");
  CHECK(escapeFilterValue("\\2a") == "\\5c2a");  // an escape typed by the user stays literal
  CHECK(escapeFilterValue("al\0ice"s) == "al\\00ice");
  CHECK(escapeFilterValue("\0"s) == "\\00");
}

TEST_CASE("ldap filter: other bytes stay as they are", "[ldap_filter]") {
  CHECK(escapeFilterValue("alice@example.com") == "alice@example.com");
  CHECK(escapeFilterValue("j\xc3\xb6rg") == "j\xc3\xb6rg");
  CHECK(escapeFilterValue("a b=c&|!~<>") == "a b=c&|!~<>");  // meaningful only outside a value
}

TEST_CASE("ldap filter: template expansion", "[ldap_filter]") {
  CHECK(expandFilter("(uid=%u)", "alice") == "(uid=alice)");
  CHECK(expandFilter("(|(uid=%u)(mail=%u))", "*)(uid=*") ==
        "(|(uid=\\2a\\29\\28uid=\\2a)(mail=\\2a\\29\\28uid=\\2a))");
  CHECK(expandFilter("(&(uid=%u)(description=100%%))", "bob") == "(&(uid=bob)(description=100%))");
  CHECK(expandFilter("(&(uid=%u)(x=%%u))", "bob") == "(&(uid=bob)(x=%u))");
  CHECK(expandFilter("(uid=%u)", "a\0b"s) == "(uid=a\\00b)");
  CHECK(expandFilter("(uid=%u)", "%u") == "(uid=%u)");  // the login is not expanded again
}

TEST_CASE("ldap filter: invalid templates", "[ldap_filter]") {
  std::string problem;
  CHECK_FALSE(isValidFilterTemplate("(uid=alice)", problem));
  CHECK(problem == "must contain %u (the escaped login)");
  CHECK_FALSE(isValidFilterTemplate("(uid=%s)", problem));
  CHECK(problem == "'%' must be followed by 'u' (the login) or '%' (a literal '%')");
  CHECK_FALSE(isValidFilterTemplate("(uid=%u)%", problem));
  CHECK_FALSE(isValidFilterTemplate("uid=%u", problem));
  CHECK(problem == "must be a parenthesised LDAP filter such as (uid=%u)");
  CHECK_FALSE(isValidFilterTemplate("(uid=%%u)", problem));  // %% then a plain 'u'
  CHECK_FALSE(isValidFilterTemplate("(uid=%u\0)"s, problem));
  CHECK_FALSE(expandFilter("(uid=%x)", "alice").has_value());
  CHECK(isValidFilterTemplate("(|(uid=%u)(mail=%u))", problem));
}

}  // namespace
}  // namespace gatehouse
