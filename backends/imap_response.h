// Pure parsing of what an IMAP server sends: one response line (status, tag, response code),
// capability lists, and a scanner that follows the server's byte stream across literals.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

// Follows a server's output as it is relayed: where lines start and end and which bytes are
// literal payload, so that the proxy knows whether it may inject a line and whether the server
// already said BYE. Looks at every byte outside literals; literal payloads are skipped in bulk.
class ResponseScanner {
 public:
  void feed(std::string_view data);
  bool atLineStart() const { return literal_left_ == 0 && line_len_ == 0; }
  bool sawBye() const { return saw_bye_; }

 private:
  void endOfLine();

  uint64_t literal_left_ = 0;
  uint64_t line_len_ = 0;
  std::string head_;  // first bytes of the current line (to spot "* BYE")
  std::string tail_;  // last bytes before the line end (to spot "{123}")
  bool saw_bye_ = false;
};

// The size announced by a line that ends in "{n}" or "{n+}" (before CRLF), if any.
std::optional<uint64_t> trailingLiteralSize(std::string_view line);

}  // namespace gatehouse::imap
