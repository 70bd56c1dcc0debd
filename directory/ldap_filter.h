// RFC 4515 search-filter building: escaping a user-typed value so that it can only ever match
// literally, and expanding the configured filter template around it. Pure code, no libldap.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace gatehouse {

// The value with every filter metacharacter ('*', '(', ')', '\\', NUL) written as \XX (RFC 4515
// section 3). Other bytes, 8-bit ones included, stay as they are: they carry no filter meaning.
std::string escapeFilterValue(std::string_view value);

// True if `filter_template` may be used: it names the login (%u) at least once and every other
// '%' is part of "%%". `problem` says what is wrong otherwise.
bool isValidFilterTemplate(std::string_view filter_template, std::string& problem);

// The template with each %u replaced by the escaped login and each %% by '%'. nullopt if the
// template is invalid (see isValidFilterTemplate).
std::optional<std::string> expandFilter(std::string_view filter_template, std::string_view login);

}  // namespace gatehouse
