// Base64 as SASL needs it (RFC 4648 section 4, RFC 4422): encoding, and strict decoding of
// what a client sends.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace gatehouse {

// Standard alphabet with padding (RFC 4648 section 4), as SASL requires (RFC 4422).
std::string base64Encode(std::string_view data);

// Strict: length a multiple of 4, only alphabet characters, '=' only as final padding, and
// unused bits zero. Anything else (spaces, line breaks, URL alphabet) is rejected.
std::optional<std::string> base64Decode(std::string_view text);

}  // namespace gatehouse
