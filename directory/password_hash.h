// Checks a password against a stored hash in the formats OpenLDAP and Dovecot write:
// {SSHA}, {SSHA512}, and crypt(3) strings ($6$, $5$, bcrypt, yescrypt) with or without a prefix.
#pragma once

#include <string_view>

namespace gatehouse {

// True only if `stored` is a well-formed hash of a supported scheme and `password` matches it.
// Thread-safe; the final comparison takes the same time wherever the first difference is.
bool verifyPassword(std::string_view stored, std::string_view password);

// True if verifyPassword() understands `stored` (used to reject a configuration early).
// Checks the shape only; it does not run the hash.
bool isSupportedHash(std::string_view stored);

// True for the crypt(3) schemes, whose cost is a work factor (milliseconds to seconds): checked
// away from a loop thread. False for salted SHA, one digest, cheaper than a thread hop.
bool isSlowHash(std::string_view stored);

// Describes the accepted formats, for configuration error messages.
inline constexpr std::string_view kSupportedHashes =
    "{SSHA}, {SSHA512}, {SHA512-CRYPT}$6$..., {SHA256-CRYPT}$5$..., {BLF-CRYPT}$2y$..., "
    "{CRYPT}$6$..., or a bare $6$/$5$/$2b$/$2y$/$y$ crypt string";

}  // namespace gatehouse
