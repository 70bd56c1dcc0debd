// How Gatehouse writes IMAP strings (quoted, literal, astring) when it replays a login to a
// back-end.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace gatehouse::imap {

// True when `value` can be sent as a quoted string: only 7-bit bytes, no NUL, CR or LF.
bool isQuotable(std::string_view value);

// "value" with \" and \\ escapes. Precondition: isQuotable(value).
std::string imapQuoted(std::string_view value);

// "{n+}\r\n<bytes>" (LITERAL+, sent in one go) or "{n}\r\n<bytes>" (synchronising: send up to
// and including the first CRLF, wait for the server's "+", then send the bytes).
std::string imapLiteral(std::string_view value, bool literal_plus);

// Any byte string as an IMAP astring: quoted when possible, otherwise a literal (8-bit, CR, LF).
// Holds NUL only if the peer accepts NUL in literals, which IMAP servers do not.
std::string imapAstring(std::string_view value, bool literal_plus);

// The append forms write into `out` without temporaries. For a secret, reserve
// astringCapacity() first: a reallocation would free a copy of it that nobody wipes.
void appendQuoted(std::string& out, std::string_view value);
void appendLiteral(std::string& out, std::string_view value, bool literal_plus);
void appendAstring(std::string& out, std::string_view value, bool literal_plus);

// The most bytes appendAstring() can add for `value`, whichever form it picks.
std::size_t astringCapacity(std::string_view value);

}  // namespace gatehouse::imap
