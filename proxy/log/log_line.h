// One log line as JSON, formatted by hand: the session-end line is written for every connection,
// and building it as a JSON DOM cost more than the rest of a plaintext login's user-space work.
#pragma once

#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>

namespace gatehouse::log {

enum class Level { Debug, Info, Warn, Error };

const char* levelName(Level level);

// A key and a string, integer or boolean value. Views only: a Field lives for one log call.
class Field {
 public:
  Field(std::string_view key, std::string_view value)
      : key_(key), kind_(Kind::Text), text_(value) {}
  Field(std::string_view key, const std::string& value) : Field(key, std::string_view(value)) {}
  Field(std::string_view key, const char* value) : Field(key, std::string_view(value)) {}
  Field(std::string_view key, bool value) : key_(key), kind_(Kind::Bool), boolean_(value) {}
  template <std::signed_integral T>
  Field(std::string_view key, T value) : key_(key), kind_(Kind::Signed), signed_(value) {}
  template <std::unsigned_integral T>
  requires(!std::same_as<T, bool>) Field(std::string_view key, T value)
      : key_(key), kind_(Kind::Unsigned), unsigned_(value) {}

  // A text field left out of the line when the value is empty.
  static Field unlessEmpty(std::string_view key, std::string_view value) {
    Field f(key, value);
    if (value.empty()) f.kind_ = Kind::Omitted;
    return f;
  }

  // Appends `,"key":value` (nothing for an omitted field).
  void appendTo(std::string& out) const;

 private:
  enum class Kind { Text, Bool, Signed, Unsigned, Omitted };
  std::string_view key_;
  Kind kind_;
  std::string_view text_;
  bool boolean_ = false;
  int64_t signed_ = 0;
  uint64_t unsigned_ = 0;
};

// Appends `text` as a JSON string. Bytes a client sent may be anything: control characters are
// escaped, and what is not valid UTF-8 becomes U+FFFD, so every line parses.
void appendJsonString(std::string& out, std::string_view text);

// `{"ts":...,"level":...,"msg":...,<fields>}` and a newline.
std::string formatLine(std::string_view timestamp, Level level, std::string_view msg,
                       const Field* begin, const Field* end);

}  // namespace gatehouse::log
