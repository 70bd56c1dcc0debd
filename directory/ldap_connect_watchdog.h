// libldap makes its TCP connect and TLS handshake (ldaps://, and the one after StartTLS)
// synchronously, and with Debian's GnuTLS build nothing bounds the handshake: against a server
// that takes the connection and never answers it spins on EAGAIN for ever, holding the LDAP
// thread. While one synchronous open runs, the watchdog waits on a thread of its own; past the
// limit it shuts the socket down, and the handshake fails like a lost connection.
#pragma once

#include <ldap.h>
#include <sys/socket.h>

#include <condition_variable>
#include <mutex>
#include <thread>

namespace gatehouse {

class LdapConnectWatchdog {
 public:
  // Learns the sockets `ld` connects through libldap's connection callbacks, which stay
  // registered with the handle: destroy the watchdog only after the handle (ldap_unbind).
  explicit LdapConnectWatchdog(LDAP* ld);
  ~LdapConnectWatchdog() { disarm(); }
  LdapConnectWatchdog(const LdapConnectWatchdog&) = delete;
  LdapConnectWatchdog& operator=(const LdapConnectWatchdog&) = delete;

  // From now until disarm(): once limit_ms have passed, the socket is shut down.
  void arm(unsigned limit_ms);
  void disarm();
  bool fired() const;

 private:
  struct Socket {
    int fd = -1;
    sockaddr_storage local{};
    sockaddr_storage peer{};
  };

  static int onConnect(LDAP* ld, Sockbuf* sb, LDAPURLDesc* srv, sockaddr* addr, ldap_conncb* ctx);
  static void onDisconnect(LDAP* ld, Sockbuf* sb, ldap_conncb* ctx);
  void watch(unsigned limit_ms);
  bool stillOurs(const Socket& s) const;

  ldap_conncb callbacks_{};
  mutable std::mutex mutex_;
  std::condition_variable done_changed_;
  bool done_ = false;
  bool fired_ = false;
  Socket socket_;
  std::thread thread_;
};

}  // namespace gatehouse
