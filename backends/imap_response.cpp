#include "backends/imap_response.h"

#include <algorithm>

#include "proxy/core/ascii.h"

namespace gatehouse::imap {
namespace {

ResponseStatus statusOf(std::string_view word) {
  if (asciiEqualsIgnoreCase(word, "OK")) return ResponseStatus::Ok;
  if (asciiEqualsIgnoreCase(word, "NO")) return ResponseStatus::No;
  if (asciiEqualsIgnoreCase(word, "BAD")) return ResponseStatus::Bad;
  if (asciiEqualsIgnoreCase(word, "BYE")) return ResponseStatus::Bye;
  if (asciiEqualsIgnoreCase(word, "PREAUTH")) return ResponseStatus::Preauth;
  return ResponseStatus::None;
}

std::string_view nextWord(std::string_view& rest) {
  auto space = rest.find(' ');
  std::string_view word = rest.substr(0, space);
  rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
  return word;
}

}  // namespace

std::optional<Response> parseResponseLine(std::string_view line) {
  Response r;
  if (!line.empty() && line.front() == '+') {
    r.kind = ResponseKind::Continuation;
    r.text = std::string(line.substr(line.size() > 1 && line[1] == ' ' ? 2 : 1));
    return r;
  }
  std::string_view rest = line;
  std::string_view tag = nextWord(rest);
  if (tag.empty()) return std::nullopt;
  if (tag == "*") {
    r.kind = ResponseKind::Untagged;
  } else {
    r.kind = ResponseKind::Tagged;
    r.tag = std::string(tag);
  }
  std::string_view before_status = rest;
  std::string_view word = nextWord(rest);
  r.status = statusOf(word);
  if (r.status == ResponseStatus::None) {
    if (r.kind == ResponseKind::Tagged) return std::nullopt;  // tagged lines always carry a status
    r.text = std::string(before_status);
    return r;
  }
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    r.code = std::string(rest.substr(1, close - 1));
    rest.remove_prefix(close + 1);
    if (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  }
  r.text = std::string(rest);
  return r;
}

std::vector<std::string_view> splitCapabilities(std::string_view list) {
  std::vector<std::string_view> caps;
  caps.reserve(32);
  std::string_view rest = list;
  bool first = true;
  while (!rest.empty()) {
    std::string_view word = nextWord(rest);
    if (word.empty()) continue;
    if (first && asciiEqualsIgnoreCase(word, "CAPABILITY")) {
      first = false;
      continue;
    }
    first = false;
    caps.push_back(word);
  }
  return caps;
}

bool hasCapability(const std::vector<std::string_view>& caps, std::string_view name) {
  return std::any_of(caps.begin(), caps.end(),
                     [&](std::string_view c) { return asciiEqualsIgnoreCase(c, name); });
}

void ResponseScanner::feed(std::string_view data) {
  lines_.feed(data, [this](const LineStart& line) {
    if (asciiStartsWithIgnoreCase(line.head, "* BYE ")) saw_bye_ = true;
    // Untagged ("*") and continuation ("+") lines answer nothing; any other tag ends a command.
    if (!line.head.empty() && line.head.front() != '*' && line.head.front() != '+') ++tagged_;
  });
}

}  // namespace gatehouse::imap
