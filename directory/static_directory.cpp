// Static directory: the configured users, matched case-insensitively, with the same work done
// for unknown logins as for wrong passwords, and results always delivered on a later loop turn.
#include "directory/static_directory.h"

#include <algorithm>
#include <atomic>
#include <map>

#include "directory/password_hash.h"
#include "proxy/core/ascii.h"

namespace gatehouse {
namespace {

// SHA512-CRYPT of a random string nobody knows, default 5000 rounds: the work an unknown login
// costs when no user is configured to copy it from.
constexpr std::string_view kFallbackDummyHash =
    "$6$6DlM3Shjy.HeB7wG$FYcIyzIUKmqJvr03SsatIUvla5tfCBQ2J2HV1I6QbFwTCMnNtAmwiOHbnabdiLLEHerbKIBmC7"
    "iq1ER/wlvK50";

bool isBlank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
  });
}

// What decides the cost of verifying a hash: the scheme and its parameters, not the salt.
// "{SSHA}" for salted SHA, "$6$rounds=N$" / "$2y$10$" / "$y$j9T$" for crypt strings.
std::string costClass(std::string_view hash) {
  if (!hash.empty() && hash.front() == '{') {
    size_t close = hash.find('}');
    std::string_view name = hash.substr(0, close + 1);
    if (hash.substr(close + 1, 1) != "$") return asciiLower(name);
    hash.remove_prefix(close + 1);
  }
  size_t last = hash.rfind('$');
  if (hash.substr(0, 2) == "$2") return std::string(hash.substr(0, last + 1));  // bcrypt: $2y$NN$
  size_t salt_start = last == std::string_view::npos || last == 0 ? 0 : hash.rfind('$', last - 1);
  return std::string(hash.substr(0, salt_start == std::string_view::npos ? 0 : salt_start + 1));
}

std::string pickDummyHash(const std::vector<StaticUser>& users) {
  std::map<std::string, std::pair<size_t, const std::string*>> classes;
  for (const StaticUser& user : users) {
    auto& entry = classes[costClass(user.password_hash)];
    ++entry.first;
    entry.second = &user.password_hash;
  }
  const std::string* best = nullptr;
  size_t best_count = 0;
  for (const auto& [name, entry] : classes) {
    if (entry.first > best_count) {
      best_count = entry.first;
      best = entry.second;
    }
  }
  return best != nullptr ? *best : std::string(kFallbackDummyHash);
}

bool allowsProtocol(const StaticUser& user, Protocol protocol) {
  return user.protocols.empty() ||
         std::find(user.protocols.begin(), user.protocols.end(), protocol) != user.protocols.end();
}

AuthResult denied(std::string reason) {
  return AuthResult{AuthStatus::Denied, Route{}, std::move(reason)};
}

// Set by the handle's destructor; read by the posted delivery on the same loop thread. Atomic
// because nothing forces a caller to destroy the handle on that thread.
class StaticPendingAuth : public PendingAuth {
 public:
  explicit StaticPendingAuth(std::shared_ptr<std::atomic<bool>> cancelled)
      : cancelled_(std::move(cancelled)) {}
  ~StaticPendingAuth() override { cancelled_->store(true); }

 private:
  std::shared_ptr<std::atomic<bool>> cancelled_;
};

}  // namespace

StaticDirectory::StaticDirectory(const DirectoryConfig& config)
    : dummy_hash_(pickDummyHash(config.users)),
      hash_workers_(std::make_unique<HashWorkerPool>(config.hash_threads, config.hash_queue)) {
  for (const StaticUser& user : config.users) users_.emplace(asciiLower(user.login), user);
}

const StaticUser* StaticDirectory::find(std::string_view login) const {
  auto it = users_.find(asciiLower(login));
  return it == users_.end() ? nullptr : &it->second;
}

const std::string& StaticDirectory::hashFor(std::string_view login) const {
  const StaticUser* user = find(login);
  return user != nullptr ? user->password_hash : dummy_hash_;
}

AuthResult StaticDirectory::check(const Credentials& credentials) const {
  std::string_view login = credentials.login;
  std::string_view password = credentials.password.reveal();
  // Rejected before any look-up: an empty password is an anonymous bind in LDAP, and a NUL
  // would be cut short by crypt(3) and by whatever the back-end is told.
  if (isBlank(password)) return denied("empty password");
  if (login.empty() || login.find('\0') != std::string_view::npos ||
      password.find('\0') != std::string_view::npos) {
    return denied("malformed credentials");
  }
  const StaticUser* user = find(login);
  if (user == nullptr) {
    (void)verifyPassword(dummy_hash_, password);  // same cost as a wrong password
    return denied("unknown user");
  }
  if (!verifyPassword(user->password_hash, password)) return denied("wrong password");
  if (!allowsProtocol(*user, credentials.protocol)) {
    return AuthResult{AuthStatus::Disabled, Route{},
                      std::string("protocol ") + protocolName(credentials.protocol) +
                          " not allowed for this user"};
  }
  std::string canonical = user->backend_login.empty() ? user->login : user->backend_login;
  return AuthResult{AuthStatus::Ok, Route{std::move(canonical), user->backend}, ""};
}

std::unique_ptr<PendingAuth> StaticDirectory::authenticate(std::shared_ptr<LoopMailbox> reply_to,
                                                           Credentials credentials,
                                                           AuthCallback done) {
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  // Posted even when the answer is ready: the caller must never be called back on its own
  // stack. If the mailbox is closed the loop is going away and nobody waits for the answer.
  auto deliver = [cancelled, reply_to, done = std::move(done)](AuthResult result) {
    reply_to->post([cancelled, done, result = std::move(result)]() mutable {
      if (!cancelled->load()) done(std::move(result));
    });
  };
  if (!isSlowHash(hashFor(credentials.login))) {
    deliver(check(credentials));
  } else {
    // std::function copies what it holds; the password must not be copied, so it is shared.
    auto shared = std::make_shared<Credentials>(std::move(credentials));
    bool queued = hash_workers_->submit([this, cancelled, shared, deliver] {
      if (!cancelled->load()) deliver(check(*shared));  // a login that left costs no hash
    });
    if (!queued) {
      deliver(AuthResult{AuthStatus::TempFail, Route{},
                         "password checks busy: directory.hash_queue checks are waiting"});
    }
  }
  return std::make_unique<StaticPendingAuth>(cancelled);
}

}  // namespace gatehouse
