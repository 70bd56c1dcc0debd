// The directory answers one question: may this login with this password use this protocol,
// and if so, which back-end holds the mailbox and under which name. It knows no sessions.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "proxy/config/config.h"
#include "proxy/core/loop_mailbox.h"
#include "proxy/core/secret.h"

namespace gatehouse {

struct Credentials {
  std::string login;  // as the user typed it
  Secret password;
  Protocol protocol = Protocol::Imap;
  std::string client_ip;  // for logs and rate limits, never for routing
};

struct Route {
  std::string user;           // canonical login, presented to the back-end
  std::string backend;        // a name from the configuration's back-ends
};

enum class AuthStatus {
  Ok,        // route is set
  Denied,    // wrong password, unknown user, disabled: the client sees one generic failure
  Disabled,  // the user exists and the password is right, but this protocol is not allowed
  TempFail,  // directory unreachable, route names an unknown back-end: try again later
};

struct AuthResult {
  AuthStatus status = AuthStatus::TempFail;
  Route route;
  std::string reason;  // for logs only; never shown to a client, never contains the password
};

// Destroying it cancels the request: the callback will not run afterwards.
class PendingAuth {
 public:
  virtual ~PendingAuth() = default;
};

using AuthCallback = std::function<void(AuthResult)>;

class Directory {
 public:
  virtual ~Directory() = default;
  // `done` runs later on reply_to's loop thread, never inside this call, and never after the
  // returned handle is destroyed.
  virtual std::unique_ptr<PendingAuth> authenticate(std::shared_ptr<LoopMailbox> reply_to,
                                                    Credentials credentials,
                                                    AuthCallback done) = 0;
};

}  // namespace gatehouse
