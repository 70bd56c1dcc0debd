// Login normalisation: each step is a plain string operation so its effect on odd input (several
// '@' or '\', UTF-8, empty parts) is easy to state and test.
#include "directory/login_normalizer.h"

#include <algorithm>

#include "proxy/core/ascii.h"

namespace gatehouse {
namespace {

// Control bytes end up in LDAP filters, logs and back-end commands; 0x80 and above are left
// alone so that UTF-8 logins pass.
bool hasControlByte(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    auto byte = static_cast<unsigned char>(c);
    return byte < 0x20 || byte == 0x7f;
  });
}

}  // namespace

LoginNormalizer::LoginNormalizer(const LoginNormalizationConfig& config)
    : lowercase_(config.lowercase),
      accept_backslash_domain_(config.accept_backslash_domain),
      default_domain_(config.default_domain) {
  for (const std::string& domain : config.strip_domain) {
    if (domain == "*") {
      strip_any_domain_ = true;
    } else {
      strip_domains_.push_back(asciiLower(domain));
    }
  }
}

std::optional<std::string> LoginNormalizer::normalize(std::string_view login) const {
  if (login.empty() || login.size() > kMaxLoginBytes || hasControlByte(login)) return std::nullopt;
  std::string_view name = login;
  // `EXAMPLE\alice`: only a well-formed NT name is rewritten (a non-empty domain without '@' and
  // a non-empty user); anything else stays literal and the directory matches it or not at all.
  // The last backslash counts, so that normalising twice changes nothing.
  if (accept_backslash_domain_) {
    size_t slash = name.rfind('\\');
    if (slash != std::string_view::npos && slash > 0 && slash + 1 < name.size() &&
        name.substr(0, slash).find('@') == std::string_view::npos) {
      name.remove_prefix(slash + 1);
    }
  }
  std::string out = lowercase_ ? asciiLower(name) : std::string(name);
  size_t at = out.find('@');
  // A quoted local part may hold an '@' (RFC 5321), but no directory we front uses one, and with
  // two the split (and so the cache key) would depend on which '@' is meant.
  if (at != std::string::npos && out.find('@', at + 1) != std::string::npos) return std::nullopt;
  if (at != std::string::npos) {
    std::string_view domain = std::string_view(out).substr(at + 1);
    bool strip = strip_any_domain_ || std::any_of(strip_domains_.begin(), strip_domains_.end(),
                                                  [domain](const std::string& d) {
                                                    return asciiEqualsIgnoreCase(d, domain);
                                                  });
    if (strip) {
      out.resize(at);
      at = std::string::npos;
    }
  }
  if (at == std::string::npos && !default_domain_.empty()) {
    out += '@';
    out += lowercase_ ? asciiLower(default_domain_) : default_domain_;
  }
  if (out.empty() || out.front() == '@' || out.size() > kMaxLoginBytes) return std::nullopt;
  return out;
}

}  // namespace gatehouse
