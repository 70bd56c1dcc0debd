// The server side of SASL PLAIN (RFC 4616) and LOGIN as IMAP AUTHENTICATE, POP3 AUTH and SMTP
// AUTH all use them: pure code over base64 lines, no sockets, no protocol framing.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "proxy/core/secret.h"

namespace gatehouse {

class SaslServer {
 public:
  enum class Mechanism { Plain, Login };
  enum class Outcome {
    Challenge,  // send `challenge` (base64, may be empty) and wait for the next client line
    Done,       // user and password are set
    Aborted,    // the client sent "*"
    Malformed,  // bad base64 or a malformed PLAIN message: a protocol error
    Refused,    // well-formed but unacceptable (authzid for someone else, NUL in a name)
  };
  struct Step {
    Outcome outcome = Outcome::Malformed;
    std::string challenge;
    std::string user;
    Secret password;
  };

  // Case-insensitive mechanism name ("PLAIN", "login"); nullopt if unsupported.
  static std::optional<Mechanism> mechanismFrom(std::string_view name);

  explicit SaslServer(Mechanism mechanism) : mechanism_(mechanism) {}

  // `initial` is the SASL-IR / AUTH initial response as sent ("=" means empty), if any.
  Step start(std::optional<std::string_view> initial);
  // One client line (base64 or "*"), line end removed.
  Step respond(std::string_view line);

 private:
  Step consume(const std::string& decoded);

  Mechanism mechanism_;
  std::string login_user_;  // LOGIN: the name given in the first step
};

}  // namespace gatehouse
