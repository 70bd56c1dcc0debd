// libFuzzer target: arbitrary bytes as configuration text. parseConfig must return a config or
// errors, never crash, hang or leak, whatever the input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "proxy/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<gatehouse::ConfigError> errors;
  // A base directory that does not exist: file checks run but find nothing.
  auto config = gatehouse::parseConfig(text, "/nonexistent-gatehouse-fuzz", errors);
  if (config == nullptr && errors.empty()) __builtin_trap();  // a failure must say why
  return 0;
}
