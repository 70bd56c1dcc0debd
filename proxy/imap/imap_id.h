// The arguments of the IMAP ID command (RFC 2971), checked before Gatehouse answers it itself.
#pragma once

#include <vector>

#include "proxy/imap/imap_parser.h"

namespace gatehouse::imap {

// NIL, or one flat list of field/value pairs: a field is a string, a value a string or NIL; at
// most 30 pairs, fields of at most 30 octets, values of at most 1024 (RFC 2971 section 3.3).
// Atoms pass as strings, as Dovecot takes them and some clients send them unquoted.
bool isValidIdArgument(const std::vector<Token>& args);

}  // namespace gatehouse::imap
