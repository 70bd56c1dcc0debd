// The process: builds the shared, immutable state from the configuration (TLS contexts,
// back-end registry, directory), runs the worker threads and stops them on SIGTERM/SIGINT.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "proxy/config/config.h"
#include "proxy/core/worker.h"

namespace gatehouse {

class Server {
 public:
  explicit Server(std::shared_ptr<const Config> config);
  ~Server();

  // Loads what the configuration names and can be checked without opening a socket or starting a
  // thread: back-end CA files, certificates and keys (and that each key matches its certificate),
  // session ticket keys, protocols. For --check-config. Returns an error text on failure.
  std::string check();
  // check(), then the directory, then binds every worker's sockets. Returns an error text.
  std::string prepare();
  // Runs until SIGTERM/SIGINT and the graceful shutdown that follows. Returns the exit code.
  int run();

 private:
  std::shared_ptr<const Config> config_;
  std::shared_ptr<WorkerShared> shared_;
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace gatehouse
