// gatehouse: the command line. Runs the proxy, or only validates a configuration file.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "proxy/config/config.h"
#include "proxy/log/log.h"
#include "proxy/server.h"

namespace {

void usage() {
  std::fprintf(stderr,
               "usage: gatehouse --config FILE        run the proxy\n"
               "       gatehouse --check-config FILE  validate FILE and exit 0 (valid) or 1\n");
}

// Passwords pass through this process's memory: no core file may ever hold them.
void forbidCoreDumps() {
  rlimit none{0, 0};
  setrlimit(RLIMIT_CORE, &none);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

// Each session holds two descriptors (client and back-end). As nginx (worker_rlimit_nofile) and
// Dovecot do, take the whole hard limit, and say so when even that is short of max_connections:
// past the limit accept() fails, however many connections max_connections allows.
void raiseOpenFileLimit(const gatehouse::Config& config) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) getrlimit(RLIMIT_NOFILE, &limit);
  }
  constexpr uint64_t kSpareDescriptors = 64;  // listeners, loops, LDAP, log
  const uint64_t needed = 2 * uint64_t{config.limits.max_connections} + kSpareDescriptors;
  if (limit.rlim_cur < needed) {
    gatehouse::log::warn("open file limit is below what limits.max_connections needs",
                         {{"limit", uint64_t{limit.rlim_cur}},
                          {"max_connections", uint64_t{config.limits.max_connections}},
                          {"needed", needed}});
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 ||
      (std::strcmp(argv[1], "--config") != 0 && std::strcmp(argv[1], "--check-config") != 0)) {
    usage();
    return 2;
  }
  // First: loading the configuration reads secrets (LDAP bind password, ticket keys, TLS keys).
  forbidCoreDumps();
  bool check_only = std::strcmp(argv[1], "--check-config") == 0;
  std::vector<gatehouse::ConfigError> errors;
  auto config = gatehouse::loadConfig(argv[2], errors);
  if (!config) {
    for (const auto& e : errors) {
      std::fprintf(stderr, "%s: %s: %s\n", argv[2], e.pointer.empty() ? "/" : e.pointer.c_str(),
                   e.message.c_str());
    }
    return 1;
  }
  if (check_only) {
    // As nginx -t: certificates and keys are loaded too, so a valid file also starts.
    std::string error = gatehouse::Server(config).check();
    if (!error.empty()) {
      std::fprintf(stderr, "%s: %s\n", argv[2], error.c_str());
      return 1;
    }
    std::fprintf(stdout, "%s: configuration is valid\n", argv[2]);
    return 0;
  }
  signal(SIGPIPE, SIG_IGN);
  gatehouse::log::Level level;
  if (gatehouse::log::parseLevel(config->log_level, level)) gatehouse::log::setLevel(level);
  raiseOpenFileLimit(*config);

  gatehouse::Server server(config);
  std::string error = server.prepare();
  if (!error.empty()) {
    gatehouse::log::error("cannot start", {{"error", error}});
    return 1;
  }
  return server.run();
}
