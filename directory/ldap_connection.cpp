// libldap's synchronous steps (connect, TLS handshake, StartTLS) run on the LDAP thread only,
// bounded by its own timeouts and, for the TLS handshake that none bounds, by a watchdog; every
// operation after that is asynchronous and read here.
#include "directory/ldap_connection.h"

#include <sys/time.h>

namespace gatehouse {
namespace {

timeval toTimeval(unsigned ms) {
  return timeval{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
}

std::string handleError(LDAP* ld, int rc) {
  std::string text = ldapErrorText(rc);
  char* diagnostic = nullptr;
  if (ld != nullptr && ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diagnostic) == 0 &&
      diagnostic != nullptr) {
    if (diagnostic[0] != '\0') text += ": " + std::string(diagnostic);
    ldap_memfree(diagnostic);
  }
  return text;
}

}  // namespace

LdapConnection::LdapConnection(uv_loop_t* loop, const LdapConfig& config, Events events)
    : loop_(loop), config_(config), events_(std::move(events)) {}

bool LdapConnection::setOptions(std::string& error) {
  LDAP* ld = ld_.get();
  int version = LDAP_VERSION3;
  timeval network = toTimeval(config_.connect_ms);
  timeval request = toTimeval(config_.request_ms);
  // Referrals would be chased with synchronous binds inside ldap_result: never on this loop.
  bool ok = ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version) == LDAP_OPT_SUCCESS &&
            ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) == LDAP_OPT_SUCCESS &&
            ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &network) == LDAP_OPT_SUCCESS &&
            ldap_set_option(ld, LDAP_OPT_TIMEOUT, &request) == LDAP_OPT_SUCCESS;
  if (!ok) {
    error = "cannot set connection options";
    return false;
  }
  bool tls = config_.starttls || uri_.rfind("ldaps://", 0) == 0;
  if (!tls) return true;
  int demand = LDAP_OPT_X_TLS_DEMAND;
  int min_version = LDAP_OPT_X_TLS_PROTOCOL_TLS1_2;
  int new_context = 0;
  ok = ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand) == LDAP_OPT_SUCCESS &&
       ldap_set_option(ld, LDAP_OPT_X_TLS_PROTOCOL_MIN, &min_version) == LDAP_OPT_SUCCESS &&
       (config_.ca_file.empty() || ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE,
                                                   config_.ca_file.c_str()) == LDAP_OPT_SUCCESS) &&
       // The handle's own TLS context, built from the options above rather than the global one.
       ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &new_context) == LDAP_OPT_SUCCESS;
  if (!ok) error = "cannot set TLS options (CA file " + config_.ca_file + ")";
  return ok;
}

bool LdapConnection::open(const std::string& uri, std::string& error) {
  close();
  uri_ = uri;
  LDAP* raw = nullptr;
  int rc = ldap_initialize(&raw, uri.c_str());
  ld_.reset(raw);
  if (rc != LDAP_SUCCESS || !ld_) {
    error = "ldap_initialize: " + ldapErrorText(rc);
    close();
    return false;
  }
  if (!setOptions(error)) {
    close();
    return false;
  }
  watchdog_ = std::make_unique<LdapConnectWatchdog>(ld_.get());
  watchdog_->arm(config_.connect_ms + config_.request_ms);
  rc = ldap_connect(ld_.get());
  std::string_view step = "connect";
  if (rc == LDAP_SUCCESS && config_.starttls) {
    step = "StartTLS";
    rc = ldap_start_tls_s(ld_.get(), nullptr, nullptr);
  }
  watchdog_->disarm();
  if (watchdog_->fired()) {
    error = std::string(step) + ": no answer within " +
            std::to_string(config_.connect_ms + config_.request_ms) + " ms (TLS handshake?)";
    close();
    return false;
  }
  if (rc != LDAP_SUCCESS) {
    error = std::string(step) + ": " + handleError(ld_.get(), rc);
    close();
    return false;
  }
  int fd = -1;
  if (ldap_get_option(ld_.get(), LDAP_OPT_DESC, &fd) != LDAP_OPT_SUCCESS || fd < 0) {
    error = "connected but no socket";
    close();
    return false;
  }
  rc = poll_.init(this, [&](uv_poll_t* p) { return uv_poll_init_socket(loop_, p, fd); });
  if (rc == 0) rc = uv_poll_start(poll_.get(), UV_READABLE | UV_DISCONNECT, onPoll);
  if (rc != 0) {
    error = std::string("uv_poll: ") + uv_strerror(rc);
    close();
    return false;
  }
  // The synchronous steps may have taken seconds: the loop's clock must not lag behind them, or
  // every timer and request age measured against it would be off by as much.
  uv_update_time(loop_);
  last_activity_ = uv_now(loop_);
  return true;
}

void LdapConnection::close() {
  // The poll handle lets go of the descriptor before libldap closes it.
  poll_.reset();
  ld_.reset();
  watchdog_.reset();
}

void LdapConnection::onPoll(uv_poll_t* handle, int status, int /*events*/) {
  auto* self = ownerOf<LdapConnection>(handle);
  if (self == nullptr) return;
  if (status < 0) {
    self->lost(std::string("poll: ") + uv_strerror(status));
    return;
  }
  self->drain();
}

void LdapConnection::drain() {
  // Level-triggered: whatever libldap leaves unread (a partial PDU) wakes us again; bytes already
  // decrypted by TLS are not on the socket, hence the loop until libldap has nothing complete.
  while (ld_) {
    LDAPMessage* raw = nullptr;
    timeval zero{0, 0};
    int type = ldap_result(ld_.get(), LDAP_RES_ANY, LDAP_MSG_ALL, &zero, &raw);
    LdapMessagePtr chain(raw);
    if (type == 0) return;
    if (type < 0) {
      int rc = LDAP_SERVER_DOWN;
      ldap_get_option(ld_.get(), LDAP_OPT_RESULT_CODE, &rc);
      lost(handleError(ld_.get(), rc));
      return;
    }
    last_activity_ = uv_now(loop_);
    int msgid = ldap_msgid(chain.get());
    if (msgid == 0 || type == LDAP_RES_EXTENDED) {
      // Unsolicited notification (RFC 4511 4.4.1: notice of disconnection): the server is going.
      lost("unsolicited notification from the server");
      return;
    }
    events_.on_result(msgid, std::move(chain));
  }
}

void LdapConnection::lost(const std::string& reason) {
  close();
  events_.on_lost(reason);
}

}  // namespace gatehouse
