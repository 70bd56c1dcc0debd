// Pure parsing of what an IMAP server sends: one response line (status, tag, response code),
// capability lists, and a scanner that follows the server's byte stream across literals.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/imap/imap_line_follower.h"

namespace gatehouse::imap {

enum class ResponseKind { Untagged, Tagged, Continuation };
enum class ResponseStatus { None, Ok, No, Bad, Bye, Preauth };

struct Response {
  ResponseKind kind = ResponseKind::Untagged;
  std::string tag;                               // Tagged only
  ResponseStatus status = ResponseStatus::None;  // None for data responses ("* 3 EXISTS")
  std::string code;                              // inside [...], e.g. "CAPABILITY IMAP4rev1 IDLE"
  std::string text;                              // human-readable rest, or the data
};

// `line` without the trailing CRLF. nullopt if it is not a well-formed response.
std::optional<Response> parseResponseLine(std::string_view line);

// "CAPABILITY A B C" or "A B C" -> {"A","B","C"} (atoms as sent, viewing `list`: no allocation
// per atom, as this runs twice per login).
std::vector<std::string_view> splitCapabilities(std::string_view list);
bool hasCapability(const std::vector<std::string_view>& caps, std::string_view name);

// Follows a server's output as it is relayed: whether the proxy may inject a line now, whether
// the server already said BYE, and how many commands it has answered (tagged responses).
class ResponseScanner {
 public:
  void feed(std::string_view data);
  bool atLineStart() const { return lines_.atLineStart(); }
  bool sawBye() const { return saw_bye_; }
  uint64_t taggedResponses() const { return tagged_; }

 private:
  LineFollower lines_;
  uint64_t tagged_ = 0;
  bool saw_bye_ = false;
};

}  // namespace gatehouse::imap
