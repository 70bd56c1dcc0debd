// Search-then-bind on libldap's asynchronous API. Every failure of the directory itself (down,
// slow, busy) ends in TempFail; only a clear "no" from it (no entry, wrong password) is Denied.
#include "directory/ldap_client.h"

#include <algorithm>
#include <utility>

#include "directory/ldap_filter.h"
#include "proxy/log/log.h"

namespace gatehouse {
namespace {

// Two is enough to tell "exactly one entry" from "several": the server stops after the second.
constexpr int kSearchSizeLimit = 2;

AuthResult result(AuthStatus status, std::string reason) {
  return AuthResult{status, Route{}, std::move(reason)};
}

std::vector<std::string> values(LDAP* ld, LDAPMessage* entry, const std::string& attribute) {
  std::vector<std::string> out;
  if (attribute.empty()) return out;
  berval** raw = ldap_get_values_len(ld, entry, attribute.c_str());
  if (raw == nullptr) return out;
  for (berval** v = raw; *v != nullptr; ++v) out.emplace_back((*v)->bv_val, (*v)->bv_len);
  ldap_value_free_len(raw);
  return out;
}

// The result code of a response chain's final message (LDAP_OTHER if it cannot be parsed).
int resultCode(LDAP* ld, LDAPMessage* chain, std::string* diagnostic = nullptr) {
  int rc = LDAP_OTHER;
  char* text = nullptr;
  if (ldap_parse_result(ld, chain, &rc, nullptr, &text, nullptr, nullptr, 0) != LDAP_SUCCESS) {
    return LDAP_OTHER;
  }
  if (text != nullptr) {
    if (diagnostic != nullptr) *diagnostic = text;
    ldap_memfree(text);
  }
  return rc;
}

}  // namespace

LdapClient::LdapClient(uv_loop_t* loop, LdapConfig config, LdapRouteMapper mapper)
    : loop_(loop),
      config_(std::move(config)),
      mapper_(std::move(mapper)),
      search_timer_(loop),
      backoff_ms_(config_.reconnect_min_ms),
      bind_open_backoff_ms_(config_.reconnect_min_ms) {
  for (const std::string* name : {&config_.attributes.backend, &config_.attributes.login,
                                  &config_.attributes.protocols, &config_.attributes.disabled}) {
    if (!name->empty()) attribute_names_.push_back(*name);
  }
  search_ = std::make_unique<LdapConnection>(
      loop_, config_,
      LdapConnection::Events{
          [this](int msgid, LdapMessagePtr chain) { onSearchResult(msgid, std::move(chain)); },
          [this](const std::string& reason) { searchLost(reason); }});
  binds_.resize(config_.bind_connections);
  for (size_t i = 0; i < binds_.size(); ++i) {
    binds_[i].connection = std::make_unique<LdapConnection>(
        loop_, config_,
        LdapConnection::Events{[this, i](int msgid, LdapMessagePtr chain) {
                                 onBindResult(i, msgid, std::move(chain));
                               },
                               [this, i](const std::string& reason) { onBindLost(i, reason); }});
  }
}

LdapClient::~LdapClient() {
  for (auto& [id, request] : requests_) {
    request->reply.send(result(AuthStatus::TempFail, "directory shutting down"));
  }
  requests_.clear();
}

void LdapClient::start() {
  connectSearch();
}

void LdapClient::submit(Credentials credentials, AuthReply reply) {
  if (requests_.size() >= config_.max_in_flight) {
    reply.send(result(AuthStatus::TempFail, "too many LDAP requests in flight (max_in_flight " +
                                                std::to_string(config_.max_in_flight) + ")"));
    return;
  }
  if (search_state_ == SearchState::Backoff) {
    // The last connect failed and the next is not due yet: a fast, honest "try later".
    reply.send(result(AuthStatus::TempFail, "directory unavailable (reconnecting)"));
    return;
  }
  uint64_t id = next_id_++;
  auto request = std::make_unique<Request>(loop_, std::move(credentials), std::move(reply));
  request->timer.start(config_.request_ms, [this, id] { onTimeout(id); });
  request->deadline = uv_now(loop_) + config_.request_ms;
  requests_.emplace(id, std::move(request));
  search_queue_.push_back(id);
  pumpSearches();
}

LdapClient::Request* LdapClient::find(uint64_t id, Phase phase) {
  auto it = requests_.find(id);
  return it != requests_.end() && it->second->phase == phase ? it->second.get() : nullptr;
}

void LdapClient::finish(uint64_t id, AuthResult answer) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return;
  std::unique_ptr<Request> request = std::move(it->second);
  requests_.erase(it);
  request->reply.send(std::move(answer));
}

bool LdapClient::openAny(LdapConnection& connection, std::string& error) {
  std::string problems;
  for (size_t n = 0; n < config_.uris.size(); ++n) {
    size_t index = (preferred_uri_ + n) % config_.uris.size();
    std::string problem;
    if (connection.open(config_.uris[index], problem)) {
      preferred_uri_ = index;
      return true;
    }
    log::warn("ldap connect failed", {{"uri", config_.uris[index]}, {"error", problem}});
    problems += (problems.empty() ? "" : "; ") + config_.uris[index] + ": " + problem;
  }
  error = problems;
  return false;
}

void LdapClient::connectSearch() {
  search_timer_.stop();
  std::string error;
  if (!openAny(*search_, error)) {
    searchFailed("no LDAP server reachable (" + error + ")");
    return;
  }
  // Anonymous search still binds (empty name and password): the answer proves the server is
  // alive before any user waits on it.
  std::string_view password = config_.bind_password.reveal();
  berval credentials{static_cast<ber_len_t>(password.size()), const_cast<char*>(password.data())};
  int rc = ldap_sasl_bind(search_->get(), config_.bind_dn.c_str(), LDAP_SASL_SIMPLE, &credentials,
                          nullptr, nullptr, &service_bind_msgid_);
  if (rc != LDAP_SUCCESS) {
    searchFailed("service bind not sent: " + ldapErrorText(rc));
    return;
  }
  search_state_ = SearchState::Binding;
  search_timer_.start(config_.request_ms, [this] {
    // Connected but silent (a stopped or overloaded server): try the next one first.
    preferred_uri_ = (preferred_uri_ + 1) % config_.uris.size();
    searchFailed("service bind timed out after " + std::to_string(config_.request_ms) + " ms");
  });
}

void LdapClient::searchLost(const std::string& reason) {
  // A server that closes a connection it found idle (slapd's idletimeout, a firewall) is not down:
  // one reconnect at once, and the logins arriving meanwhile wait for it instead of being told
  // to come back later. A connection lost with searches on it, or while binding, is a failure.
  if (search_state_ == SearchState::Ready && searches_.empty()) {
    log::info("ldap search connection closed while idle, reconnecting",
              {{"uri", search_->uri()}, {"reason", reason}});
    search_->close();
    search_state_ = SearchState::Down;
    connectSearch();
    return;
  }
  searchFailed("connection lost: " + reason);
}

void LdapClient::searchFailed(const std::string& reason) {
  log::warn("ldap search connection failed",
            {{"uri", search_->uri()}, {"reason", reason}, {"retry_in_ms", backoff_ms_}});
  search_->close();
  searches_.clear();
  search_state_ = SearchState::Backoff;
  search_timer_.start(backoff_ms_, [this] {
    search_state_ = SearchState::Down;
    connectSearch();
  });
  backoff_ms_ = std::min(config_.reconnect_max_ms, backoff_ms_ * 2);
  std::vector<uint64_t> failed;
  for (const auto& [id, request] : requests_) {
    if (request->phase == Phase::QueuedSearch || request->phase == Phase::Searching) {
      failed.push_back(id);
    }
  }
  search_queue_.clear();
  for (uint64_t id : failed)
    finish(id, result(AuthStatus::TempFail, "directory unavailable: " + reason));
}

void LdapClient::pumpSearches() {
  if (search_state_ == SearchState::Down) connectSearch();
  if (search_state_ != SearchState::Ready) return;
  std::vector<char*> attributes;
  for (std::string& name : attribute_names_) attributes.push_back(name.data());
  attributes.push_back(nullptr);
  int scope = config_.scope == LdapScope::One ? LDAP_SCOPE_ONELEVEL : LDAP_SCOPE_SUBTREE;
  while (!search_queue_.empty() && search_state_ == SearchState::Ready) {
    uint64_t id = search_queue_.front();
    search_queue_.pop_front();
    Request* request = find(id, Phase::QueuedSearch);
    if (request == nullptr) continue;
    if (request->reply.cancelled()) {
      requests_.erase(id);  // nobody waits for the answer any more
      continue;
    }
    auto filter = expandFilter(config_.filter, request->credentials.login);
    if (!filter) {
      finish(id, result(AuthStatus::TempFail, "invalid filter template"));
      continue;
    }
    int msgid = -1;
    int rc =
        ldap_search_ext(search_->get(), config_.base_dn.c_str(), scope, filter->c_str(),
                        attributes.data(), 0, nullptr, nullptr, nullptr, kSearchSizeLimit, &msgid);
    request->phase = Phase::Searching;
    if (rc != LDAP_SUCCESS) {
      searchFailed("search not sent: " + ldapErrorText(rc));  // answers this request too
      return;
    }
    request->msgid = msgid;
    request->sent_at = uv_now(loop_);
    searches_[msgid] = id;
  }
}

void LdapClient::onServiceBind(LdapMessagePtr chain) {
  std::string diagnostic;
  int rc = resultCode(search_->get(), chain.get(), &diagnostic);
  if (rc != LDAP_SUCCESS) {
    // Wrong service credentials are a configuration error: loud, and retried with backoff.
    log::error("ldap service bind refused", {{"uri", search_->uri()},
                                             {"bind_dn", config_.bind_dn},
                                             {"error", ldapErrorText(rc)},
                                             {"diagnostic", diagnostic}});
    searchFailed("service bind refused: " + ldapErrorText(rc));
    return;
  }
  search_timer_.stop();
  search_state_ = SearchState::Ready;
  backoff_ms_ = config_.reconnect_min_ms;
  log::info("ldap connected", {{"uri", search_->uri()}, {"bind_dn", config_.bind_dn}});
  for (BindSlot& slot : binds_) {
    if (slot.request == 0) retireIfStrayed(slot);
  }
  pumpSearches();
}

void LdapClient::retireIfStrayed(BindSlot& slot) {
  // After a failover the pool follows the search connection: a pooled connection left on the
  // server just given up on would send it the next password check and wait out request_ms.
  if (search_state_ == SearchState::Ready && slot.connection->isOpen() &&
      slot.connection->uri() != search_->uri()) {
    slot.connection->close();
  }
}

LdapEntry LdapClient::readEntry(LDAP* ld, LDAPMessage* message) const {
  LdapEntry entry;
  if (char* dn = ldap_get_dn(ld, message)) {
    entry.dn = dn;
    ldap_memfree(dn);
  }
  entry.backend = values(ld, message, config_.attributes.backend);
  entry.login = values(ld, message, config_.attributes.login);
  entry.protocols = values(ld, message, config_.attributes.protocols);
  entry.disabled = values(ld, message, config_.attributes.disabled);
  return entry;
}

void LdapClient::onSearchResult(int msgid, LdapMessagePtr chain) {
  if (search_state_ == SearchState::Binding && msgid == service_bind_msgid_) {
    onServiceBind(std::move(chain));
    return;
  }
  auto it = searches_.find(msgid);
  if (it == searches_.end()) return;  // abandoned after its timeout
  uint64_t id = it->second;
  searches_.erase(it);
  Request* request = find(id, Phase::Searching);
  if (request == nullptr) return;
  LDAP* ld = search_->get();
  int count = 0;
  for (LDAPMessage* e = ldap_first_entry(ld, chain.get()); e != nullptr;
       e = ldap_next_entry(ld, e)) {
    if (++count == 1) request->entry = readEntry(ld, e);
  }
  std::string diagnostic;
  int rc = resultCode(ld, chain.get(), &diagnostic);
  if (count > 1) {
    log::warn("ldap login matches several entries",
              {{"login", request->credentials.login}, {"first_dn", request->entry.dn}});
    finish(id, result(AuthStatus::Denied, "login matches several directory entries"));
  } else if (rc == LDAP_SIZELIMIT_EXCEEDED) {
    // Fewer than the two entries asked for, yet more matched: the server's own size limit for
    // our account is below two, so nobody can tell whether the login is unique.
    log::warn("ldap size limit below 2: a login cannot be proven unique",
              {{"login", request->credentials.login}, {"entries", count}});
    finish(id, result(AuthStatus::TempFail, "search hit the server's size limit"));
  } else if (rc != LDAP_SUCCESS) {
    finish(id, result(AuthStatus::TempFail, "search failed: " + ldapErrorText(rc) +
                                                (diagnostic.empty() ? "" : ": " + diagnostic)));
  } else if (count == 0) {
    finish(id, result(AuthStatus::Denied, "unknown user"));
  } else {
    request->phase = Phase::QueuedBind;
    bind_queue_.push_back(id);
    pumpBinds();
  }
}

void LdapClient::pumpBinds() {
  // Connections already open first: opening one blocks this thread (connect, StartTLS, bounded
  // by the watchdog) and with it every other request's answer and timer.
  for (bool open : {true, false}) {
    for (size_t i = 0; i < binds_.size() && !bind_queue_.empty(); ++i) {
      BindSlot& slot = binds_[i];
      if (slot.request != 0 || slot.connection->isOpen() != open) continue;
      if (!open && uv_now(loop_) < bind_open_retry_at_) break;  // the last open failed
      while (!bind_queue_.empty()) {
        uint64_t id = bind_queue_.front();
        bind_queue_.pop_front();
        Request* request = find(id, Phase::QueuedBind);
        if (request == nullptr) continue;
        if (request->reply.cancelled()) {
          requests_.erase(id);
          continue;
        }
        // Its timer cannot fire while an earlier open blocked the loop: time is read afresh.
        uv_update_time(loop_);
        if (uv_now(loop_) >= request->deadline) {
          finish(id, result(AuthStatus::TempFail, "directory did not answer within " +
                                                      std::to_string(config_.request_ms) + " ms"));
          continue;
        }
        if (sendBind(i, *request)) {
          binds_[i].request = id;
          if (!open) bind_open_backoff_ms_ = config_.reconnect_min_ms;
          break;
        }
        finish(id, result(AuthStatus::TempFail, "directory unavailable for the password check"));
        if (!slot.connection->isOpen()) {
          // One failed open per backoff: the next requests wait for a connection that is open,
          // or are told at once when there is none.
          bind_open_retry_at_ = uv_now(loop_) + bind_open_backoff_ms_;
          bind_open_backoff_ms_ = std::min(config_.reconnect_max_ms, bind_open_backoff_ms_ * 2);
          break;
        }
      }
    }
  }
  if (bind_queue_.empty() || uv_now(loop_) >= bind_open_retry_at_) return;
  bool any_open = false;
  for (const BindSlot& slot : binds_) any_open = any_open || slot.connection->isOpen();
  if (any_open) return;  // they wait for it, within their deadline
  for (uint64_t id : std::exchange(bind_queue_, {})) {
    if (find(id, Phase::QueuedBind) != nullptr) {
      finish(id, result(AuthStatus::TempFail, "directory unavailable for the password check"));
    }
  }
}

bool LdapClient::sendBind(size_t slot_index, Request& request) {
  BindSlot& slot = binds_[slot_index];
  std::string_view password = request.credentials.password.reveal();
  berval credentials{static_cast<ber_len_t>(password.size()), const_cast<char*>(password.data())};
  // A pooled connection may have died quietly since its last bind: one fresh connection retried.
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::string error;
    if (!slot.connection->isOpen() && !openAny(*slot.connection, error)) return false;
    int rc = ldap_sasl_bind(slot.connection->get(), request.entry.dn.c_str(), LDAP_SASL_SIMPLE,
                            &credentials, nullptr, nullptr, &slot.msgid);
    if (rc == LDAP_SUCCESS) {
      request.phase = Phase::Binding;
      request.slot = slot_index;
      return true;
    }
    log::warn("ldap bind not sent",
              {{"uri", slot.connection->uri()}, {"error", ldapErrorText(rc)}});
    slot.connection->close();
  }
  return false;
}

void LdapClient::onBindResult(size_t slot_index, int msgid, LdapMessagePtr chain) {
  BindSlot& slot = binds_[slot_index];
  if (slot.request == 0 || msgid != slot.msgid) return;
  uint64_t id = std::exchange(slot.request, 0);
  std::string diagnostic;
  int rc = resultCode(slot.connection->get(), chain.get(), &diagnostic);
  Request* request = find(id, Phase::Binding);
  if (request != nullptr) {
    if (rc == LDAP_SUCCESS) {
      AuthResult answer =
          mapper_.decide(request->entry, request->credentials.login, request->credentials.protocol);
      if (answer.status == AuthStatus::TempFail) {
        log::warn("ldap entry cannot be routed",
                  {{"login", request->credentials.login}, {"reason", answer.reason}});
      } else if (answer.status == AuthStatus::Denied) {
        log::info("ldap login refused",
                  {{"login", request->credentials.login}, {"reason", answer.reason}});
      }
      finish(id, std::move(answer));
    } else if (rc == LDAP_INVALID_CREDENTIALS || rc == LDAP_UNWILLING_TO_PERFORM) {
      finish(id, result(AuthStatus::Denied, "wrong password (" + ldapErrorText(rc) + ")"));
    } else {
      finish(id, result(AuthStatus::TempFail, "bind failed: " + ldapErrorText(rc) +
                                                  (diagnostic.empty() ? "" : ": " + diagnostic)));
    }
  }
  retireIfStrayed(slot);
  pumpBinds();
}

void LdapClient::onBindLost(size_t slot_index, const std::string& reason) {
  BindSlot& slot = binds_[slot_index];
  log::warn("ldap bind connection lost", {{"uri", slot.connection->uri()}, {"reason", reason}});
  if (uint64_t id = std::exchange(slot.request, 0)) {
    finish(id, result(AuthStatus::TempFail, "directory connection lost: " + reason));
  }
  pumpBinds();
}

void LdapClient::onTimeout(uint64_t id) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return;
  // Its answer may be waiting unread: libuv runs timers before polling, and a blocking open may
  // have held the loop past the deadline. An answer that came in time is taken, not discarded.
  if (it->second->phase == Phase::Binding) {
    binds_[it->second->slot].connection->collect();
  } else if (it->second->phase == Phase::Searching) {
    search_->collect();
  }
  it = requests_.find(id);
  if (it == requests_.end()) return;
  Request& request = *it->second;
  std::string reason =
      "directory did not answer within " + std::to_string(config_.request_ms) + " ms";
  bool search_stalled = false;
  if (request.phase == Phase::Searching) {
    searches_.erase(request.msgid);
    if (search_->isOpen()) ldap_abandon_ext(search_->get(), request.msgid, nullptr, nullptr);
    // Nothing at all came back since this search was sent: the server, not the query, is stuck.
    // ... and only if it had its full time on the wire: a request that waited for a (slow,
    // synchronous) connect is no evidence against the server it was then sent to.
    search_stalled = search_->lastActivity() <= request.sent_at &&
                     uv_now(loop_) - request.sent_at >= config_.request_ms;
  } else if (request.phase == Phase::Binding) {
    // A bind cannot be abandoned (RFC 4511 4.11): the connection goes instead.
    BindSlot& slot = binds_[request.slot];
    slot.request = 0;
    slot.connection->close();
  }
  finish(id, result(AuthStatus::TempFail, reason));
  if (search_stalled) {
    preferred_uri_ = (preferred_uri_ + 1) % config_.uris.size();
    searchFailed("no answer within " + std::to_string(config_.request_ms) + " ms");
  }
  pumpBinds();
}

}  // namespace gatehouse
