// Checks that a file holds PEM certificates, for files that another library loads later (libldap's
// ca_file): --check-config must catch what the first connection would otherwise find out.
#pragma once

#include <string>

namespace gatehouse {

// Empty when `path` holds one or more PEM certificates and nothing malformed; the problem
// otherwise.
std::string pemCertificatesProblem(const std::string& path);

}  // namespace gatehouse
