// PEM files of certificates: how a reading loop ended, and a check for files that another library
// loads later (libldap's ca_file), so that --check-config catches what the first connection would.
#pragma once

#include <string>

namespace gatehouse {

// After PEM_read_bio_X509 returned nullptr, without clearing the error queue: whether it only met
// the end of the file ("no start line"), not a damaged block.
bool pemReadEndedCleanly();

// Empty when `path` holds one or more PEM certificates and nothing malformed; the problem
// otherwise.
std::string pemCertificatesProblem(const std::string& path);

}  // namespace gatehouse
