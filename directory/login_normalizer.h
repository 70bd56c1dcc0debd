// Turns what a user typed as a login (`alice`, `Alice@Example.com`, `EXAMPLE\alice`) into the
// one name the cache and the directory look up. Pure code: no I/O, no state after construction.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/config/config.h"

namespace gatehouse {

class LoginNormalizer {
 public:
  // Longer logins are refused: no directory holds such names, and they bound the cache's keys.
  static constexpr size_t kMaxLoginBytes = 256;

  LoginNormalizer() = default;
  explicit LoginNormalizer(const LoginNormalizationConfig& config);

  // nullopt for a login no directory should see: empty, longer than kMaxLoginBytes (before or
  // after the default domain is added), holding a control byte (NUL, CR, LF, ..., DEL), with more
  // than one '@' or nothing before it. Normalising a result again returns it unchanged.
  // Steps, in order: `DOMAIN\user` -> `user` (if accepted); ASCII lower-casing; stripping a
  // listed `@domain`; appending `@default_domain` to a name that has no '@'.
  std::optional<std::string> normalize(std::string_view login) const;

 private:
  bool lowercase_ = true;
  bool accept_backslash_domain_ = false;
  bool strip_any_domain_ = false;
  std::vector<std::string> strip_domains_;  // ASCII lower case
  std::string default_domain_;
};

}  // namespace gatehouse
