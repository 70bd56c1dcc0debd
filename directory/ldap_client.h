// The LDAP thread's engine: one service connection that searches, a pool of connections that bind
// as users, a timer per request, a bound on requests in flight and reconnects with backoff.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "directory/auth_reply.h"
#include "directory/ldap_config.h"
#include "directory/ldap_connection.h"
#include "directory/ldap_route.h"
#include "proxy/core/timer.h"

namespace gatehouse {

// Every method runs on the loop it was built with. Requests beyond max_in_flight are answered
// TempFail at once: queueing them would only turn an overloaded directory into slow refusals.
class LdapClient {
 public:
  LdapClient(uv_loop_t* loop, LdapConfig config, LdapRouteMapper mapper);
  LdapClient(const LdapClient&) = delete;
  LdapClient& operator=(const LdapClient&) = delete;
  // Every request still pending is answered TempFail.
  ~LdapClient();

  // Opens the search connection now, so that the first login does not pay for it.
  void start();
  // Search for the login, bind as the entry found, answer through `reply`.
  void submit(Credentials credentials, AuthReply reply);

 private:
  enum class Phase { QueuedSearch, Searching, QueuedBind, Binding };
  enum class SearchState { Down, Binding, Ready, Backoff };

  struct Request {
    Request(uv_loop_t* loop, Credentials c, AuthReply r)
        : credentials(std::move(c)), reply(std::move(r)), timer(loop) {}
    Credentials credentials;
    AuthReply reply;
    Timer timer;  // the whole authentication's deadline (request_ms)
    Phase phase = Phase::QueuedSearch;
    int msgid = -1;
    size_t slot = 0;        // Binding: index into binds_
    uint64_t sent_at = 0;   // Searching: loop time the search was sent
    uint64_t deadline = 0;  // loop time the timer fires
    LdapEntry entry;
  };

  struct BindSlot {
    std::unique_ptr<LdapConnection> connection;
    uint64_t request = 0;  // 0 = idle
    int msgid = -1;
  };

  void connectSearch();
  bool openAny(LdapConnection& connection, std::string& error);
  void searchLost(const std::string& reason);
  void searchFailed(const std::string& reason);
  void onSearchResult(int msgid, LdapMessagePtr chain);
  void onServiceBind(LdapMessagePtr chain);
  void pumpSearches();
  void pumpBinds();
  bool sendBind(size_t slot_index, Request& request);
  void onBindResult(size_t slot_index, int msgid, LdapMessagePtr chain);
  void onBindLost(size_t slot_index, const std::string& reason);
  void retireIfStrayed(BindSlot& slot);
  void onTimeout(uint64_t id);
  void finish(uint64_t id, AuthResult result);
  Request* find(uint64_t id, Phase phase);
  LdapEntry readEntry(LDAP* ld, LDAPMessage* entry) const;

  uv_loop_t* loop_;
  LdapConfig config_;
  LdapRouteMapper mapper_;
  std::vector<std::string> attribute_names_;  // what the search asks for

  std::unordered_map<uint64_t, std::unique_ptr<Request>> requests_;
  uint64_t next_id_ = 1;
  std::deque<uint64_t> search_queue_;
  std::deque<uint64_t> bind_queue_;

  std::unique_ptr<LdapConnection> search_;
  SearchState search_state_ = SearchState::Down;
  int service_bind_msgid_ = -1;
  Timer search_timer_;  // service bind deadline, or the reconnect after a backoff
  unsigned backoff_ms_;
  size_t preferred_uri_ = 0;  // where the next connect starts; moves on when a server misbehaves
  std::unordered_map<int, uint64_t> searches_;  // msgid -> request id

  std::vector<BindSlot> binds_;
  uint64_t bind_open_retry_at_ = 0;  // loop time before which no closed bind slot is opened
  unsigned bind_open_backoff_ms_;    // doubles with each failed open, as the search's
};

}  // namespace gatehouse
