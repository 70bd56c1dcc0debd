// One thread, one libuv loop: its own listening sockets, the sessions they accept, and the
// deferred deletion of finished sessions. Other threads talk to it only through its mailbox.
#pragma once

#include <uv.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "proxy/core/connection_limiter.h"
#include "proxy/core/loop_mailbox.h"
#include "proxy/core/session.h"
#include "proxy/core/timer.h"
#include "proxy/net/listener.h"
#include "proxy/net/stream.h"

namespace gatehouse {

// Shared by all workers: builds a session for an accepted connection on a listener.
using SessionFactory =
    std::function<std::unique_ptr<Session>(SessionContext context, std::unique_ptr<Stream> client)>;

struct ListenerSpec {
  const ListenerConfig* config = nullptr;
  std::shared_ptr<const ServerTlsContext> tls;
  SessionFactory factory;
};

struct WorkerShared {
  std::shared_ptr<const Config> config;
  std::shared_ptr<Directory> directory;
  std::shared_ptr<const BackendRegistry> backends;
  std::vector<ListenerSpec> listeners;
  std::unique_ptr<ConnectionLimiter> connections;
};

class Worker final : public SessionHost {
 public:
  Worker(unsigned index, std::shared_ptr<WorkerShared> shared);
  ~Worker() override;
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Binds this worker's sockets (before the thread starts). `ports[i]` is the port to bind for
  // listener i; when 0 is configured, the first worker picks it and the others reuse it.
  std::string bind(std::vector<uint16_t>& ports);
  void startThread();
  void join();
  // Thread-safe: asks the worker to stop accepting and wind down within grace_ms.
  void requestShutdown(unsigned grace_ms);

  void release(uint64_t session_id) override;
  bool admitClient(uint64_t session_id, const std::string& client_ip) override;
  size_t sessionCount() const { return sessions_.size(); }
  // Joins the thread, closes what is left and returns uv_loop_close() (0 = no handle leaked).
  int closeLoop();

 private:
  void accept(const ListenerSpec& spec, Listener::Accepted accepted);
  void beginShutdown(unsigned grace_ms);
  void reapReleased();
  void maybeStop();
  static void onIdle(uv_idle_t* idle);

  unsigned index_;
  std::shared_ptr<WorkerShared> shared_;
  uv_loop_t loop_{};
  std::shared_ptr<LoopMailbox> mailbox_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  struct Entry {
    std::unique_ptr<Session> session;
    std::string client_ip;  // the slot it holds in the connection limiter ("": total only)
    bool holds_slot = true;
  };
  std::unordered_map<uint64_t, Entry> sessions_;
  std::vector<uint64_t> released_;
  UvHandle<uv_idle_t> reaper_;
  Timer grace_timer_;
  uint64_t next_session_ = 1;
  bool shutting_down_ = false;
  bool stopped_ = false;
  bool loop_closed_ = false;
  int loop_close_result_ = 0;
  std::thread thread_;
};

}  // namespace gatehouse
