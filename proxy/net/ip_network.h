// An IP network in CIDR form ("10.0.0.0/8", "fd00::/8", or one address) and whether an address
// lies in it: which peers may speak for someone else (load balancers sending the PROXY protocol).
// Pure, no sockets.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "proxy/net/ip_address.h"

namespace gatehouse {

class IpNetwork {
 public:
  // "address/prefix" or a bare address (the whole width); nullopt for anything else, including
  // host bits set below the prefix ("10.0.0.1/8": a typo more likely than a wish).
  static std::optional<IpNetwork> parse(std::string_view text) {
    size_t slash = text.find('/');
    std::optional<std::string> bytes = ipAddressBytes(std::string(text.substr(0, slash)));
    if (!bytes) return std::nullopt;
    size_t width = bytes->size() * 8;
    size_t prefix = width;
    if (slash != std::string_view::npos) {
      std::string_view digits = text.substr(slash + 1);
      if (digits.empty() || digits.size() > 3 || (digits.size() > 1 && digits[0] == '0')) {
        return std::nullopt;
      }
      prefix = 0;
      for (char c : digits) {
        if (c < '0' || c > '9') return std::nullopt;
        prefix = prefix * 10 + static_cast<size_t>(c - '0');
      }
      if (prefix > width) return std::nullopt;
    }
    IpNetwork network(std::move(*bytes), prefix);
    for (size_t bit = prefix; bit < width; ++bit) {
      if (network.bitAt(network.bytes_, bit)) return std::nullopt;  // host bits set
    }
    return network;
  }

  // An IPv4-mapped IPv6 address ("::ffff:10.1.2.3", as a dual-stack socket reports an IPv4
  // peer) is also matched against IPv4 networks.
  bool containsAddress(const std::string& ip) const {
    std::optional<std::string> bytes = ipAddressBytes(ip);
    if (!bytes) return false;
    if (bytes->size() == 16 && bytes_.size() == 4 && isV4Mapped(*bytes)) {
      return contains(bytes->substr(12));
    }
    return contains(*bytes);
  }

 private:
  IpNetwork(std::string bytes, size_t prefix) : bytes_(std::move(bytes)), prefix_(prefix) {}

  static bool bitAt(const std::string& bytes, size_t bit) {
    return (static_cast<unsigned char>(bytes[bit / 8]) >> (7 - bit % 8)) & 1;
  }
  static bool isV4Mapped(const std::string& bytes) {
    return bytes.compare(0, 12, std::string("\0\0\0\0\0\0\0\0\0\0\xff\xff", 12)) == 0;
  }
  bool contains(const std::string& bytes) const {
    if (bytes.size() != bytes_.size()) return false;
    for (size_t bit = 0; bit < prefix_; ++bit) {
      if (bitAt(bytes, bit) != bitAt(bytes_, bit)) return false;
    }
    return true;
  }

  std::string bytes_;
  size_t prefix_;
};

}  // namespace gatehouse
