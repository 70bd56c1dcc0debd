// Reading configuration JSON with every problem collected as a ConfigError at its JSON pointer:
// strict parsing (duplicate keys are errors), unknown-key checks and typed member getters.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/config/config.h"

namespace gatehouse::config_json {

using Json = nlohmann::json;

enum class Need { Optional, Required };

// RFC 6901: "/a~1b" names the key "a/b".
std::string pointerTo(const std::string& parent, std::string_view key);
std::string pointerTo(const std::string& parent, size_t index);

// A value as JSON text, quoted and escaped, so that error messages show exactly what was written.
std::string quoteJson(std::string_view value);

// Parses `text`. Syntax errors and duplicate object keys are reported with pointers prefixed by
// `prefix` (the place the document occupies in the configuration). nullopt on a syntax error.
std::optional<Json> parseDocument(std::string_view text, const std::string& prefix,
                                  std::vector<ConfigError>& errors);

// The members of one JSON object. Construction reports a non-object and every unknown key, so
// the getters below only report problems with the members they are asked for.
class ObjectReader {
 public:
  ObjectReader(const Json& value, std::string pointer, std::vector<ConfigError>& errors,
               std::initializer_list<std::string_view> known);

  bool isObject() const { return object_ != nullptr; }
  const std::string& pointer() const { return pointer_; }
  std::string pointerOf(std::string_view key) const { return pointerTo(pointer_, key); }
  bool has(std::string_view key) const { return find(key) != nullptr; }
  const Json* find(std::string_view key) const;
  void error(std::string pointer, std::string message) const;

  std::optional<std::string> string(std::string_view key, Need need) const;
  std::optional<uint64_t> integer(std::string_view key, uint64_t min, uint64_t max,
                                  Need need) const;
  std::optional<bool> boolean(std::string_view key, Need need) const;
  const Json* array(std::string_view key, Need need) const;
  const Json* object(std::string_view key, Need need) const;

  // A string that must be one of `names`; the message lists them, e.g.
  // `unknown protocol "imapx" (expected imap, pop3, submission, http)`.
  template <typename E>
  std::optional<E> choice(std::string_view key, std::string_view what,
                          const std::vector<std::pair<std::string_view, E>>& names,
                          Need need) const {
    auto text = string(key, need);
    if (!text) return std::nullopt;
    for (const auto& [name, value] : names) {
      if (name == *text) return value;
    }
    std::vector<std::string_view> expected;
    for (const auto& entry : names) expected.push_back(entry.first);
    error(pointerOf(key), "unknown " + std::string(what) + " " + quoteJson(*text) + " (expected " +
                              joinNames(expected) + ")");
    return std::nullopt;
  }

  static std::string joinNames(const std::vector<std::string_view>& names);

 private:
  const Json* required(std::string_view key, Need need) const;

  const Json* object_ = nullptr;
  std::string pointer_;
  std::vector<ConfigError>* errors_;
};

}  // namespace gatehouse::config_json
