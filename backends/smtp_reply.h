// Pure parsing of what an SMTP server sends (RFC 5321 4.2): reply lines and EHLO keywords, and
// xtext for the values Gatehouse sends in XCLIENT.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gatehouse::smtp {

struct ReplyLine {
  int code = 0;           // 200..599
  bool last = true;       // "250 text" (or "250"), not "250-text"
  std::string_view text;  // after the separator
};

// `line` without its line end. nullopt unless three digits 2-5, 0-5, 0-9 and then ' ', '-' or
// nothing.
std::optional<ReplyLine> parseReplyLine(std::string_view line);

// Whether a reply line starting with `head` (its first four bytes, or all of it if shorter; the
// LF excluded) is the last line of a final reply: a 2xx, 4xx or 5xx code without '-' after it.
// 3xx (334 for AUTH, 354 for DATA) leave the command waiting for its final reply. Looser than
// parseReplyLine ("250\r" ends a reply too): a relay counting replies must not miss one the
// client will take as final.
inline bool endsFinalReply(std::string_view head) {
  if (head.size() < 3) return false;
  const bool digits = head[0] >= '2' && head[0] <= '5' && head[1] >= '0' && head[1] <= '9' &&
                      head[2] >= '0' && head[2] <= '9';
  return digits && head[0] != '3' && (head.size() == 3 || head[3] != '-');
}

// One EHLO extension line ("SIZE 10240000", "AUTH PLAIN LOGIN"): keyword upper-cased, parameters
// as sent (split at spaces).
struct EhloKeyword {
  std::string name;
  std::vector<std::string> params;
};
EhloKeyword parseEhloLine(std::string_view text);
// The keyword called `name` (upper case) in `keywords`, or nullptr.
const EhloKeyword* findKeyword(const std::vector<EhloKeyword>& keywords, std::string_view name);
// Whether `keyword` has the parameter `param` (compared case-insensitively).
bool hasParam(const EhloKeyword& keyword, std::string_view param);

// xtext (RFC 3461 4): '!'..'~' except '+' and '=' as they are, every other byte as "+XX".
std::string xtext(std::string_view value);

}  // namespace gatehouse::smtp
