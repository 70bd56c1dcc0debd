#include "proxy/log/log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

namespace gatehouse::log {
namespace {

std::atomic<Level> g_level{Level::Info};

// "2026-11-23T18:37:39.654Z". The part up to the second is formatted once a second per thread.
std::string timestamp() {
  using namespace std::chrono;
  thread_local time_t cached_secs = -1;
  thread_local char cached[24];
  auto now = system_clock::now();
  auto secs = system_clock::to_time_t(now);
  auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  if (secs != cached_secs) {
    std::tm tm{};
    gmtime_r(&secs, &tm);
    std::strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm);
    cached_secs = secs;
  }
  char buf[40];
  int n = snprintf(buf, sizeof buf, "%s.%03dZ", cached, static_cast<int>(millis));
  return std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
}

}  // namespace

void setLevel(Level level) {
  g_level = level;
}

bool parseLevel(std::string_view name, Level& out) {
  for (Level l : {Level::Debug, Level::Info, Level::Warn, Level::Error}) {
    if (name == levelName(l)) {
      out = l;
      return true;
    }
  }
  return false;
}

bool enabled(Level level) {
  return level >= g_level.load(std::memory_order_relaxed);
}

void write(Level level, std::string_view msg, Fields fields) {
  if (!enabled(level)) return;
  std::string text = formatLine(timestamp(), level, msg, fields.begin(), fields.end());
  const char* p = text.data();
  size_t left = text.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0) return;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace gatehouse::log
