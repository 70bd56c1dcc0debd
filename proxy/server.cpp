#include "proxy/server.h"

#include <openssl/ssl.h>
#include <uv.h>

#include <csignal>
#include <thread>

#include "backends/backend_registry.h"
#include "directory/cached_directory.h"
#include "directory/ldap_directory.h"
#include "directory/static_directory.h"
#include "proxy/core/uv_handle.h"
#include "proxy/imap/imap_session.h"
#include "proxy/log/log.h"
#include "proxy/net/listener.h"
#include "proxy/pop3/pop3_session.h"
#include "proxy/smtp/smtp_session.h"
#include "tls/ticket_keys.h"
#include "tls/tls_context.h"

namespace gatehouse {
namespace {

SessionFactory factoryFor(Protocol protocol) {
  switch (protocol) {
    case Protocol::Imap:
      return makeImapSession;
    case Protocol::Pop3:
      return makePop3Session;
    case Protocol::Submission:
      return makeSmtpSession;
    case Protocol::Http:
      break;
  }
  return nullptr;
}

// The chosen directory behind CachedDirectory, which always normalises logins and caches unless
// /directory/cache/enabled is false.
std::shared_ptr<Directory> makeDirectory(const Config& config, std::string& error) {
  std::shared_ptr<Directory> inner;
  if (config.directory.type == "static") {
    inner = std::make_shared<StaticDirectory>(config.directory);
  } else if (config.directory.type == "ldap") {
    inner = LdapDirectory::create(config, error);
    if (!inner) return nullptr;
  } else {
    error = "directory type \"" + config.directory.type + "\" is not available";
    return nullptr;
  }
  return std::make_shared<CachedDirectory>(std::move(inner), config.directory.login,
                                           config.directory.cache);
}

}  // namespace

Server::Server(std::shared_ptr<const Config> config) : config_(std::move(config)) {}

Server::~Server() = default;

std::string Server::check() {
  shared_ = std::make_shared<WorkerShared>();
  shared_->config = config_;
  std::string error;
  shared_->backends = BackendRegistry::create(*config_, error);
  if (!shared_->backends) return error;
  std::shared_ptr<const TicketKeys> ticket_keys;
  if (!config_->session_ticket_keys.empty()) {
    ticket_keys = std::make_shared<const TicketKeys>(config_->session_ticket_keys);
  }
  for (const ListenerConfig& lc : config_->listeners) {
    ListenerSpec spec;
    spec.config = &lc;
    spec.factory = factoryFor(lc.protocol);
    if (!spec.factory) {
      return "listener " + lc.name + ": protocol " + protocolName(lc.protocol) +
             " is not implemented yet";
    }
    if (lc.tls != TlsMode::None) {
      spec.tls = ServerTlsContext::create(config_->certificates, alpnName(lc.protocol), ticket_keys,
                                          error);
      if (!spec.tls) return error;  // the certificates are every TLS listener's
    }
    shared_->listeners.push_back(std::move(spec));
  }
  return {};
}

std::string Server::prepare() {
  std::string error = check();
  if (!error.empty()) return error;
  shared_->connections = std::make_unique<ConnectionLimiter>(
      config_->limits.max_connections, config_->limits.max_connections_per_ip);
  shared_->directory = makeDirectory(*config_, error);
  if (!shared_->directory) return error;
  // Asked before our own sockets exist: afterwards every port would look taken.
  std::vector<bool> already_listened;
  for (const ListenerSpec& spec : shared_->listeners) {
    already_listened.push_back(portHasListener(spec.config->address, spec.config->port));
  }
  unsigned count = config_->workers != 0 ? config_->workers : std::thread::hardware_concurrency();
  if (count == 0) count = 1;
  std::vector<uint16_t> ports;
  for (unsigned i = 0; i < count; ++i) {
    auto worker = std::make_unique<Worker>(i, shared_);
    error = worker->bind(ports);
    if (!error.empty()) return error;
    workers_.push_back(std::move(worker));
  }
  for (size_t i = 0; i < shared_->listeners.size(); ++i) {
    const ListenerConfig& lc = *shared_->listeners[i].config;
    log::info("listening", {{"listener", lc.name},
                            {"protocol", protocolName(lc.protocol)},
                            {"address", lc.address},
                            {"port", ports[i]},
                            {"workers", count}});
    if (already_listened[i]) {
      log::warn("port shared with another process: new connections are split between them",
                {{"listener", lc.name}, {"address", lc.address}, {"port", ports[i]}});
    }
  }
  return {};
}

int Server::run() {
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct SignalState {
    Server* server;
    UvHandle<uv_signal_t> term;
    UvHandle<uv_signal_t> intr;
    UvHandle<uv_signal_t> hup;
  } state{this, {}, {}, {}};
  auto on_signal = [](uv_signal_t* handle, int signum) {
    auto* st = static_cast<SignalState*>(handle->data);
    if (st == nullptr) return;
    log::info("shutting down", {{"signal", signum == SIGTERM ? "SIGTERM" : "SIGINT"},
                                {"grace_ms", st->server->config_->timeouts.shutdown_grace_ms}});
    for (auto& w : st->server->workers_) {
      w->requestShutdown(st->server->config_->timeouts.shutdown_grace_ms);
    }
    // A second SIGTERM or SIGINT takes the default action: stop at once. This loop ends with
    // its handles, and the thread waits for the workers; SIGHUP stays ignored meanwhile (a log
    // rotation must not kill the sessions that the grace period lets finish), without a word.
    st->term.reset();
    st->intr.reset();
    st->hup.reset();               // libuv restores the default action here...
    std::signal(SIGHUP, SIG_IGN);  // ...which would end every session at once
  };
  state.term.init(&state, [&](uv_signal_t* h) { return uv_signal_init(&loop, h); });
  state.intr.init(&state, [&](uv_signal_t* h) { return uv_signal_init(&loop, h); });
  uv_signal_start_oneshot(state.term.get(), on_signal, SIGTERM);
  uv_signal_start_oneshot(state.intr.get(), on_signal, SIGINT);
  // Admins send SIGHUP to reload nginx, HAProxy or Dovecot; its default action would end every
  // session at once. Nothing is reloaded: the log says how to apply a new configuration.
  state.hup.init(&state, [&](uv_signal_t* h) { return uv_signal_init(&loop, h); });
  uv_signal_start(
      state.hup.get(),
      [](uv_signal_t*, int) {
        log::warn("SIGHUP ignored: the configuration is not reloaded",
                  {{"to_apply_changes",
                    "start a new instance on the same ports (they are shared), then send SIGTERM "
                    "to this one"}});
      },
      SIGHUP);
  // Only now: a client served before the handlers were in place could see the process killed by
  // a signal's default action (a SIGHUP right after its greeting did, under load).
  for (auto& w : workers_) w->startThread();
  uv_run(&loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&loop);

  bool clean = rc == 0;
  for (auto& w : workers_) clean = w->closeLoop() == 0 && clean;
  workers_.clear();
  log::info("stopped", {{"clean", clean}});
  return clean ? 0 : 1;
}

}  // namespace gatehouse
