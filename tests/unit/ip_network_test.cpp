// IpNetwork: CIDR parsing (strict: no host bits, no leading zeros in the prefix) and matching,
// including IPv4 peers seen through a dual-stack socket as IPv4-mapped IPv6 addresses.
#include "proxy/net/ip_network.h"

#include <catch2/catch.hpp>

#include "proxy/core/connection_limiter.h"

namespace gatehouse {
namespace {

bool in(const char* network, const char* ip) {
  auto parsed = IpNetwork::parse(network);
  REQUIRE(parsed);
  return parsed->containsAddress(ip);
}

TEST_CASE("ip network: IPv4 prefixes", "[ip_network]") {
  CHECK(in("10.0.0.0/8", "10.255.1.2"));
  CHECK_FALSE(in("10.0.0.0/8", "11.0.0.0"));
  CHECK(in("192.168.4.0/22", "192.168.7.255"));
  CHECK_FALSE(in("192.168.4.0/22", "192.168.8.0"));
  CHECK(in("127.0.0.1", "127.0.0.1"));
  CHECK_FALSE(in("127.0.0.1", "127.0.0.2"));
  CHECK(in("0.0.0.0/0", "203.0.113.9"));
  CHECK(in("10.0.0.0/8", "::ffff:10.1.2.3"));  // an IPv4 peer on a dual-stack socket
  CHECK_FALSE(in("10.0.0.0/8", "::1"));
  CHECK_FALSE(in("10.0.0.0/8", "not an address"));
}

TEST_CASE("ip network: IPv6 prefixes", "[ip_network]") {
  CHECK(in("fd00::/8", "fd12:3456::1"));
  CHECK_FALSE(in("fd00::/8", "fe80::1"));
  CHECK(in("2001:db8::/127", "2001:db8::1"));
  CHECK_FALSE(in("2001:db8::/127", "2001:db8::2"));
  CHECK(in("::1", "0:0::1"));
  CHECK_FALSE(in("::1", "127.0.0.1"));
  CHECK(in("::/0", "2001:db8::7"));
}

TEST_CASE("ip network: what is refused", "[ip_network]") {
  for (const char* bad : {"", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/08", "10.0.0.0/-1",
                          "10.0.0.0/8/8", "10.0.0.1/8", "fd00::1/8", "::/129", "10.0.0.0 /8",
                          "mail.example.com", "10.0.0.0/1000", "10.0.0.0/8 "}) {
    INFO(bad);
    CHECK_FALSE(IpNetwork::parse(bad));
  }
}

TEST_CASE("connection limiter: a client known only after its PROXY header", "[ip_network]") {
  ConnectionLimiter limiter(3, 1);
  CHECK(limiter.acquire(""));  // behind the load balancer: the total only
  CHECK(limiter.acquireIp("192.0.2.1"));
  CHECK(limiter.acquire(""));
  CHECK_FALSE(limiter.acquireIp("192.0.2.1"));  // that client is at its limit
  CHECK(limiter.acquireIp("192.0.2.2"));
  CHECK(limiter.acquire(""));
  CHECK_FALSE(limiter.acquire(""));  // the total
  CHECK(limiter.total() == 3);
  limiter.release("192.0.2.1");
  limiter.release("");
  CHECK(limiter.total() == 1);
  CHECK(limiter.acquire("192.0.2.1"));  // its slot is free again
  CHECK_FALSE(limiter.acquire("192.0.2.2"));
  CHECK(limiter.total() == 2);
}

TEST_CASE("connection limiter: one client, however its address is written", "[ip_network]") {
  ConnectionLimiter limiter(10, 1);
  CHECK(limiter.acquire("192.0.2.1"));
  CHECK_FALSE(limiter.acquire("::ffff:192.0.2.1"));  // a dual-stack listener, a TCP6 PROXY header
  CHECK_FALSE(limiter.acquire("0:0:0:0:0:FFFF:192.0.2.1"));
  CHECK(limiter.acquire("2001:db8::1"));
  CHECK_FALSE(limiter.acquire("2001:0db8:0:0::1"));
  limiter.release("::ffff:192.0.2.1");  // the same slot, whichever spelling gives it back
  CHECK(limiter.acquire("192.0.2.1"));
  CHECK(canonicalIp("::ffff:10.1.2.3") == "10.1.2.3");
  CHECK(canonicalIp("::1") == "::1");
  CHECK(canonicalIp("192.0.2.7") == "192.0.2.7");
  CHECK(canonicalIp("not an address") == "not an address");
}

}  // namespace
}  // namespace gatehouse
