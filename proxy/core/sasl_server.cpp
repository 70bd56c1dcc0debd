#include "proxy/core/sasl_server.h"

#include <openssl/mem.h>

#include "proxy/core/ascii.h"
#include "proxy/core/base64.h"

namespace gatehouse {
namespace {

constexpr std::string_view kLoginUserPrompt = "VXNlcm5hbWU6";  // "Username:"
constexpr std::string_view kLoginPassPrompt = "UGFzc3dvcmQ6";  // "Password:"

SaslServer::Step outcome(SaslServer::Outcome o) {
  SaslServer::Step step;
  step.outcome = o;
  return step;
}

}  // namespace

std::optional<SaslServer::Mechanism> SaslServer::mechanismFrom(std::string_view name) {
  if (asciiEqualsIgnoreCase(name, "PLAIN")) return Mechanism::Plain;
  if (asciiEqualsIgnoreCase(name, "LOGIN")) return Mechanism::Login;
  return std::nullopt;
}

SaslServer::Step SaslServer::start(std::optional<std::string_view> initial) {
  if (!initial) {
    Step step = outcome(Outcome::Challenge);
    if (mechanism_ == Mechanism::Login) step.challenge = kLoginUserPrompt;
    return step;
  }
  if (*initial == "=") {
    // An empty initial response. LOGIN's first message is the user name, which it asks for:
    // Dovecot and Postfix answer this with the "Username:" prompt, as if nothing had been sent.
    if (mechanism_ == Mechanism::Login) return start(std::nullopt);
    return consume(std::string());
  }
  return respond(*initial);
}

SaslServer::Step SaslServer::respond(std::string_view line) {
  if (line == "*") return outcome(Outcome::Aborted);
  auto decoded = base64Decode(line);
  if (!decoded) return outcome(Outcome::Malformed);
  Step step = consume(*decoded);
  OPENSSL_cleanse(decoded->data(), decoded->size());
  return step;
}

SaslServer::Step SaslServer::consume(const std::string& decoded) {
  if (mechanism_ == Mechanism::Login) {
    if (decoded.find('\0') != std::string::npos) return outcome(Outcome::Refused);
    if (login_user_.empty()) {
      if (decoded.empty()) return outcome(Outcome::Refused);
      login_user_ = decoded;
      Step step = outcome(Outcome::Challenge);
      step.challenge = kLoginPassPrompt;
      return step;
    }
    Step step = outcome(Outcome::Done);
    step.user = std::move(login_user_);
    step.password = Secret(decoded);
    return step;
  }
  // PLAIN: [authzid] NUL authcid NUL passwd. We only log in as authcid; an authzid naming
  // someone else asks to act as another user, which a proxy must never grant.
  std::string_view message = decoded;
  auto first = message.find('\0');
  auto second = first == std::string_view::npos ? first : message.find('\0', first + 1);
  // Valid base64 that is not a PLAIN message is a failed login (as Dovecot answers it), not bad
  // syntax.
  if (second == std::string_view::npos) return outcome(Outcome::Refused);
  std::string_view authzid = message.substr(0, first);
  std::string_view authcid = message.substr(first + 1, second - first - 1);
  std::string_view passwd = message.substr(second + 1);
  if (authcid.empty() || passwd.find('\0') != std::string_view::npos) {
    return outcome(Outcome::Refused);
  }
  if (!authzid.empty() && authzid != authcid) return outcome(Outcome::Refused);
  Step step = outcome(Outcome::Done);
  step.user = std::string(authcid);
  step.password = Secret(passwd);
  return step;
}

}  // namespace gatehouse
