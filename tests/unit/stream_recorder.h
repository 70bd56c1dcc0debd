// A StreamHandler for tests that keeps what a stream reported: the bytes, the end, an error.
#pragma once

#include <string>
#include <string_view>

#include "proxy/net/stream.h"

namespace gatehouse::testing {

struct StreamRecorder : StreamHandler {
  std::string data;
  bool ended = false;
  std::string error;
  void onRead(std::string_view d) override { data.append(d); }
  void onEnd() override { ended = true; }
  void onError(std::string_view reason) override { error.assign(reason); }
};

}  // namespace gatehouse::testing
