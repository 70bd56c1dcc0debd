#include "proxy/core/worker.h"

#include <algorithm>
#include <cstdio>

#include "proxy/core/thread_name.h"
#include "proxy/log/log.h"
#include "proxy/net/tcp_stream.h"

namespace gatehouse {

std::string formatSessionId(uint64_t id) {
  char buf[20];
  snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(id));
  return buf;
}

Worker::Worker(unsigned index, std::shared_ptr<WorkerShared> shared)
    : index_(index), shared_(std::move(shared)), grace_timer_(&loop_) {
  uv_loop_init(&loop_);
  mailbox_ = std::make_shared<LoopMailbox>(&loop_);
  reaper_.init(this, [this](uv_idle_t* h) { return uv_idle_init(&loop_, h); });
}

Worker::~Worker() {
  closeLoop();
}

int Worker::closeLoop() {
  join();
  if (loop_closed_) return loop_close_result_;
  loop_closed_ = true;
  // Normally the loop already ran dry; this also covers a worker whose thread never started.
  sessions_.clear();
  listeners_.clear();
  reaper_.reset();
  grace_timer_.release();
  mailbox_->close();
  uv_run(&loop_, UV_RUN_DEFAULT);
  loop_close_result_ = uv_loop_close(&loop_);
  return loop_close_result_;
}

std::string Worker::bind(std::vector<uint16_t>& ports) {
  const auto& specs = shared_->listeners;
  ports.resize(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const ListenerSpec* spec = &specs[i];
    auto listener = std::make_unique<Listener>(
        &loop_, [this, spec](Listener::Accepted accepted) { accept(*spec, std::move(accepted)); });
    uint16_t port = ports[i] != 0 ? ports[i] : spec->config->port;
    std::string error = listener->listen(spec->config->address, port);
    if (!error.empty()) return spec->config->name + ": " + error;
    ports[i] = listener->boundPort();
    listeners_.push_back(std::move(listener));
  }
  return {};
}

void Worker::startThread() {
  thread_ = std::thread([this] {
    nameThisThread("gh-worker-" + std::to_string(index_));
    mailbox_->bindToThisThread();
    uv_run(&loop_, UV_RUN_DEFAULT);
  });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::requestShutdown(unsigned grace_ms) {
  mailbox_->post([this, grace_ms] { beginShutdown(grace_ms); });
}

void Worker::accept(const ListenerSpec& spec, Listener::Accepted accepted) {
  if (shutting_down_) return;
  UvHandle<uv_tcp_t> connection = std::move(accepted.connection);
  const std::string& client_address = accepted.peer_address;
  std::string client_ip, client_port;
  splitAddress(client_address, client_ip, client_port);
  // Behind a load balancer the peer speaks for others: only the configured ones may, and the
  // per-address limit waits for the address its PROXY protocol header names.
  const auto& load_balancers = spec.config->proxy_protocol_from;
  if (!load_balancers.empty()) {
    bool trusted = std::any_of(load_balancers.begin(), load_balancers.end(),
                               [&](const IpNetwork& n) { return n.containsAddress(client_ip); });
    if (!trusted) {
      log::warn("connection refused", {{"reason", "not from a configured load balancer"},
                                       {"client", client_address},
                                       {"listener", spec.config->name}});
      return;  // the handle closes with `connection`: a FIN, nothing said
    }
    client_ip.clear();
  }
  // Over a limit the session still starts, but only to say so in its protocol and close; it
  // holds no slot, and the lingering close bounds how long it lives.
  bool over_limit = !shared_->connections->acquire(client_ip);
  if (over_limit) {
    log::warn("connection refused", {{"reason", "connection limit"},
                                     {"client", client_address},
                                     {"listener", spec.config->name}});
  }
  SessionContext context;
  context.loop = &loop_;
  context.mailbox = mailbox_;
  context.config = shared_->config;
  context.listener = spec.config;
  context.tls = spec.tls;
  context.directory = shared_->directory;
  context.backends = shared_->backends;
  context.host = this;
  context.id = (static_cast<uint64_t>(index_) << 48) | next_session_++;
  context.client_address = client_address;
  context.over_limit = over_limit;
  context.local_address = accepted.local_address.empty() ? localAddress(connection.get())
                                                         : std::move(accepted.local_address);
  uint64_t id = context.id;
  auto stream = std::make_unique<TcpStream>(std::move(connection), TcpStream::NoDelay::AlreadySet);
  auto session = spec.factory(std::move(context), std::move(stream));
  Session* raw = session.get();
  sessions_.emplace(id, Entry{std::move(session), std::move(client_ip), !over_limit});
  raw->start();
}

bool Worker::admitClient(uint64_t session_id, const std::string& client_ip) {
  auto it = sessions_.find(session_id);
  if (it == sessions_.end() || !it->second.holds_slot || !it->second.client_ip.empty()) {
    return false;
  }
  if (!shared_->connections->acquireIp(client_ip)) {
    log::warn("connection refused", {{"reason", "connection limit"},
                                     {"client", client_ip},
                                     {"session", formatSessionId(session_id)}});
    return false;
  }
  it->second.client_ip = client_ip;
  return true;
}

void Worker::release(uint64_t session_id) {
  released_.push_back(session_id);
  if (reaper_) uv_idle_start(reaper_.get(), onIdle);
}

void Worker::onIdle(uv_idle_t* idle) {
  if (auto* self = ownerOf<Worker>(idle)) self->reapReleased();
}

void Worker::reapReleased() {
  uv_idle_stop(reaper_.get());
  auto released = std::move(released_);
  released_.clear();
  for (uint64_t id : released) {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) continue;
    if (it->second.holds_slot) shared_->connections->release(it->second.client_ip);
    sessions_.erase(it);
  }
  maybeStop();
}

void Worker::beginShutdown(unsigned grace_ms) {
  if (shutting_down_) return;
  shutting_down_ = true;
  listeners_.clear();
  std::vector<Session*> live;
  for (auto& [id, entry] : sessions_) live.push_back(entry.session.get());
  for (Session* s : live) s->shutdown(false);
  grace_timer_.start(grace_ms, [this] {
    std::vector<Session*> remaining;
    for (auto& [id, entry] : sessions_) remaining.push_back(entry.session.get());
    for (Session* s : remaining) s->shutdown(true);
  });
  maybeStop();
}

void Worker::maybeStop() {
  if (!shutting_down_ || stopped_ || !sessions_.empty()) return;
  stopped_ = true;
  // Every handle this worker owns is closed; the loop then runs dry and the thread ends.
  grace_timer_.release();
  reaper_.reset();
  mailbox_->close();
}

}  // namespace gatehouse
