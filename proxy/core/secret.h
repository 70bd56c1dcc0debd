// A string that holds a credential: wiped when destroyed, never printed.
#pragma once

#include <openssl/mem.h>

#include <string>
#include <string_view>
#include <utility>

namespace gatehouse {

// The value always lives on the heap, never in std::string's small-string buffer inside the
// object: a move then hands over the pointer, where moving a short string would copy its bytes
// and leave them behind in the moved-from object, out of reach of the wipe.
class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string_view value) {
    value_.reserve(kHeapCapacity);
    value_ = value;
  }
  // Takes the buffer itself, so no copy of the value is left behind unwiped; a short value,
  // which may sit inside the string object, is copied and wiped there instead.
  static Secret adopt(std::string&& value) {
    if (value.capacity() < kHeapCapacity) {
      Secret secret(value);
      OPENSSL_cleanse(value.data(), value.size());
      value.clear();
      return secret;
    }
    Secret secret;
    secret.value_.swap(value);
    return secret;
  }
  Secret(const Secret& other) : Secret(other.reveal()) {}
  Secret(Secret&& other) noexcept : value_(std::move(other.value_)) { other.wipe(); }
  Secret& operator=(Secret other) noexcept {
    wipe();
    value_.swap(other.value_);
    return *this;
  }
  ~Secret() { wipe(); }

  std::string_view reveal() const { return value_; }
  bool empty() const { return value_.empty(); }
  size_t size() const { return value_.size(); }
  // In place (a shorter string keeps its buffer), for secrets read from files written by editors.
  void trimTrailingNewlines() {
    while (!value_.empty() && (value_.back() == '\n' || value_.back() == '\r')) value_.pop_back();
  }

 private:
  void wipe() {
    if (!value_.empty()) OPENSSL_cleanse(value_.data(), value_.size());
    value_.clear();
  }
  // Past what libstdc++ (15) and libc++ (22) keep inside the object.
  static constexpr size_t kHeapCapacity = 32;
  std::string value_;
};

}  // namespace gatehouse
