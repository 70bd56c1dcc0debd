// How Gatehouse writes IMAP strings (quoted, literal, astring) when it replays a login to a
// back-end.
#include "proxy/imap/imap_string.h"

#include <algorithm>
#include <charconv>

namespace gatehouse::imap {
namespace {

// "{" + 20 digits (the longest size_t) + "+}\r\n".
constexpr std::size_t kLiteralPrefixMax = 1 + 20 + 4;

}  // namespace

bool isQuotable(std::string_view value) {
  for (char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == 0 || c == '\r' || c == '\n' || c >= 0x80) return false;
  }
  return true;
}

void appendQuoted(std::string& out, std::string_view value) {
  out.push_back('"');
  for (char c : value) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
}

void appendLiteral(std::string& out, std::string_view value, bool literal_plus) {
  char digits[20];
  const auto [end, ec] = std::to_chars(std::begin(digits), std::end(digits), value.size());
  (void)ec;  // 20 digits hold any size_t
  out.push_back('{');
  out.append(digits, end);
  out.append(literal_plus ? "+}\r\n" : "}\r\n");
  out.append(value);
}

void appendAstring(std::string& out, std::string_view value, bool literal_plus) {
  if (isQuotable(value)) {
    appendQuoted(out, value);
  } else {
    appendLiteral(out, value, literal_plus);
  }
}

std::size_t astringCapacity(std::string_view value) {
  return std::max(2 * value.size() + 2, value.size() + kLiteralPrefixMax);
}

std::string imapQuoted(std::string_view value) {
  std::string out;
  out.reserve(value.size() + 2);
  appendQuoted(out, value);
  return out;
}

std::string imapLiteral(std::string_view value, bool literal_plus) {
  std::string out;
  out.reserve(value.size() + kLiteralPrefixMax);
  appendLiteral(out, value, literal_plus);
  return out;
}

std::string imapAstring(std::string_view value, bool literal_plus) {
  std::string out;
  out.reserve(astringCapacity(value));
  appendAstring(out, value, literal_plus);
  return out;
}

}  // namespace gatehouse::imap
