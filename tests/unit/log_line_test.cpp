// The hand-made JSON log line: it must parse as JSON whatever bytes a client sent, keep valid
// UTF-8 as it is, and keep every field's type.
#include "proxy/log/log_line.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace gatehouse::log {
namespace {

nlohmann::json parse(const std::string& line) {
  REQUIRE(!line.empty());
  REQUIRE(line.back() == '\n');
  REQUIRE(line.find('\n') == line.size() - 1);  // one line, whatever the fields held
  return nlohmann::json::parse(line);           // strict: throws on invalid UTF-8 or JSON
}

std::string lineWith(std::vector<Field> fields) {
  return formatLine("2026-11-23T18:37:39.654Z", Level::Warn, "session end", fields.data(),
                    fields.data() + fields.size());
}

TEST_CASE("log line: ts, level and msg first, then the fields in order, with their types",
          "[log]") {
  uint64_t bytes = std::numeric_limits<uint64_t>::max();
  int64_t age = -5;
  std::string line = lineWith({{"user", std::string("alice")},
                               {"tls", true},
                               {"bytes_in", bytes},
                               {"age_s", age},
                               {"workers", 2},
                               {"listener", "imaps"}});
  CHECK(line.rfind(R"({"ts":"2026-11-23T18:37:39.654Z","level":"warn","msg":"session end",)", 0) ==
        0);
  nlohmann::json j = parse(line);
  CHECK(j["user"] == "alice");
  CHECK(j["tls"] == true);
  CHECK(j["bytes_in"].get<uint64_t>() == bytes);
  CHECK(j["age_s"].get<int64_t>() == -5);
  CHECK(j["workers"] == 2);
  CHECK(j["listener"] == "imaps");
  CHECK(line.find("\"user\"") < line.find("\"tls\""));
}

TEST_CASE("log line: an empty optional field is left out", "[log]") {
  nlohmann::json j = parse(lineWith({Field::unlessEmpty("next", ""), {"backend", "A"}}));
  CHECK_FALSE(j.contains("next"));
  CHECK(j["backend"] == "A");
  CHECK(parse(lineWith({Field::unlessEmpty("next", "smtp")}))["next"] == "smtp");
}

TEST_CASE("log line: quotes, backslashes and control characters are escaped", "[log]") {
  std::string nasty = std::string("a\"b\\c\r\nd\te") + '\0' + "\x01\x1f\x7f" + "} {\"x\":1";
  nlohmann::json j = parse(lineWith({{"reason", nasty}, {nasty, "key too"}}));
  CHECK(j["reason"] == nasty);
  CHECK(j[nasty] == "key too");
}

TEST_CASE("log line: valid UTF-8 is kept, anything else becomes U+FFFD", "[log]") {
  const std::string valid = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9D\x84\x9E";  // café € 𝄞
  CHECK(parse(lineWith({{"user", valid}}))["user"] == valid);
  const std::string replacement = "\xEF\xBF\xBD";
  struct Case {
    std::string input;
    std::string expected;
  };
  for (const Case& c : std::vector<Case>{
           {"\xFF", replacement},                                      // never valid
           {"\x80", replacement},                                      // lone continuation
           {"\xC0\xAF", replacement + replacement},                    // overlong '/'
           {"\xE0\x80\xAF", replacement + replacement + replacement},  // overlong '/'
           {"\xED\xA0\x80", replacement + replacement + replacement},  // surrogate D800
           {"\xF4\x90\x80\x80",
            replacement + replacement + replacement + replacement},  // > U+10FFFF
           {"a\xE2\x82", "a" + replacement + replacement},           // cut short
           {"\xC3\xA9\xC3", "\xC3\xA9" + replacement},               // valid, then cut short
       }) {
    CHECK(parse(lineWith({{"user", c.input}}))["user"] == c.expected);
  }
}

}  // namespace
}  // namespace gatehouse::log
