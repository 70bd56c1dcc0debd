// Tests for LoginNormalizer: each option alone, their order when combined, and the logins that
// must be refused before any look-up (control bytes, over-long, empty).
#include "directory/login_normalizer.h"

#include <catch2/catch.hpp>
#include <string>

namespace gatehouse {
namespace {

LoginNormalizationConfig options(bool lowercase, bool backslash, std::vector<std::string> strip,
                                 std::string default_domain) {
  LoginNormalizationConfig config;
  config.lowercase = lowercase;
  config.accept_backslash_domain = backslash;
  config.strip_domain = std::move(strip);
  config.default_domain = std::move(default_domain);
  return config;
}

TEST_CASE("login normalizer: defaults lower-case ASCII only", "[login]") {
  LoginNormalizer n;
  CHECK(n.normalize("alice") == "alice");
  CHECK(n.normalize("Alice@Example.COM") == "alice@example.com");
  CHECK(n.normalize("J\xC3\x96RG") == "j\xC3\x96rg");        // UTF-8 bytes untouched
  CHECK(n.normalize("EXAMPLE\\Alice") == "example\\alice");  // backslash not accepted by default
  LoginNormalizer from_config{LoginNormalizationConfig{}};
  CHECK(from_config.normalize("BOB") == "bob");
}

TEST_CASE("login normalizer: lower-casing can be turned off", "[login]") {
  LoginNormalizer n(options(false, false, {}, ""));
  CHECK(n.normalize("Alice@Example.com") == "Alice@Example.com");
}

TEST_CASE("login normalizer: DOMAIN\\user drops the NT domain", "[login]") {
  LoginNormalizer n(options(true, true, {}, ""));
  CHECK(n.normalize("EXAMPLE\\Alice") == "alice");
  CHECK(n.normalize("alice") == "alice");
  // Only a well-formed NT name is rewritten; the rest stays literal for the directory to refuse.
  CHECK(n.normalize("\\alice") == "\\alice");
  CHECK(n.normalize("EXAMPLE\\") == "example\\");
  CHECK(n.normalize("a@b\\alice") == "a@b\\alice");
  CHECK(n.normalize("EX\\al\\ice") == "ice");  // the last backslash ends the domain
}

TEST_CASE("login normalizer: strip_domain removes listed domains only", "[login]") {
  LoginNormalizer n(options(true, false, {"Example.com", "corp.example.com"}, ""));
  CHECK(n.normalize("alice@example.com") == "alice");
  CHECK(n.normalize("alice@EXAMPLE.COM") == "alice");
  CHECK(n.normalize("alice@corp.example.com") == "alice");
  CHECK(n.normalize("alice@other.org") == "alice@other.org");
  CHECK(n.normalize("alice@example.com.evil") == "alice@example.com.evil");
  LoginNormalizer no_lowercase(options(false, false, {"example.com"}, ""));
  CHECK(no_lowercase.normalize("Alice@EXAMPLE.com") == "Alice");
}

TEST_CASE("login normalizer: strip_domain \"*\" removes any domain", "[login]") {
  LoginNormalizer n(options(true, false, {"*"}, ""));
  CHECK(n.normalize("alice@example.com") == "alice");
  CHECK(n.normalize("alice@anything.invalid") == "alice");
  CHECK(n.normalize("alice") == "alice");
}

TEST_CASE("login normalizer: default_domain is appended when there is none", "[login]") {
  LoginNormalizer n(options(true, true, {}, "Example.com"));
  CHECK(n.normalize("alice") == "alice@example.com");
  CHECK(n.normalize("alice@other.org") == "alice@other.org");
  CHECK(n.normalize("EXAMPLE\\alice") == "alice@example.com");
  // Stripping runs first, so strip + default maps every listed domain onto the default one.
  LoginNormalizer both(options(true, false, {"old.example.com"}, "example.com"));
  CHECK(both.normalize("alice@old.example.com") == "alice@example.com");
  CHECK(both.normalize("alice@example.com") == "alice@example.com");
  LoginNormalizer keep_case(options(false, false, {}, "Example.com"));
  CHECK(keep_case.normalize("Alice") == "Alice@Example.com");
}

TEST_CASE("login normalizer: normalising twice changes nothing", "[login]") {
  for (const auto& config : {options(true, true, {"*"}, ""), options(true, true, {}, "example.com"),
                             options(false, true, {"example.com"}, "example.org")}) {
    LoginNormalizer n(config);
    for (const char* login : {"alice", "Alice@Example.com", "EX\\al\\ice", "\\alice", "a@b\\c",
                              "EXAMPLE\\Bob@Example.COM", "j\xC3\x96rg"}) {
      auto once = n.normalize(login);
      REQUIRE(once);
      CHECK(n.normalize(*once) == once);
    }
  }
}

TEST_CASE("login normalizer: refuses control bytes, empty and over-long names", "[login]") {
  LoginNormalizer n(options(true, true, {"*"}, ""));
  CHECK_FALSE(n.normalize(""));
  CHECK_FALSE(n.normalize(std::string("ali\0ce", 6)));
  CHECK_FALSE(n.normalize("alice\r\n"));
  CHECK_FALSE(n.normalize("ali\nce"));
  CHECK_FALSE(n.normalize("alice\t"));
  CHECK_FALSE(n.normalize("alice\x7f"));
  CHECK_FALSE(n.normalize("@example.com"));     // nothing left once the domain is stripped
  CHECK_FALSE(n.normalize("x@y@example.com"));  // which '@' starts the domain?
  CHECK_FALSE(n.normalize("\"a@b\"@example.com"));
  std::string longest(LoginNormalizer::kMaxLoginBytes, 'a');
  CHECK(n.normalize(longest) == longest);
  CHECK_FALSE(n.normalize(longest + "a"));
  // The limit also holds once the default domain is added.
  LoginNormalizer with_default(options(true, false, {}, "example.com"));
  CHECK_FALSE(with_default.normalize(longest));
  CHECK(with_default.normalize(std::string(LoginNormalizer::kMaxLoginBytes - 12, 'a')));
}

}  // namespace
}  // namespace gatehouse
