// The PROXY protocol header parser: every valid header whole, as every proper prefix (NeedMore)
// and with client bytes behind it (not consumed); refusal of what cannot become a header.
#include "proxy/net/proxy_header.h"

#include <catch2/catch.hpp>
#include <string>

namespace gatehouse {
namespace {

using proxy_header::kMaxHeaderSize;
using proxy_header::parse;
using proxy_header::Result;
using proxy_header::Status;

const std::string kSignature("\r\n\r\n\0\r\nQUIT\n", 12);

std::string v2(unsigned char version_command, unsigned char family, const std::string& body) {
  std::string header = kSignature;
  header += static_cast<char>(version_command);
  header += static_cast<char>(family);
  header += static_cast<char>(body.size() >> 8);
  header += static_cast<char>(body.size() & 0xff);
  return header + body;
}

// 192.0.2.1:51234 -> 198.51.100.7:993
const std::string kTcp4Addresses("\xc0\x00\x02\x01\xc6\x33\x64\x07\xc8\x22\x03\xe1", 12);

std::string v2Tcp6() {
  std::string body(36, '\0');
  body[0] = '\x20', body[1] = '\x01', body[2] = '\x0d', body[3] = '\xb8', body[15] = '\x01';
  body[16] = '\x20', body[17] = '\x01', body[18] = '\x0d', body[19] = '\xb8', body[31] = '\x02';
  body[32] = '\x01', body[33] = '\x00', body[34] = '\x00', body[35] = '\x8f';  // 256 -> 143
  return v2(0x21, 0x21, body);
}

// Checks the header alone, every proper prefix of it, and it followed by client bytes.
Result parseEveryWay(const std::string& header) {
  for (size_t i = 0; i < header.size(); ++i) {
    INFO("prefix of " << i << " bytes");
    REQUIRE(parse(std::string_view(header).substr(0, i)).status == Status::NeedMore);
  }
  Result whole = parse(header);
  REQUIRE(whole.status == Status::Done);
  CHECK(whole.consumed == header.size());
  for (const std::string& behind :
       {std::string("a1 CAPABILITY\r\n"), std::string("\x16\x03\x01", 3)}) {
    Result followed = parse(header + behind);
    REQUIRE(followed.status == Status::Done);
    CHECK(followed.consumed == header.size());
    CHECK(followed.header.source_ip == whole.header.source_ip);
    CHECK(followed.header.source_port == whole.header.source_port);
  }
  return whole;
}

void checkInvalid(const std::string& input) {
  INFO("input: " << input);
  Result r = parse(input);
  REQUIRE(r.status == Status::Invalid);
  REQUIRE_FALSE(r.error.empty());
  for (char c : r.error) CHECK((c >= 0x20 && c < 0x7f));
}

TEST_CASE("proxy header: version 1", "[proxy_header]") {
  Result r = parseEveryWay("PROXY TCP4 192.0.2.1 198.51.100.7 51234 993\r\n");
  CHECK_FALSE(r.header.local);
  CHECK(r.header.source_ip == "192.0.2.1");
  CHECK(r.header.destination_ip == "198.51.100.7");
  CHECK(r.header.source_port == 51234);
  CHECK(r.header.destination_port == 993);

  r = parseEveryWay("PROXY TCP6 2001:DB8:0::1 2001:db8::2 65535 0\r\n");
  CHECK(r.header.source_ip == "2001:db8::1");  // canonical form
  CHECK(r.header.destination_ip == "2001:db8::2");
  CHECK(r.header.source_port == 65535);
  CHECK(r.header.destination_port == 0);

  CHECK(parseEveryWay("PROXY UNKNOWN\r\n").header.local);
  CHECK(
      parseEveryWay("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n").header.local);

  // The longest line the specification allows (107 bytes with CRLF) is accepted.
  std::string longest = "PROXY UNKNOWN " + std::string(91, 'x') + "\r\n";
  REQUIRE(longest.size() == 107);
  CHECK(parseEveryWay(longest).header.local);
}

TEST_CASE("proxy header: version 2", "[proxy_header]") {
  Result r = parseEveryWay(v2(0x21, 0x11, kTcp4Addresses));
  CHECK(r.header.source_ip == "192.0.2.1");
  CHECK(r.header.destination_ip == "198.51.100.7");
  CHECK(r.header.source_port == 51234);
  CHECK(r.header.destination_port == 993);

  // TLVs (here an AWS-style one) are skipped and consumed.
  r = parseEveryWay(v2(0x21, 0x11, kTcp4Addresses + std::string("\xea\x00\x05vpce1", 8)));
  CHECK(r.consumed == 16 + 12 + 8);
  CHECK(r.header.source_ip == "192.0.2.1");

  r = parseEveryWay(v2Tcp6());
  CHECK(r.header.source_ip == "2001:db8::1");
  CHECK(r.header.destination_ip == "2001:db8::2");
  CHECK(r.header.source_port == 256);
  CHECK(r.header.destination_port == 143);

  CHECK(parseEveryWay(v2(0x20, 0x00, "")).header.local);              // LOCAL: a health check
  CHECK(parseEveryWay(v2(0x20, 0x11, kTcp4Addresses)).header.local);  // LOCAL ignores them
  CHECK(parseEveryWay(v2(0x20, 0xff, "")).header.local);              // ... and the family byte
  CHECK(parseEveryWay(v2(0x21, 0x00, "")).header.local);              // PROXY, AF_UNSPEC
  CHECK(parseEveryWay(v2(0x21, 0x31, std::string(216, 'u'))).header.local);  // AF_UNIX
  CHECK(parseEveryWay(v2(0x21, 0x12, kTcp4Addresses)).header.local);         // UDP over IPv4

  // The largest header accepted.
  CHECK(parseEveryWay(v2(0x21, 0x11, std::string(kMaxHeaderSize - 16, '\0'))).consumed ==
        kMaxHeaderSize);
}

TEST_CASE("proxy header: what cannot become a header is refused", "[proxy_header]") {
  // A client that is not a load balancer is refused on its first bytes.
  checkInvalid("a1 CAPABILITY\r\n");
  checkInvalid("A");
  checkInvalid("EHLO");
  checkInvalid(std::string("\x16\x03\x01\x02\x00", 5));  // a TLS ClientHello
  checkInvalid("proxy TCP4 192.0.2.1 198.51.100.7 1 2\r\n");
  checkInvalid(kSignature.substr(0, 5) + "X");

  checkInvalid("PROXY  TCP4 192.0.2.1 198.51.100.7 1 2\r\n");
  checkInvalid("PROXY TCP4 192.0.2.1  198.51.100.7 1 2\r\n");
  checkInvalid("PROXY TCP4 192.0.2.1 198.51.100.7 1 2 \r\n");
  checkInvalid("PROXY TCP4 192.0.2.1 198.51.100.7 1\r\n");
  checkInvalid("PROXY TCP4 192.0.2.1 198.51.100.7 1 2 3\r\n");
  checkInvalid("PROXY TCP5 192.0.2.1 198.51.100.7 1 2\r\n");
  checkInvalid("PROXY UNKNOWNX\r\n");
  checkInvalid("PROXY TCP4 192.0.2.1 198.51.100.7 1 2\n");
  checkInvalid("PROXY TCP4 192.0.2.1 198.51.100.7 1 2\rX");
  checkInvalid("PROXY TCP4 999.0.2.1 198.51.100.7 1 2\r\n");
  checkInvalid("PROXY TCP4 2001:db8::1 198.51.100.7 1 2\r\n");
  checkInvalid("PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n");
  checkInvalid(std::string("PROXY TCP4 192.0.2.1\0 198.51.100.7 1 2\r\n", 40));
  checkInvalid("PROXY TCP4 192.0.2.1 198.51.100.7 65536 2\r\n");
  checkInvalid("PROXY TCP4 192.0.2.1 198.51.100.7 01 2\r\n");
  checkInvalid("PROXY TCP4 192.0.2.1 198.51.100.7 +1 2\r\n");
  checkInvalid("PROXY TCP4 192.0.2.1 198.51.100.7 100000 2\r\n");
  checkInvalid("PROXY TCP4 192.0.2.1 198.51.100.7 -1 2\r\n");
  checkInvalid("PROXY UNKNOWN " + std::string(92, 'x') + "\r\n");  // 108 bytes
  checkInvalid("PROXY UNKNOWN " + std::string(200, 'x'));          // no CRLF in 107 bytes

  checkInvalid(v2(0x11, 0x11, kTcp4Addresses));  // version 1 in a v2 header
  checkInvalid(v2(0x31, 0x11, kTcp4Addresses));  // version 3
  for (unsigned command = 2; command < 16; ++command) {
    checkInvalid(v2(static_cast<unsigned char>(0x20 | command), 0x11, kTcp4Addresses));
  }
  checkInvalid(v2(0x21, 0x41, kTcp4Addresses));  // family 4 does not exist
  checkInvalid(v2(0x21, 0x13, kTcp4Addresses));  // nor transport 3
  // Addresses cut short are refused as soon as the length says so, before they arrive.
  checkInvalid(v2(0x21, 0x11, std::string(11, '\0')).substr(0, 16));
  checkInvalid(v2(0x21, 0x21, std::string(35, '\0')).substr(0, 16));
  checkInvalid(v2(0x21, 0x11, std::string(kMaxHeaderSize - 16 + 1, '\0')).substr(0, 16));
}

TEST_CASE("proxy header: once refused, more bytes change nothing", "[proxy_header]") {
  for (const std::string& bad :
       {std::string("a1 LOGIN"), std::string("PROXY TCP4 192.0.2.1 198.51.100.7 1 2\n"),
        "PROXY UNKNOWN " + std::string(100, 'x'), v2(0x31, 0x11, kTcp4Addresses)}) {
    INFO(bad);
    REQUIRE(parse(bad).status == Status::Invalid);
    CHECK(parse(bad + "\r\n" + bad).status == Status::Invalid);
  }
}

}  // namespace
}  // namespace gatehouse
