// SMTP reply lines, EHLO keywords and xtext: pure code over bytes.
#include "backends/smtp_reply.h"

#include "proxy/core/ascii.h"

namespace gatehouse::smtp {

std::optional<ReplyLine> parseReplyLine(std::string_view line) {
  if (line.size() < 3) return std::nullopt;
  if (line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' || line[2] < '0' ||
      line[2] > '9') {
    return std::nullopt;
  }
  ReplyLine reply;
  reply.code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  if (line.size() == 3) return reply;
  if (line[3] != ' ' && line[3] != '-') return std::nullopt;
  reply.last = line[3] == ' ';
  reply.text = line.substr(4);
  return reply;
}

EhloKeyword parseEhloLine(std::string_view text) {
  EhloKeyword keyword;
  bool first = true;
  while (!text.empty()) {
    size_t space = text.find(' ');
    std::string_view word = text.substr(0, space);
    text = space == std::string_view::npos ? std::string_view() : text.substr(space + 1);
    if (word.empty()) continue;
    if (first) {
      keyword.name = asciiUpper(word);
      first = false;
    } else {
      keyword.params.emplace_back(word);
    }
  }
  return keyword;
}

const EhloKeyword* findKeyword(const std::vector<EhloKeyword>& keywords, std::string_view name) {
  for (const EhloKeyword& k : keywords) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

bool hasParam(const EhloKeyword& keyword, std::string_view param) {
  for (const std::string& p : keyword.params) {
    if (asciiEqualsIgnoreCase(p, param)) return true;
  }
  return false;
}

std::string xtext(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if (u >= '!' && u <= '~' && u != '+' && u != '=') {
      out.push_back(c);
    } else {
      out.push_back('+');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xf]);
    }
  }
  return out;
}

}  // namespace gatehouse::smtp
