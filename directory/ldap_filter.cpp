// RFC 4515 value escaping and %u/%% template expansion; the login never reaches a filter except
// through escapeFilterValue, so no login can add a term or a wildcard to the search.
#include "directory/ldap_filter.h"

namespace gatehouse {

std::string escapeFilterValue(std::string_view value) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '*' || c == '(' || c == ')' || c == '\\' || c == '\0') {
      auto byte = static_cast<unsigned char>(c);
      out += '\\';
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

bool isValidFilterTemplate(std::string_view filter_template, std::string& problem) {
  bool has_login = false;
  for (size_t i = 0; i < filter_template.size(); ++i) {
    if (filter_template[i] == '\0') {
      problem = "must not contain NUL";
      return false;
    }
    if (filter_template[i] != '%') continue;
    char next = i + 1 < filter_template.size() ? filter_template[i + 1] : '\0';
    if (next == 'u') {
      has_login = true;
    } else if (next != '%') {
      problem = "'%' must be followed by 'u' (the login) or '%' (a literal '%')";
      return false;
    }
    ++i;
  }
  if (!has_login) {
    problem = "must contain %u (the escaped login)";
    return false;
  }
  if (filter_template.empty() || filter_template.front() != '(' || filter_template.back() != ')') {
    problem = "must be a parenthesised LDAP filter such as (uid=%u)";
    return false;
  }
  return true;
}

std::optional<std::string> expandFilter(std::string_view filter_template, std::string_view login) {
  std::string problem;
  if (!isValidFilterTemplate(filter_template, problem)) return std::nullopt;
  std::string escaped = escapeFilterValue(login);
  std::string out;
  out.reserve(filter_template.size() + escaped.size());
  for (size_t i = 0; i < filter_template.size(); ++i) {
    if (filter_template[i] != '%') {
      out += filter_template[i];
      continue;
    }
    out += filter_template[i + 1] == 'u' ? escaped : std::string("%");
    ++i;
  }
  return out;
}

}  // namespace gatehouse
