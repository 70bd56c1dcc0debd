// Tests for verifyPassword/isSupportedHash with vectors made by slappasswd and doveadm pw
// (password "secret"), plus wrong passwords, tampered hashes and refused schemes.
#include "directory/password_hash.h"

#include <catch2/catch.hpp>
#include <string>

namespace gatehouse {
namespace {

// slappasswd -h {SSHA} -s secret
constexpr const char* kSsha = "{SSHA}hKA/q2Rho3mtLe8pwHNGmxe+Y0K7hyUu";
// doveadm pw -s SSHA512 -p secret
constexpr const char* kSsha512 =
    "{SSHA512}fUuTAzTNRlARAClbfOhwtbPjE1L3UXzeizVmvhvcNG71QWTtn/8y70yztnKaAfQ9dIps7WPPsZvbZYOngvHP"
    "DrCu0Io=";
// doveadm pw -s SHA512-CRYPT -p secret
constexpr const char* kSha512Crypt =
    "{SHA512-CRYPT}$6$Y3lkeOY7QurM3ua/$WjY1xGlFmeC64xW.V6dNpolVfuE6vhc29nKA6R3wtR8/2Sb9NKrqvBW/"
    "MltIqGtw3w0XTjoeUfl9pay20TXVE1";
// doveadm pw -s SHA256-CRYPT -p secret
constexpr const char* kSha256Crypt =
    "{SHA256-CRYPT}$5$mXSr2TnI8fmyeAAe$qJ1qT1/Yi2OTD/X1Yb65CX.4BKGv9PuANOMBw2Q8Kt6";
// doveadm pw -s BLF-CRYPT -p secret
constexpr const char* kBlfCrypt =
    "{BLF-CRYPT}$2y$05$EbDuX4VhhSYrH7Y/35IqLOmKf8HU74CxJfTiveSI9ms.qTk6wOF5O";
// doveadm pw -s CRYPT -p secret (Dovecot's CRYPT is bcrypt)
constexpr const char* kCryptBcrypt =
    "{CRYPT}$2y$05$VEZ.QY8hA3R0q.jUS2MQ4eFiA0Od.vtmerxZWOY8v3CiU3oFcc4gu";
// Python crypt.crypt("secret", mksalt(METHOD_SHA512, rounds=10000)): explicit rounds
constexpr const char* kBareSha512Rounds =
    "$6$rounds=10000$zbtwlFLKOoMl4rE2$te/U84vSHfHM3BFMp7mY0qk8tTTkOuQtHcUULln4toXbZFxoWQ7kmm9BKyQTi"
    "lcroqEPBfKZQp6hs9anL8mp4.";
// libcrypt crypt("secret", crypt_gensalt("$y$")): yescrypt, Debian's /etc/shadow default
constexpr const char* kYescrypt =
    "$y$j9T$1Z7i6uIu1ogZvm/tWpkx4.$wMo1KI93c80MmUv/3aUJsNq7uigU8pXQ/nE6YciMvK7";

// The crypt string without its {SHA512-CRYPT} prefix, which {CRYPT} and bare use must accept.
std::string sha512CryptBody() {
  std::string s = kSha512Crypt;
  return s.substr(s.find('}') + 1);
}

// One character changed to another legal character of the same alphabet.
std::string tamper(std::string s, size_t pos) {
  s[pos] = s[pos] == 'A' ? 'B' : 'A';
  return s;
}

TEST_CASE("each supported format accepts the right password", "[password_hash]") {
  std::string crypt_prefixed = "{CRYPT}" + sha512CryptBody();
  std::string bare = sha512CryptBody();
  for (const char* hash : {kSsha, kSsha512, kSha512Crypt, kSha256Crypt, kBlfCrypt, kCryptBcrypt,
                           kBareSha512Rounds, kYescrypt, crypt_prefixed.c_str(), bare.c_str()}) {
    INFO(hash);
    CHECK(isSupportedHash(hash));
    CHECK(verifyPassword(hash, "secret"));
  }
}

TEST_CASE("each format refuses a wrong password", "[password_hash]") {
  for (const char* hash : {kSsha, kSsha512, kSha512Crypt, kSha256Crypt, kBlfCrypt, kCryptBcrypt,
                           kBareSha512Rounds, kYescrypt}) {
    INFO(hash);
    CHECK_FALSE(verifyPassword(hash, "Secret"));
    CHECK_FALSE(verifyPassword(hash, "secret "));
    CHECK_FALSE(verifyPassword(hash, "secre"));
    CHECK_FALSE(verifyPassword(hash, ""));
  }
}

TEST_CASE("a tampered hash refuses the right password", "[password_hash]") {
  std::string ssha = kSsha;
  CHECK_FALSE(verifyPassword(tamper(ssha, 10), "secret"));  // in the digest
  CHECK_FALSE(verifyPassword(tamper(ssha, 36), "secret"));  // in the salt
  std::string ssha512 = kSsha512;
  CHECK_FALSE(verifyPassword(tamper(ssha512, 20), "secret"));
  CHECK_FALSE(verifyPassword(tamper(ssha512, ssha512.size() - 4), "secret"));
  std::string sha512 = kSha512Crypt;
  CHECK_FALSE(verifyPassword(tamper(sha512, 20), "secret"));                  // salt
  CHECK_FALSE(verifyPassword(tamper(sha512, sha512.size() - 10), "secret"));  // hash
  std::string sha256 = kSha256Crypt;
  CHECK_FALSE(verifyPassword(tamper(sha256, sha256.size() - 10), "secret"));
  std::string blf = kBlfCrypt;
  CHECK_FALSE(verifyPassword(tamper(blf, blf.size() - 10), "secret"));
  std::string yes = kYescrypt;
  CHECK_FALSE(verifyPassword(tamper(yes, yes.size() - 10), "secret"));
}

TEST_CASE("truncated or extended hashes are refused", "[password_hash]") {
  for (std::string hash : {std::string(kSsha), std::string(kSsha512), std::string(kSha512Crypt),
                           std::string(kBlfCrypt)}) {
    INFO(hash);
    // For salted SHA, 4 characters less still leave a shorter salt, so only the crypt strings
    // are malformed; all of them must fail verification.
    std::string shorter = hash.substr(0, hash.size() - 4);
    if (hash.find('$') != std::string::npos) CHECK_FALSE(isSupportedHash(shorter));
    CHECK_FALSE(verifyPassword(shorter, "secret"));
    CHECK_FALSE(verifyPassword(hash + "AAAA", "secret"));
  }
}

TEST_CASE("scheme names are case-insensitive", "[password_hash]") {
  std::string ssha = kSsha;
  CHECK(verifyPassword("{ssha}" + ssha.substr(6), "secret"));
  CHECK(verifyPassword("{sha512-crypt}" + sha512CryptBody(), "secret"));
}

TEST_CASE("a prefix must match its crypt algorithm", "[password_hash]") {
  std::string sha256 = kSha256Crypt;
  std::string body256 = sha256.substr(sha256.find('}') + 1);
  CHECK_FALSE(isSupportedHash("{SHA512-CRYPT}" + body256));
  CHECK_FALSE(verifyPassword("{SHA512-CRYPT}" + body256, "secret"));
  CHECK_FALSE(isSupportedHash("{BLF-CRYPT}" + sha512CryptBody()));
}

TEST_CASE("unknown, weak and malformed schemes are refused", "[password_hash]") {
  for (const char* hash : {
           "{PLAIN}secret",
           "{CLEARTEXT}secret",
           "secret",
           "",
           "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=",   // unsalted SHA-1 of "secret"
           "{MD5}Xr4ilOzQ4PCOq3aQ0qbuaQ==",       // unsalted MD5 of "secret"
           "abJnggxhB/yJU",                       // DES crypt
           "$1$abcdefgh$G//4keteveJMy0eIdZt.A.",  // MD5 crypt
           "{CRYPT}abJnggxhB/yJU",
           "{SSHA}hKA/q2Rho3mtLe8pwHNGmxe+Y0K7hy",     // length not a multiple of 4
           "{SSHA}hKA/q2Rho3mtLe8pw HNGmxe+Y0K7hyUu",  // whitespace
           "{SSHA}5en6G6MezRroT3XKqkdPOmY/BfQ=",       // digest only, no salt
           "{SSHA",
           "$6$$",
           "$6$salt$",
       }) {
    INFO(hash);
    CHECK_FALSE(isSupportedHash(hash));
    CHECK_FALSE(verifyPassword(hash, "secret"));
  }
}

TEST_CASE("a password containing NUL never matches a crypt hash", "[password_hash]") {
  using namespace std::string_view_literals;
  CHECK_FALSE(verifyPassword(kSha512Crypt, "secret\0garbage"sv));
  CHECK_FALSE(verifyPassword(kSsha, "secret\0"sv));
}

}  // namespace
}  // namespace gatehouse
