// The Directory backed by OpenLDAP: search for the login, bind as the entry to prove the password,
// route by its mailHost. libldap runs on a thread of its own so that no worker ever waits on it.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <thread>

#include "directory/directory.h"
#include "directory/ldap_config.h"
#include "proxy/core/uv_handle.h"

namespace gatehouse {

class LdapClient;

class LdapDirectory : public Directory {
 public:
  // Reads config.directory.ldap_json; nullptr with `error` set if it is invalid. Connection
  // problems are not errors here: they are logged and retried on the LDAP thread.
  static std::shared_ptr<LdapDirectory> create(const Config& config, std::string& error);

  // Starts the LDAP thread; `backends` are the only hosts a mailHost may name.
  LdapDirectory(LdapConfig config, const std::vector<BackendConfig>& backends);
  LdapDirectory(const LdapDirectory&) = delete;
  LdapDirectory& operator=(const LdapDirectory&) = delete;
  // Stops the thread; requests still pending are answered TempFail.
  ~LdapDirectory() override;

  // Thread-safe. Malformed credentials (blank password, NUL) are Denied without any LDAP call.
  std::unique_ptr<PendingAuth> authenticate(std::shared_ptr<LoopMailbox> reply_to,
                                            Credentials credentials, AuthCallback done) override;

 private:
  uv_loop_t loop_{};
  std::unique_ptr<LoopMailbox> mailbox_;  // posts from workers to the LDAP thread
  UvHandle<uv_async_t> keepalive_;        // keeps the loop running until shutdown
  std::unique_ptr<LdapClient> client_;    // LDAP thread only; null once shut down
  std::thread thread_;
};

}  // namespace gatehouse
