// Structured logging: one JSON object per line on stderr, written with a single write(2) so
// lines from different worker threads never interleave. Callers never pass credentials.
#pragma once

#include <initializer_list>
#include <string_view>

#include "proxy/log/log_line.h"

namespace gatehouse::log {

using Fields = std::initializer_list<Field>;

void setLevel(Level level);
bool parseLevel(std::string_view name, Level& out);
bool enabled(Level level);

// "ts", "level" and "msg" come first, then `fields` in their order.
void write(Level level, std::string_view msg, Fields fields = {});

inline void debug(std::string_view msg, Fields f = {}) {
  if (enabled(Level::Debug)) write(Level::Debug, msg, f);
}
inline void info(std::string_view msg, Fields f = {}) {
  write(Level::Info, msg, f);
}
inline void warn(std::string_view msg, Fields f = {}) {
  write(Level::Warn, msg, f);
}
inline void error(std::string_view msg, Fields f = {}) {
  write(Level::Error, msg, f);
}

}  // namespace gatehouse::log
