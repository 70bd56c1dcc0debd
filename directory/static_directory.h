// A Directory over the users listed in the configuration (inline and users_file), for small
// sites, tests and demos. Immutable after construction, so every worker may share one; crypt(3)
// hashes are checked on a few threads of its own, never on the calling worker's loop.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "directory/directory.h"
#include "directory/hash_worker_pool.h"

namespace gatehouse {

class StaticDirectory : public Directory {
 public:
  // `config.users` must already hold the users of users_file (loadConfig does this).
  explicit StaticDirectory(const DirectoryConfig& config);

  // Verifies a salted-SHA password on the calling thread (one digest), a crypt(3) one on the
  // hash threads, then posts the result to reply_to. TempFail when hash_queue checks are waiting.
  std::unique_ptr<PendingAuth> authenticate(std::shared_ptr<LoopMailbox> reply_to,
                                            Credentials credentials, AuthCallback done) override;

  // The decision itself, synchronous; authenticate() only adds the delivery. Public for tests.
  AuthResult check(const Credentials& credentials) const;

 private:
  const StaticUser* find(std::string_view login) const;
  // The hash check() will verify for this login: the user's, or the dummy.
  const std::string& hashFor(std::string_view login) const;

  std::unordered_map<std::string, StaticUser> users_;  // keyed by ASCII-lower-case login
  // Verified when the login is unknown, so that answering "no such user" costs what a wrong
  // password costs. A stored hash of the most common kind is used so the work factor matches.
  std::string dummy_hash_;
  // Last: destroyed (its threads joined) before the users its jobs read.
  std::unique_ptr<HashWorkerPool> hash_workers_;
};

}  // namespace gatehouse
