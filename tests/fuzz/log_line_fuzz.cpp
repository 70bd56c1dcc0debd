// libFuzzer target for the JSON log line: whatever bytes a client sent end up in the message, a
// key or a value, the line is one line of strict JSON, and valid UTF-8 comes back unchanged.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "proxy/log/log_line.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using fuzzing::check;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t cut = input.find('\xFE');  // splits the input into a value and a message
  std::string_view value = input.substr(0, cut);
  std::string_view msg = cut == std::string_view::npos ? std::string_view() : input.substr(cut + 1);
  using gatehouse::log::Field;
  Field fields[] = {{"value", value}, {"n", static_cast<uint64_t>(size)}, {"ok", size % 2 == 0}};
  std::string line =
      gatehouse::log::formatLine("ts", gatehouse::log::Level::Info, msg, fields, fields + 3);
  check(!line.empty() && line.back() == '\n', "line does not end with a newline");
  check(line.find('\n') == line.size() - 1, "newline inside the line");
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  check(j.is_object(), "not a JSON object");
  check(j.size() == 6, "fields missing or added");
  check(j["n"].get<uint64_t>() == size, "number changed");
  // nlohmann's strict serializer decides what valid UTF-8 is: such input must come back unchanged.
  bool valid_utf8 = true;
  try {
    (void)nlohmann::json(std::string(value)).dump();
  } catch (const nlohmann::json::type_error&) {
    valid_utf8 = false;
  }
  if (valid_utf8) check(j["value"] == value, "valid UTF-8 changed");
  return 0;
}
