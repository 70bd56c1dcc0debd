// Structured logging: one JSON object per line on stderr, written with a single write(2) so
// lines from different worker threads never interleave. Callers never pass credentials.
#pragma once

#include <nlohmann/json.hpp>

#include <string_view>

namespace gatehouse::log {

enum class Level { Debug, Info, Warn, Error };

void setLevel(Level level);
bool parseLevel(std::string_view name, Level& out);
bool enabled(Level level);

// `fields` must be a JSON object; "ts", "level" and "msg" are added.
void write(Level level, std::string_view msg, nlohmann::json fields = nlohmann::json::object());

inline void debug(std::string_view msg, nlohmann::json f = nlohmann::json::object()) {
  if (enabled(Level::Debug)) write(Level::Debug, msg, std::move(f));
}
inline void info(std::string_view msg, nlohmann::json f = nlohmann::json::object()) {
  write(Level::Info, msg, std::move(f));
}
inline void warn(std::string_view msg, nlohmann::json f = nlohmann::json::object()) {
  write(Level::Warn, msg, std::move(f));
}
inline void error(std::string_view msg, nlohmann::json f = nlohmann::json::object()) {
  write(Level::Error, msg, std::move(f));
}

}  // namespace gatehouse::log
