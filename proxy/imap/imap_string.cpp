// How Gatehouse writes IMAP strings (quoted, literal, astring) when it replays a login to a
// back-end.
#include "proxy/imap/imap_string.h"

namespace gatehouse::imap {

bool isQuotable(std::string_view value) {
  for (char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == 0 || c == '\r' || c == '\n' || c >= 0x80) return false;
  }
  return true;
}

std::string imapQuoted(std::string_view value) {
  std::string out;
  out.reserve(value.size() + 2);
  out.push_back('"');
  for (char c : value) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string imapLiteral(std::string_view value, bool literal_plus) {
  std::string out = "{" + std::to_string(value.size()) + (literal_plus ? "+}\r\n" : "}\r\n");
  out.append(value);
  return out;
}

std::string imapAstring(std::string_view value, bool literal_plus) {
  return isQuotable(value) ? imapQuoted(value) : imapLiteral(value, literal_plus);
}

}  // namespace gatehouse::imap
