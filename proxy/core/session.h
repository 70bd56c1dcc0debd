// What every protocol session shares: the context it was accepted with and the way it hands
// itself back to its worker when done (freed on a later loop turn, never on its own stack).
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "proxy/config/config.h"
#include "proxy/core/loop_mailbox.h"

namespace gatehouse {

class Directory;
class BackendRegistry;
class ServerTlsContext;

class SessionHost {
 public:
  virtual ~SessionHost() = default;
  // The session has closed its streams; the host destroys it on a later loop turn.
  virtual void release(uint64_t session_id) = 0;
  // A PROXY protocol header named the session's real client: count the connection against that
  // address's limit. False if the address is at its limit (the session then says so and closes).
  virtual bool admitClient(uint64_t session_id, const std::string& client_ip) = 0;
};

// Everything a session needs, all of it immutable or owned by the worker for its lifetime.
struct SessionContext {
  uv_loop_t* loop = nullptr;
  std::shared_ptr<LoopMailbox> mailbox;
  std::shared_ptr<const Config> config;
  const ListenerConfig* listener = nullptr;
  std::shared_ptr<const ServerTlsContext> tls;  // null on a listener without TLS
  std::shared_ptr<Directory> directory;
  std::shared_ptr<const BackendRegistry> backends;
  SessionHost* host = nullptr;
  uint64_t id = 0;
  std::string client_address;  // "ip:port"
  bool over_limit = false;     // a connection limit is reached: say so and close
  std::string local_address;
};

class Session {
 public:
  virtual ~Session() = default;
  virtual void start() = 0;
  // The server is stopping. First call (final=false): end what can end now (pre-auth sessions
  // say BYE). Second call (final=true, the grace period is over): end everything.
  virtual void shutdown(bool final) = 0;
};

std::string formatSessionId(uint64_t id);

}  // namespace gatehouse
