// Password verification for stored hashes: salted SHA via BoringSSL, crypt(3) strings via
// libcrypt's reentrant crypt_r. Every final comparison is CRYPTO_memcmp.
#include "directory/password_hash.h"

#include <crypt.h>
#include <openssl/base64.h>
#include <openssl/mem.h>
#include <openssl/sha.h>

#include <array>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace gatehouse {
namespace {

// slappasswd and doveadm write 4 salt bytes; others write up to 16. Bounded so a hostile
// configuration cannot make us decode megabytes, and non-empty so an unsalted {SHA} does not pass.
constexpr size_t kMinSalt = 1;
constexpr size_t kMaxSalt = 64;
// crypt(3) setting strings are short; anything longer is not one of ours.
constexpr size_t kMaxCryptLength = 256;

enum class Scheme { Ssha, Ssha512, Crypt };

// Which crypt(3) algorithms a prefix admits. {CRYPT} and a bare string admit all of them.
enum CryptFamily : unsigned {
  kSha512Crypt = 1u << 0,
  kSha256Crypt = 1u << 1,
  kBcrypt = 1u << 2,
  kYescrypt = 1u << 3,
  kAnyCrypt = kSha512Crypt | kSha256Crypt | kBcrypt | kYescrypt,
};

struct ParsedHash {
  Scheme scheme;
  std::string_view body;  // after the {SCHEME} prefix
  unsigned families = kAnyCrypt;
};

bool equalsNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'a' && x <= 'z') x = static_cast<char>(x - 'a' + 'A');
    if (y >= 'a' && y <= 'z') y = static_cast<char>(y - 'a' + 'A');
    if (x != y) return false;
  }
  return true;
}

// Splits "{NAME}body"; a string without a prefix is a crypt(3) string. Scheme names are
// case-insensitive, as in OpenLDAP and Dovecot.
std::optional<ParsedHash> splitScheme(std::string_view stored) {
  if (stored.empty() || stored.front() != '{') return ParsedHash{Scheme::Crypt, stored, kAnyCrypt};
  size_t close = stored.find('}');
  if (close == std::string_view::npos) return std::nullopt;
  std::string_view name = stored.substr(1, close - 1);
  std::string_view body = stored.substr(close + 1);
  if (equalsNoCase(name, "SSHA")) return ParsedHash{Scheme::Ssha, body};
  if (equalsNoCase(name, "SSHA512")) return ParsedHash{Scheme::Ssha512, body};
  if (equalsNoCase(name, "CRYPT")) return ParsedHash{Scheme::Crypt, body, kAnyCrypt};
  if (equalsNoCase(name, "SHA512-CRYPT")) return ParsedHash{Scheme::Crypt, body, kSha512Crypt};
  if (equalsNoCase(name, "SHA256-CRYPT")) return ParsedHash{Scheme::Crypt, body, kSha256Crypt};
  if (equalsNoCase(name, "BLF-CRYPT")) return ParsedHash{Scheme::Crypt, body, kBcrypt};
  return std::nullopt;
}

bool isHash64Char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '/';
}

bool isHash64(std::string_view s) {
  for (char c : s) {
    if (!isHash64Char(c)) return false;
  }
  return true;
}

bool isDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool consumePrefix(std::string_view& s, std::string_view prefix) {
  if (s.substr(0, prefix.size()) != prefix) return false;
  s.remove_prefix(prefix.size());
  return true;
}

// After "$6$" or "$5$": [rounds=N$]salt$hash, salt 1-16 characters.
bool isShaCryptTail(std::string_view rest, size_t hash_length) {
  if (consumePrefix(rest, "rounds=")) {
    size_t dollar = rest.find('$');
    if (dollar == std::string_view::npos || dollar > 9 || !isDigits(rest.substr(0, dollar))) {
      return false;
    }
    rest.remove_prefix(dollar + 1);
  }
  size_t dollar = rest.find('$');
  if (dollar == std::string_view::npos || dollar < 1 || dollar > 16) return false;
  std::string_view salt = rest.substr(0, dollar);
  std::string_view hash = rest.substr(dollar + 1);
  return isHash64(salt) && hash.size() == hash_length && isHash64(hash);
}

// After "$2b$" or "$2y$": two cost digits, '$', 22 salt and 31 hash characters.
bool isBcryptTail(std::string_view rest) {
  return rest.size() == 56 && isDigits(rest.substr(0, 2)) && rest[2] == '$' &&
         isHash64(rest.substr(3));
}

// After "$y$": params$salt$hash with a 43-character hash.
bool isYescryptTail(std::string_view rest) {
  size_t first = rest.find('$');
  if (first == std::string_view::npos || first == 0) return false;
  size_t second = rest.find('$', first + 1);
  if (second == std::string_view::npos || second == first + 1) return false;
  std::string_view params = rest.substr(0, first);
  std::string_view salt = rest.substr(first + 1, second - first - 1);
  std::string_view hash = rest.substr(second + 1);
  return isHash64(params) && isHash64(salt) && hash.size() == 43 && isHash64(hash);
}

// The shape libcrypt will accept for the families allowed. Old DES and MD5 crypt are refused:
// they are too weak to keep, and a missing prefix must not silently select them.
bool isWellFormedCrypt(std::string_view s, unsigned families) {
  if (s.size() > kMaxCryptLength) return false;
  std::string_view rest = s;
  if (consumePrefix(rest, "$6$")) return (families & kSha512Crypt) && isShaCryptTail(rest, 86);
  if (consumePrefix(rest, "$5$")) return (families & kSha256Crypt) && isShaCryptTail(rest, 43);
  if (consumePrefix(rest, "$2b$") || consumePrefix(rest, "$2y$")) {
    return (families & kBcrypt) && isBcryptTail(rest);
  }
  if (consumePrefix(rest, "$y$")) return (families & kYescrypt) && isYescryptTail(rest);
  return false;
}

// Strict base64 (padding required, no whitespace) into `out`.
bool decodeBase64(std::string_view in, std::vector<uint8_t>& out) {
  size_t max_out = 0;
  if (in.empty() || !EVP_DecodedLength(&max_out, in.size())) return false;
  out.resize(max_out);
  size_t out_len = 0;
  if (!EVP_DecodeBase64(out.data(), &out_len, out.size(),
                        reinterpret_cast<const uint8_t*>(in.data()), in.size())) {
    return false;
  }
  out.resize(out_len);
  return true;
}

size_t digestLength(Scheme scheme) {
  return scheme == Scheme::Ssha ? SHA_DIGEST_LENGTH : SHA512_DIGEST_LENGTH;
}

// Decodes base64(digest || salt) and checks the salt length.
bool decodeSalted(Scheme scheme, std::string_view body, std::vector<uint8_t>& raw) {
  if (!decodeBase64(body, raw)) return false;
  size_t digest = digestLength(scheme);
  return raw.size() >= digest + kMinSalt && raw.size() <= digest + kMaxSalt;
}

// digest(password || salt) into `out`, which holds SHA512_DIGEST_LENGTH bytes.
void saltedDigest(Scheme scheme, std::string_view password, const uint8_t* salt, size_t salt_len,
                  uint8_t* out) {
  if (scheme == Scheme::Ssha) {
    SHA_CTX ctx;
    SHA1_Init(&ctx);
    SHA1_Update(&ctx, password.data(), password.size());
    SHA1_Update(&ctx, salt, salt_len);
    SHA1_Final(out, &ctx);
    OPENSSL_cleanse(&ctx, sizeof ctx);  // it buffered password bytes
  } else {
    SHA512_CTX ctx;
    SHA512_Init(&ctx);
    SHA512_Update(&ctx, password.data(), password.size());
    SHA512_Update(&ctx, salt, salt_len);
    SHA512_Final(out, &ctx);
    OPENSSL_cleanse(&ctx, sizeof ctx);
  }
}

bool verifySalted(Scheme scheme, std::string_view body, std::string_view password) {
  std::vector<uint8_t> raw;
  if (!decodeSalted(scheme, body, raw)) return false;
  size_t digest = digestLength(scheme);
  std::array<uint8_t, SHA512_DIGEST_LENGTH> computed{};
  saltedDigest(scheme, password, raw.data() + digest, raw.size() - digest, computed.data());
  bool match = CRYPTO_memcmp(computed.data(), raw.data(), digest) == 0;
  OPENSSL_cleanse(computed.data(), computed.size());
  return match;
}

bool verifyCrypt(std::string_view setting, std::string_view password) {
  // crypt_r takes C strings: a NUL would silently cut the password short.
  if (password.find('\0') != std::string_view::npos) return false;
  std::string key(password);
  std::string stored(setting);
  auto data = std::make_unique<crypt_data>();  // value-initialised: zeroed, as crypt_r requires
  const char* out = crypt_r(key.c_str(), stored.c_str(), data.get());
  // A failing crypt_r returns NULL or a string starting with '*', never equal to a valid setting.
  bool match = out != nullptr && out[0] != '*' && std::strlen(out) == stored.size() &&
               CRYPTO_memcmp(out, stored.data(), stored.size()) == 0;
  OPENSSL_cleanse(key.data(), key.size());
  OPENSSL_cleanse(data.get(), sizeof(crypt_data));
  return match;
}

}  // namespace

bool verifyPassword(std::string_view stored, std::string_view password) {
  auto parsed = splitScheme(stored);
  if (!parsed) return false;
  switch (parsed->scheme) {
    case Scheme::Ssha:
    case Scheme::Ssha512:
      return verifySalted(parsed->scheme, parsed->body, password);
    case Scheme::Crypt:
      return isWellFormedCrypt(parsed->body, parsed->families) &&
             verifyCrypt(parsed->body, password);
  }
  return false;
}

bool isSlowHash(std::string_view stored) {
  auto parsed = splitScheme(stored);
  return parsed && parsed->scheme == Scheme::Crypt;
}

bool isSupportedHash(std::string_view stored) {
  auto parsed = splitScheme(stored);
  if (!parsed) return false;
  if (parsed->scheme == Scheme::Crypt) return isWellFormedCrypt(parsed->body, parsed->families);
  std::vector<uint8_t> raw;
  return decodeSalted(parsed->scheme, parsed->body, raw);
}

}  // namespace gatehouse
