// libFuzzer target for RFC 4515 escaping and template expansion: whatever the login, the escaped
// value holds no unescaped filter metacharacter, and expansion adds nothing but that value.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "directory/ldap_filter.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using fuzzing::check;

bool isHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

// Every '*', '(', ')' and NUL is absent and every '\' starts a valid \XX escape; decoding the
// escapes gives back the input.
void checkEscaped(std::string_view input, const std::string& escaped) {
  std::string decoded;
  for (size_t i = 0; i < escaped.size(); ++i) {
    char c = escaped[i];
    check(c != '*' && c != '(' && c != ')' && c != '\0', "unescaped special in output");
    if (c != '\\') {
      decoded += c;
      continue;
    }
    check(i + 2 < escaped.size(), "truncated escape");
    check(isHex(escaped[i + 1]) && isHex(escaped[i + 2]), "escape is not two hex digits");
    decoded += static_cast<char>(std::stoi(escaped.substr(i + 1, 2), nullptr, 16));
    i += 2;
  }
  check(decoded == input, "escaping is not reversible");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string escaped = gatehouse::escapeFilterValue(input);
  checkEscaped(input, escaped);

  auto filter = gatehouse::expandFilter("(|(uid=%u)(mail=%u)(cn=100%%))", input);
  check(filter.has_value(), "default template rejected");
  check(*filter == "(|(uid=" + escaped + ")(mail=" + escaped + ")(cn=100%))",
        "expansion differs from the escaped value in place");

  // The input as a template: expansion either refuses it or replaces only %u and %%.
  std::string problem;
  bool valid = gatehouse::isValidFilterTemplate(input, problem);
  check(valid == gatehouse::expandFilter(input, "x").has_value(),
        "validity and expansion disagree");
  return 0;
}
