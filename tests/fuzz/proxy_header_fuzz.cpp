// libFuzzer target for the PROXY protocol header parser: no crash, no UB, and results that do not
// depend on how the input is split between reads (the caller passes everything received so far
// after each read, so each prefix of the input is what some read would have shown).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proxy/net/proxy_header.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using gatehouse::proxy_header::Header;
using gatehouse::proxy_header::kMaxHeaderSize;
using gatehouse::proxy_header::parse;
using gatehouse::proxy_header::Result;
using gatehouse::proxy_header::Status;

constexpr size_t kV1MaxLine = 107;

using fuzzing::check;

bool sameResult(const Result& a, const Result& b) {
  const Header& x = a.header;
  const Header& y = b.header;
  return a.status == b.status && a.consumed == b.consumed && a.error == b.error &&
         x.local == y.local && x.source_ip == y.source_ip && x.destination_ip == y.destination_ip &&
         x.source_port == y.source_port && x.destination_port == y.destination_port;
}

// The family of `ip` if it is an address in canonical form (inet_ntop gives it back), else 0.
int canonicalFamily(const std::string& ip) {
  unsigned char bytes[16];
  char text[INET6_ADDRSTRLEN];
  for (int family : {AF_INET, AF_INET6}) {
    if (inet_pton(family, ip.c_str(), bytes) != 1) continue;
    if (inet_ntop(family, bytes, text, sizeof text) == nullptr) return 0;
    return ip == text ? family : 0;
  }
  return 0;
}

void checkResult(const Result& r, std::string_view input) {
  switch (r.status) {
    case Status::NeedMore:
      check(input.size() < kMaxHeaderSize, "NeedMore at the size limit");
      check(r.consumed == 0 && r.error.empty(), "NeedMore with a size or an error");
      break;
    case Status::Invalid:
      check(!r.error.empty() && r.error.size() <= 80, "bad error length");
      for (char c : r.error) check(c >= 0x20 && c < 0x7f, "error not printable ASCII");
      check(r.consumed == 0, "Invalid with a size");
      break;
    case Status::Done: {
      check(r.consumed > 0 && r.consumed <= kMaxHeaderSize, "consumed out of range");
      check(r.consumed <= input.size(), "consumed more than received");
      check(r.error.empty(), "Done with an error");
      // v1 starts with 'P', v2 with CR.
      if (input[0] == 'P') check(r.consumed <= kV1MaxLine, "v1 line over 107 bytes");
      if (input[0] == 'P') check(input.substr(r.consumed - 2, 2) == "\r\n", "v1 without CRLF");
      const Header& h = r.header;
      if (h.local) {
        check(h.source_ip.empty() && h.destination_ip.empty(), "local with addresses");
        check(h.source_port == 0 && h.destination_port == 0, "local with ports");
      } else {
        const int family = canonicalFamily(h.source_ip);
        check(family != 0, "source address not canonical");
        check(canonicalFamily(h.destination_ip) == family, "destination of another family");
      }
      break;
    }
  }
}

// What a read that stopped after `size` bytes would have shown must agree with the whole.
void checkPrefix(std::string_view input, const Result& whole, size_t size) {
  const Result r = parse(input.substr(0, size));
  checkResult(r, input.substr(0, size));
  switch (r.status) {
    case Status::NeedMore:
      if (whole.status == Status::Done) {
        check(size < whole.consumed, "NeedMore after the end of the header");
      }
      break;
    case Status::Invalid:
      check(whole.status == Status::Invalid, "an invalid prefix became valid");
      break;
    case Status::Done:
      check(sameResult(r, whole), "a complete prefix gives another result");
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(bytes), size);
  const Result whole = parse(input);
  checkResult(whole, input);

  if (whole.status == Status::Done) {
    // The header alone gives the same result, and each proper prefix of it is NeedMore.
    const std::string_view header = input.substr(0, whole.consumed);
    check(sameResult(parse(header), whole), "the header alone gives another result");
    check(parse(header.substr(0, whole.consumed - 1)).status == Status::NeedMore,
          "header minus its last byte is not NeedMore");
    check(parse(header.substr(0, whole.consumed / 2)).status == Status::NeedMore,
          "half a header is not NeedMore");
  }
  // Every split of a v1-sized input, a few of a longer one (v2 decides on its first 16 bytes).
  for (size_t prefix = 0; prefix < size && prefix <= kV1MaxLine + 1; ++prefix) {
    checkPrefix(input, whole, prefix);
  }
  for (size_t prefix : {size / 2, size - 1, kMaxHeaderSize - 1, kMaxHeaderSize}) {
    if (prefix < size) checkPrefix(input, whole, prefix);
  }
  // Bytes that arrive later change nothing once the answer is known (an Invalid may say why in
  // other words: a field cut short by the line limit can become a malformed field).
  if (whole.status != Status::NeedMore) {
    const std::string longer = std::string(input) + "\r\n" + std::string(input);
    const Result r = parse(longer);
    check(r.status == whole.status, "more bytes changed a final status");
    if (r.status == Status::Done) check(sameResult(r, whole), "more bytes changed the header");
  }
  return 0;
}
