// The one assertion every fuzz target uses: a broken invariant aborts with its name, so libFuzzer
// keeps the input as a crash (assert() would vanish in a release build).
#pragma once

#include <cstdio>
#include <cstdlib>

namespace fuzzing {

inline void check(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}

}  // namespace fuzzing
