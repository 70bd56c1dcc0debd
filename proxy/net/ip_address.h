// IP address literals compared by value ("::1" and "0::1" are one address) and as socket
// addresses. Pure, no sockets.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
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

// One spelling per address, for counting by address: an IPv4 peer seen through a dual-stack
// socket or a PROXY header as "::ffff:192.0.2.1" is "192.0.2.1", and "0::1" is "::1". Text that
// is no address literal is returned as it is.
inline std::string canonicalIp(const std::string& text) {
  in6_addr v6{};
  if (inet_pton(AF_INET6, text.c_str(), &v6) != 1) return text;
  char out[INET6_ADDRSTRLEN] = {};
  if (IN6_IS_ADDR_V4MAPPED(&v6)) {
    if (inet_ntop(AF_INET, &v6.s6_addr[12], out, sizeof out) != nullptr) return out;
  } else if (inet_ntop(AF_INET6, &v6, out, sizeof out) != nullptr) {
    return out;
  }
  return text;
}

// `ip`:`port` as a socket address, for the literals ipAddressBytes() accepts (which is what the
// configuration allows); nullopt for anything else.
inline std::optional<sockaddr_storage> socketAddress(const std::string& ip, uint16_t port) {
  sockaddr_storage storage{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    return storage;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    return storage;
  }
  return std::nullopt;
}

// The length bind() and connect() want for `address`.
inline socklen_t socketAddressLength(const sockaddr_storage& address) {
  return address.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

}  // namespace gatehouse
