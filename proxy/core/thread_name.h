// Names the calling thread so that top -H, ps -L, perf and gdb tell workers from the LDAP thread.
#pragma once

#include <pthread.h>

#include <string>
#include <string_view>

namespace gatehouse {

// Linux keeps at most 15 bytes of a thread name; longer names are cut, not refused.
inline void nameThisThread(std::string_view name) {
  constexpr size_t kMaxLength = 15;
  std::string truncated(name.substr(0, kMaxLength));
  pthread_setname_np(pthread_self(), truncated.c_str());
}

}  // namespace gatehouse
