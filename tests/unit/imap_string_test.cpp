// Unit tests for IMAP string quoting and base64: what Gatehouse writes must parse back to the
// bytes the user typed.
#include "proxy/imap/imap_string.h"

#include <catch2/catch.hpp>
#include <string>
#include <string_view>

#include "proxy/core/base64.h"
#include "proxy/imap/imap_parser.h"

namespace gatehouse::imap {
namespace {

using namespace std::string_literals;

// Sends "a LOGIN <astring> x" through the parser (answering any "+ OK") and returns the first
// argument it read, or "<error>".
std::string replayThroughParser(std::string_view value, bool literal_plus) {
  CommandParser parser(ParserLimits{});
  parser.feed("a LOGIN " + imapAstring(value, literal_plus) + " x\r\n");
  for (;;) {
    const Result result = parser.next();
    if (result.kind == ResultKind::Continue) continue;
    if (result.kind != ResultKind::Command || result.command.args.size() != 2) return "<error>";
    if (result.command.args[0].kind != TokenKind::String) return "<error>";
    return result.command.args[0].value;
  }
}

TEST_CASE("imap string: quoting", "[imap_string]") {
  CHECK(imapQuoted("alice") == "\"alice\"");
  CHECK(imapQuoted("") == "\"\"");
  CHECK(imapQuoted(R"(a"b\c)") == R"("a\"b\\c")");
  CHECK(isQuotable("plain ascii \"\\ {5}"));
  CHECK(isQuotable("tab\there"));
  CHECK_FALSE(isQuotable("cr\r"));
  CHECK_FALSE(isQuotable("lf\n"));
  CHECK_FALSE(isQuotable("nul\0"s));
  CHECK_FALSE(isQuotable("j\xc3\xb6rg"));
}

TEST_CASE("imap string: literals", "[imap_string]") {
  CHECK(imapLiteral("abc", true) == "{3+}\r\nabc");
  CHECK(imapLiteral("abc", false) == "{3}\r\nabc");
  CHECK(imapLiteral("", false) == "{0}\r\n");
  CHECK(imapAstring("p\xc3\xa4ss", true) == "{5+}\r\np\xc3\xa4ss");
  CHECK(imapAstring("a\r\nb", false) == "{4}\r\na\r\nb");
  CHECK(imapAstring("a b", false) == "\"a b\"");
}

TEST_CASE("imap string: astring round-trips through the parser", "[imap_string]") {
  const std::string values[] = {
      "",
      "alice",
      "a b",
      R"(we"ird\)",
      "{5}",
      "NIL",
      "(x)",
      "p\xc3\xa4ss",
      "a\r\nb LOGOUT",
      "\x01\x7f",
      "\xff\xfe",
      "]+*%",
      std::string(300, 'q'),
  };
  for (const std::string& value : values) {
    INFO("value " << value);
    CHECK(replayThroughParser(value, true) == value);
    CHECK(replayThroughParser(value, false) == value);
  }
  // Every single byte but NUL, which IMAP cannot carry.
  for (int c = 1; c < 256; ++c) {
    const std::string value = "x" + std::string(1, static_cast<char>(c)) + "y";
    INFO("byte " << c);
    CHECK(replayThroughParser(value, true) == value);
  }
}

TEST_CASE("imap string: astringCapacity leaves no room for a reallocation", "[imap_string]") {
  // A reallocation while a password is appended frees a copy nobody wipes; the capacity bound
  // must cover the longest form appendAstring() picks.
  const std::string values[] = {
      "",
      "alice",
      std::string(64, '"'),
      std::string(64, '\\'),
      std::string(1000, 'x') + "\xc3",
      "a\r\nb",
      std::string(1, '\xff'),
  };
  for (const std::string& value : values) {
    for (bool literal_plus : {false, true}) {
      INFO("value size " << value.size() << " literal_plus " << literal_plus);
      std::string out = "L LOGIN ";
      out.reserve(out.size() + astringCapacity(value));
      const char* before = out.data();
      appendAstring(out, value, literal_plus);
      CHECK(out.data() == before);
      CHECK(out.substr(8) == imapAstring(value, literal_plus));
    }
  }
}

TEST_CASE("imap string: base64 known vectors", "[imap_string]") {
  // RFC 4648 section 10.
  CHECK(base64Encode("") == "");
  CHECK(base64Encode("f") == "Zg==");
  CHECK(base64Encode("fo") == "Zm8=");
  CHECK(base64Encode("foo") == "Zm9v");
  CHECK(base64Encode("foob") == "Zm9vYg==");
  CHECK(base64Encode("fooba") == "Zm9vYmE=");
  CHECK(base64Encode("foobar") == "Zm9vYmFy");
  CHECK(base64Encode("\0user\0pass"s) == "AHVzZXIAcGFzcw==");
  CHECK(base64Encode("\xff\xfe\xfd") == "//79");
  CHECK(base64Decode("Zm9vYmFy") == "foobar");
  CHECK(base64Decode("Zm9vYg==") == "foob");
  CHECK(base64Decode("Zm9vYmE=") == "fooba");
  CHECK(base64Decode("") == "");
  CHECK(base64Decode("AHVzZXIAcGFzcw==") == "\0user\0pass"s);
}

TEST_CASE("imap string: base64 decoding is strict", "[imap_string]") {
  const char* bad[] = {
      "Zm9",       // length not a multiple of 4
      "Zm9v\r\n",  // line break
      "Zm 9v",     // space
      "Zm9v====",  // padding only
      "Zg=a",      // data after padding
      "Z===",      // three padding characters
      "=Zm9",      // padding first
      "Zm=v",      // padding in the middle
      "Zh==",      // non-zero unused bits
      "Zm9=",      // non-zero unused bits
      "Zm-_",      // URL alphabet
  };
  for (const char* text : bad) {
    INFO("text " << text);
    CHECK_FALSE(base64Decode(text).has_value());
  }
  CHECK_FALSE(base64Decode("Zm9v\0\0\0\0"s).has_value());
}

TEST_CASE("imap string: base64 round-trips every length and byte", "[imap_string]") {
  std::string data;
  for (int i = 0; i < 300; ++i) {
    const std::string encoded = base64Encode(data);
    CHECK(encoded.size() == (data.size() + 2) / 3 * 4);
    const std::optional<std::string> decoded = base64Decode(encoded);
    REQUIRE(decoded.has_value());
    CHECK(*decoded == data);
    data.push_back(static_cast<char>((i * 37 + 11) & 0xff));
  }
}

}  // namespace
}  // namespace gatehouse::imap
