// One libldap handle on the LDAP thread's loop: opened (connect, StartTLS) against one URI, its
// socket watched with uv_poll, and every complete result drained with a zero timeout.
#pragma once

#include <ldap.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "directory/ldap_config.h"
#include "directory/ldap_connect_watchdog.h"
#include "directory/ldap_handle.h"
#include "proxy/core/uv_handle.h"

namespace gatehouse {

class LdapConnection {
 public:
  struct Events {
    // A complete response (for a search: its entries and the final result). May close().
    std::function<void(int msgid, LdapMessagePtr chain)> on_result;
    // The connection failed (server gone, protocol error); it is closed already and every
    // operation sent on it is lost.
    std::function<void(const std::string& reason)> on_lost;
  };

  LdapConnection(uv_loop_t* loop, const LdapConfig& config, Events events);
  LdapConnection(const LdapConnection&) = delete;
  LdapConnection& operator=(const LdapConnection&) = delete;
  ~LdapConnection() { close(); }

  // Connects to `uri` (blocking, bounded by connect_ms), runs StartTLS if configured (bounded by
  // request_ms) and starts watching the socket. false with `error` set if any step failed.
  bool open(const std::string& uri, std::string& error);
  // Stops watching and unbinds (closes the socket). Operations in progress are forgotten.
  void close();

  bool isOpen() const { return ld_ != nullptr; }
  LDAP* get() const { return ld_.get(); }
  const std::string& uri() const { return uri_; }
  // Loop time (ms) of the last message received: a request sent after it and not answered in
  // request_ms means the server stopped answering altogether, not just this one request.
  uint64_t lastActivity() const { return last_activity_; }
  // Delivers the results already received, as a readable socket does. For a timer that may run
  // late (after something blocked the loop) and before the I/O of its loop turn.
  void collect() { drain(); }

 private:
  static void onPoll(uv_poll_t* handle, int status, int events);
  void drain();
  void lost(const std::string& reason);
  bool setOptions(std::string& error);

  uv_loop_t* loop_;
  const LdapConfig& config_;
  Events events_;
  std::unique_ptr<LdapConnectWatchdog> watchdog_;  // outlives ld_, which holds its callbacks
  LdapPtr ld_;
  UvHandle<uv_poll_t> poll_;
  std::string uri_;
  uint64_t last_activity_ = 0;
};

}  // namespace gatehouse
