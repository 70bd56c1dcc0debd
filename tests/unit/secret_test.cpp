// Tests for Secret: a value moved, copied or adopted leaves no readable copy in the object it
// came from (the small-string buffer inside a std::string is the place one would hide).
#include "proxy/core/secret.h"

#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <utility>

namespace gatehouse {
namespace {

// Whether the object's own bytes hold the value, or all of it but the first byte (a moved-from
// std::string writes its terminating NUL over that one).
template <typename T>
bool holds(const T& object, std::string_view value) {
  std::string_view bytes(reinterpret_cast<const char*>(&object), sizeof object);
  return bytes.find(value.substr(1)) != std::string_view::npos;
}

TEST_CASE("secret: a short value moved away leaves nothing in the moved-from object", "[secret]") {
  Secret from("hunter2");
  Secret to(std::move(from));
  CHECK(to.reveal() == "hunter2");
  CHECK_FALSE(holds(from, "hunter2"));
  CHECK_FALSE(holds(to, "hunter2"));  // on the heap, wiped there

  Secret assigned;
  assigned = std::move(to);
  CHECK(assigned.reveal() == "hunter2");
  CHECK_FALSE(holds(to, "hunter2"));
  Secret copy(assigned);
  CHECK(copy.reveal() == "hunter2");
  CHECK_FALSE(holds(copy, "hunter2"));
}

TEST_CASE("secret: adopt wipes a short source and takes a long one's buffer", "[secret]") {
  std::string short_source = "pw-1234";
  Secret short_secret = Secret::adopt(std::move(short_source));
  CHECK(short_secret.reveal() == "pw-1234");
  CHECK(short_source.empty());
  CHECK_FALSE(holds(short_source, "pw-1234"));
  CHECK_FALSE(holds(short_secret, "pw-1234"));

  std::string long_source(100, 'x');
  const char* buffer = long_source.data();
  Secret long_secret = Secret::adopt(std::move(long_source));
  CHECK(long_secret.reveal().data() == buffer);  // no copy made
  CHECK(long_secret.size() == 100);
}

TEST_CASE("secret: trailing newlines trimmed in place", "[secret]") {
  Secret secret("service-pw\r\n\n");
  secret.trimTrailingNewlines();
  CHECK(secret.reveal() == "service-pw");
}

}  // namespace
}  // namespace gatehouse
