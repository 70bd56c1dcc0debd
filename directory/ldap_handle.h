// Owners for libldap's objects: a handle is unbound (socket closed) and a message chain freed when
// its owner goes, so no early return or exception path leaks either.
#pragma once

#include <ldap.h>

#include <memory>
#include <string>

namespace gatehouse {

struct LdapUnbind {
  void operator()(LDAP* ld) const { ldap_unbind_ext(ld, nullptr, nullptr); }
};
using LdapPtr = std::unique_ptr<LDAP, LdapUnbind>;

struct LdapMessageFree {
  void operator()(LDAPMessage* message) const { ldap_msgfree(message); }
};
using LdapMessagePtr = std::unique_ptr<LDAPMessage, LdapMessageFree>;

// "invalidCredentials (49)": the text libldap has for a result code, with the number for grep.
inline std::string ldapErrorText(int code) {
  return std::string(ldap_err2string(code)) + " (" + std::to_string(code) + ")";
}

}  // namespace gatehouse
