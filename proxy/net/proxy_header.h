// The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2) that a load balancer
// sends first on each connection to name the client it stands for. Pure, no sockets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gatehouse::proxy_header {

enum class Status { NeedMore, Done, Invalid };

struct Header {
  // LOCAL (v2), UNKNOWN (v1), or a v2 PROXY header for something other than TCP over IPv4/IPv6:
  // the connection's own addresses apply.
  bool local = false;
  std::string source_ip, destination_ip;  // canonical text (inet_ntop); empty when local
  uint16_t source_port = 0, destination_port = 0;
};

struct Result {
  Status status = Status::NeedMore;
  size_t consumed = 0;  // Done: the header's length; what follows is the client's
  Header header;        // Done only
  std::string error;    // Invalid only: for a log line, never containing input bytes
};

// v1 lines are at most 107 bytes; v2 headers are cut at 16 + 2032 bytes of addresses and TLVs.
constexpr size_t kMaxHeaderSize = 2048;

// Parses the header at the start of `received` (everything received so far on the connection).
// NeedMore while `received` can still become a valid header; Invalid as soon as it cannot, so a
// peer that is not a load balancer is turned away on its first bytes.
Result parse(std::string_view received);

}  // namespace gatehouse::proxy_header
