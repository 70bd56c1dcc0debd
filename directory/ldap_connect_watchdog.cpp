#include "directory/ldap_connect_watchdog.h"

#include <lber.h>

#include <chrono>
#include <cstring>

namespace gatehouse {
namespace {

bool sameAddress(const sockaddr_storage& a, const sockaddr_storage& b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

bool addressesOf(int fd, sockaddr_storage& local, sockaddr_storage& peer) {
  socklen_t local_len = sizeof local;
  socklen_t peer_len = sizeof peer;
  local = {};
  peer = {};
  return getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) == 0 &&
         getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) == 0;
}

}  // namespace

LdapConnectWatchdog::LdapConnectWatchdog(LDAP* ld) {
  callbacks_.lc_add = onConnect;
  callbacks_.lc_del = onDisconnect;
  callbacks_.lc_arg = this;
  ldap_set_option(ld, LDAP_OPT_CONNECT_CB, &callbacks_);
}

void LdapConnectWatchdog::arm(unsigned limit_ms) {
  disarm();
  {
    std::lock_guard lock(mutex_);
    done_ = false;
    fired_ = false;
  }
  thread_ = std::thread([this, limit_ms] { watch(limit_ms); });
}

void LdapConnectWatchdog::disarm() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    done_ = true;
  }
  done_changed_.notify_all();
  thread_.join();
}

bool LdapConnectWatchdog::fired() const {
  std::lock_guard lock(mutex_);
  return fired_;
}

int LdapConnectWatchdog::onConnect(LDAP*, Sockbuf* sb, LDAPURLDesc*, sockaddr*, ldap_conncb* ctx) {
  auto* self = static_cast<LdapConnectWatchdog*>(ctx->lc_arg);
  Socket s;
  if (ber_sockbuf_ctrl(sb, LBER_SB_OPT_GET_FD, &s.fd) != 1 || s.fd < 0) return 0;
  if (!addressesOf(s.fd, s.local, s.peer)) return 0;
  std::lock_guard lock(self->mutex_);
  self->socket_ = s;
  return 0;
}

void LdapConnectWatchdog::onDisconnect(LDAP*, Sockbuf*, ldap_conncb* ctx) {
  auto* self = static_cast<LdapConnectWatchdog*>(ctx->lc_arg);
  std::lock_guard lock(self->mutex_);
  self->socket_ = Socket{};
}

bool LdapConnectWatchdog::stillOurs(const Socket& s) const {
  // libldap may have closed it and the number gone to another socket (a worker's client): only
  // the same connection, both ends, is ours to shut down.
  sockaddr_storage local;
  sockaddr_storage peer;
  return s.fd >= 0 && addressesOf(s.fd, local, peer) && sameAddress(local, s.local) &&
         sameAddress(peer, s.peer);
}

void LdapConnectWatchdog::watch(unsigned limit_ms) {
  std::unique_lock lock(mutex_);
  if (done_changed_.wait_for(lock, std::chrono::milliseconds(limit_ms), [this] { return done_; })) {
    return;
  }
  if (stillOurs(socket_)) {
    shutdown(socket_.fd, SHUT_RDWR);
    fired_ = true;
  }
}

}  // namespace gatehouse
