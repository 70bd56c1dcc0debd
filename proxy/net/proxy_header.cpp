#include "proxy/net/proxy_header.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>

namespace gatehouse::proxy_header {
namespace {

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr size_t kV1MaxLine = 107;  // including CRLF
constexpr std::string_view kV2Signature("\r\n\r\n\0\r\nQUIT\n", 12);
constexpr size_t kV2FixedSize = 16;

Result invalid(std::string error) {
  Result r;
  r.status = Status::Invalid;
  r.error = std::move(error);
  return r;
}

Result done(size_t consumed, Header header) {
  Result r;
  r.status = Status::Done;
  r.consumed = consumed;
  r.header = std::move(header);
  return r;
}

// Whether `received` is a prefix of `expected` (or starts with all of it).
bool agreesWith(std::string_view received, std::string_view expected) {
  size_t n = std::min(received.size(), expected.size());
  return received.substr(0, n) == expected.substr(0, n);
}

bool canonicalAddress(int family, std::string_view text, std::string& out) {
  // inet_pton would stop at a NUL and accept what precedes it.
  if (text.size() >= INET6_ADDRSTRLEN || text.find('\0') != std::string_view::npos) return false;
  std::array<unsigned char, 16> bytes{};
  std::string copy(text);  // inet_pton wants a terminated string
  if (inet_pton(family, copy.c_str(), bytes.data()) != 1) return false;
  char buffer[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(family, bytes.data(), buffer, sizeof buffer) == nullptr) return false;
  out = buffer;
  return true;
}

bool decimalPort(std::string_view text, uint16_t& port) {
  if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0')) return false;
  uint32_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (value > 65535) return false;
  port = static_cast<uint16_t>(value);
  return true;
}

// Splits at single spaces; false on an empty field (two spaces in a row, or a trailing one).
bool splitFields(std::string_view line, std::array<std::string_view, 5>& fields, size_t& count) {
  count = 0;
  while (true) {
    size_t space = line.find(' ');
    std::string_view field = line.substr(0, space);
    if (field.empty() || count == fields.size()) return false;
    fields[count++] = field;
    if (space == std::string_view::npos) return true;
    line.remove_prefix(space + 1);
  }
}

Result parseV1(std::string_view received) {
  // The CR is byte 106 at the latest, so that the line with its CRLF fits in 107.
  std::string_view head = received.substr(0, std::min(received.size(), kV1MaxLine - 1));
  size_t cr = head.find('\r');
  size_t lf = head.find('\n');
  if (lf != std::string_view::npos && (cr == std::string_view::npos || lf < cr)) {
    return invalid("PROXY v1 line ends without CR LF");
  }
  if (cr == std::string_view::npos) {
    if (received.size() >= kV1MaxLine - 1) return invalid("PROXY v1 line longer than 107 bytes");
    return {};
  }
  if (cr + 1 == received.size()) return {};  // the LF may follow
  if (received[cr + 1] != '\n') return invalid("PROXY v1 line ends without CR LF");
  std::string_view line = received.substr(kV1Prefix.size(), cr - kV1Prefix.size());
  size_t consumed = cr + 2;
  if (line.substr(0, 7) == "UNKNOWN" && (line.size() == 7 || line[7] == ' ')) {
    Header header;
    header.local = true;
    return done(consumed, std::move(header));
  }
  std::array<std::string_view, 5> fields;
  size_t count = 0;
  if (!splitFields(line, fields, count) || count != 5) {
    return invalid("PROXY v1 line is not: PROXY TCP4|TCP6 source destination port port");
  }
  int family = fields[0] == "TCP4" ? AF_INET : fields[0] == "TCP6" ? AF_INET6 : 0;
  if (family == 0) return invalid("PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN");
  Header header;
  if (!canonicalAddress(family, fields[1], header.source_ip) ||
      !canonicalAddress(family, fields[2], header.destination_ip)) {
    return invalid("PROXY v1 address is not one of the stated family");
  }
  if (!decimalPort(fields[3], header.source_port) ||
      !decimalPort(fields[4], header.destination_port)) {
    return invalid("PROXY v1 port is not a number from 0 to 65535");
  }
  return done(consumed, std::move(header));
}

uint16_t bigEndian16(const unsigned char* p) {
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}

std::string addressText(int family, const unsigned char* bytes) {
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(family, bytes, buffer, sizeof buffer);
  return buffer;
}

Result parseV2(std::string_view received) {
  if (received.size() < kV2FixedSize) return {};
  const auto* p = reinterpret_cast<const unsigned char*>(received.data());
  unsigned version = p[12] >> 4;
  unsigned command = p[12] & 0x0f;
  if (version != 2) return invalid("PROXY v2 header with another version");
  if (command > 1) return invalid("PROXY v2 command is neither LOCAL nor PROXY");
  size_t length = bigEndian16(p + 14);
  if (kV2FixedSize + length > kMaxHeaderSize)
    return invalid("PROXY v2 header longer than 2048 bytes");
  unsigned family = p[13];
  // Families above AF_UNIX and transports above DGRAM "must be rejected as invalid" (spec 2.2);
  // with LOCAL the address block, family byte included, is ignored.
  if (command == 1 && ((family >> 4) > 3 || (family & 0x0f) > 2)) {
    return invalid("PROXY v2 address family or transport unknown");
  }
  // Checked before the whole header is in, so that a short address block fails at once.
  if (command == 1 && family == 0x11 && length < 12)
    return invalid("PROXY v2 TCP4 addresses cut short");
  if (command == 1 && family == 0x21 && length < 36)
    return invalid("PROXY v2 TCP6 addresses cut short");
  if (received.size() < kV2FixedSize + length) return {};
  Header header;
  const unsigned char* addresses = p + kV2FixedSize;
  if (command == 1 && family == 0x11) {
    header.source_ip = addressText(AF_INET, addresses);
    header.destination_ip = addressText(AF_INET, addresses + 4);
    header.source_port = bigEndian16(addresses + 8);
    header.destination_port = bigEndian16(addresses + 10);
  } else if (command == 1 && family == 0x21) {
    header.source_ip = addressText(AF_INET6, addresses);
    header.destination_ip = addressText(AF_INET6, addresses + 16);
    header.source_port = bigEndian16(addresses + 32);
    header.destination_port = bigEndian16(addresses + 34);
  } else {
    header.local = true;  // LOCAL, or a family the connection's own addresses must stand in for
  }
  return done(kV2FixedSize + length, std::move(header));
}

}  // namespace

Result parse(std::string_view received) {
  if (received.empty()) return {};
  if (agreesWith(received, kV2Signature)) return parseV2(received);
  if (agreesWith(received, kV1Prefix)) {
    return received.size() < kV1Prefix.size() ? Result{} : parseV1(received);
  }
  return invalid("no PROXY protocol header");
}

}  // namespace gatehouse::proxy_header
