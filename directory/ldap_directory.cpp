// Thread and delivery around LdapClient: worker threads post requests into the LDAP loop's mailbox;
// answers travel back through each session's own mailbox and are dropped if it stopped waiting.
#include "directory/ldap_directory.h"

#include <algorithm>

#include "directory/auth_reply.h"
#include "directory/ldap_client.h"
#include "directory/ldap_route.h"
#include "proxy/core/loop_mailbox.h"
#include "proxy/core/thread_name.h"
#include "proxy/log/log.h"

namespace gatehouse {
namespace {

bool isBlank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
  });
}

}  // namespace

std::shared_ptr<LdapDirectory> LdapDirectory::create(const Config& config, std::string& error) {
  std::vector<ConfigError> errors;
  nlohmann::json json = nlohmann::json::parse(config.directory.ldap_json, nullptr, false);
  // File names were made absolute by the configuration loader; "/" only anchors the parse.
  auto ldap = parseLdapConfig(json, "/directory/ldap", "/", errors);
  if (!ldap) {
    error = errors.empty() ? "invalid LDAP settings"
                           : errors.front().pointer + ": " + errors.front().message;
    return nullptr;
  }
  return std::make_shared<LdapDirectory>(std::move(*ldap), config.backends);
}

LdapDirectory::LdapDirectory(LdapConfig config, const std::vector<BackendConfig>& backends) {
  uv_loop_init(&loop_);
  // Everything is created before the thread starts (no loop runs yet), then used only there.
  mailbox_ = std::make_unique<LoopMailbox>(&loop_);
  keepalive_.init(this, [this](uv_async_t* h) { return uv_async_init(&loop_, h, nullptr); });
  LdapRouteMapper mapper(config.attributes, backends);
  client_ = std::make_unique<LdapClient>(&loop_, std::move(config), std::move(mapper));
  mailbox_->post([this] {
    if (client_) client_->start();
  });
  thread_ = std::thread([this] {
    nameThisThread("gh-ldap");
    mailbox_->bindToThisThread();
    uv_run(&loop_, UV_RUN_DEFAULT);
  });
}

LdapDirectory::~LdapDirectory() {
  mailbox_->post([this] {
    client_.reset();  // answers what is pending, closes connections and timers
    keepalive_.reset();
    mailbox_->close();
  });
  thread_.join();
  int rc = uv_loop_close(&loop_);
  if (rc != 0) log::error("ldap loop not closed cleanly", {{"error", uv_strerror(rc)}});
}

std::unique_ptr<PendingAuth> LdapDirectory::authenticate(std::shared_ptr<LoopMailbox> reply_to,
                                                         Credentials credentials,
                                                         AuthCallback done) {
  AuthReply reply(std::move(reply_to), std::move(done));
  std::unique_ptr<PendingAuth> handle = reply.handle();
  std::string_view login = credentials.login;
  std::string_view password = credentials.password.reveal();
  // An empty password would be an unauthenticated bind that "succeeds" (RFC 4513 5.1.2); a NUL
  // would be cut short somewhere between here and the server.
  if (isBlank(password)) {
    reply.send({AuthStatus::Denied, Route{}, "empty password"});
    return handle;
  }
  if (login.empty() || login.find('\0') != std::string_view::npos ||
      password.find('\0') != std::string_view::npos) {
    reply.send({AuthStatus::Denied, Route{}, "malformed credentials"});
    return handle;
  }
  // The reply is shared so that it can still be answered here if the LDAP loop refuses the post.
  auto shared = std::make_shared<AuthReply>(std::move(reply));
  bool posted = mailbox_->post([this, shared, credentials = std::move(credentials)]() mutable {
    if (client_) {
      client_->submit(std::move(credentials), std::move(*shared));
    } else {
      shared->send({AuthStatus::TempFail, Route{}, "directory shutting down"});
    }
  });
  if (!posted) shared->send({AuthStatus::TempFail, Route{}, "directory shutting down"});
  return handle;
}

}  // namespace gatehouse
