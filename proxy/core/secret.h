// A string that holds a credential: wiped when destroyed, never printed.
#pragma once

#include <openssl/mem.h>

#include <string>
#include <string_view>
#include <utility>

namespace gatehouse {

class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string_view value) : value_(value) {}
  // Takes the buffer itself, so no copy of the value is left behind unwiped.
  static Secret adopt(std::string&& value) {
    Secret secret;
    secret.value_.swap(value);
    return secret;
  }
  Secret(const Secret& other) : value_(other.value_) {}
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
  std::string value_;
};

}  // namespace gatehouse
