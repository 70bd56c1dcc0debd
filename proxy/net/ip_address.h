// IP address literals compared by value: "::1" and "0::1" are one address. Pure, no sockets.
#pragma once

#include <arpa/inet.h>

#include <array>
#include <optional>
#include <string>

namespace gatehouse {

// The 4 or 16 address bytes of an IPv4/IPv6 literal; nullopt if `text` is not one (names are
// never resolved).
inline std::optional<std::string> ipAddressBytes(const std::string& text) {
  std::array<unsigned char, 16> bytes{};
  if (inet_pton(AF_INET, text.c_str(), bytes.data()) == 1) {
    return std::string(bytes.begin(), bytes.begin() + 4);
  }
  if (inet_pton(AF_INET6, text.c_str(), bytes.data()) == 1) {
    return std::string(bytes.begin(), bytes.end());
  }
  return std::nullopt;
}

}  // namespace gatehouse
