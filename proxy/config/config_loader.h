// Turns a parsed configuration document into a validated Config: defaults, section readers,
// path resolution and the checks that span sections (back-end names, duplicate listeners).
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/config/config.h"
#include "proxy/core/secret.h"

namespace gatehouse {

// Reads every section of `root`; relative file names are resolved against `base_dir`, which must
// be absolute. Problems are appended to `errors`; the returned Config is only valid if none were.
Config buildConfig(const nlohmann::json& root, const std::filesystem::path& base_dir,
                   std::vector<ConfigError>& errors);

// Whether a configured file name can name a file at all (not empty, no NUL).
inline bool isFileName(std::string_view name) {
  return !name.empty() && name.find('\0') == std::string_view::npos;
}

// The whole content of a regular file of bounded size, or nullopt with `problem` set.
std::optional<std::string> readTextFile(const std::filesystem::path& path, std::string& problem);

// The whole content of a file that holds a key or a password, read straight into the Secret's
// buffer (no other copy exists); nullopt with `problem` set if unreadable or over `max_size` bytes.
std::optional<Secret> readSecretFile(const std::filesystem::path& path, size_t max_size,
                                     std::string& problem);

}  // namespace gatehouse
