#include "proxy/imap/imap_id.h"

namespace gatehouse::imap {
namespace {

constexpr size_t kMaxPairs = 30;
constexpr size_t kMaxField = 30;
constexpr size_t kMaxValue = 1024;

}  // namespace

bool isValidIdArgument(const std::vector<Token>& args) {
  if (args.size() == 1 && args[0].kind == TokenKind::Nil) return true;
  if (args.size() < 2 || args.front().kind != TokenKind::ListStart ||
      args.back().kind != TokenKind::ListEnd) {
    return false;
  }
  const size_t items = args.size() - 2;
  if (items % 2 != 0 || items / 2 > kMaxPairs) return false;
  for (size_t i = 1; i + 1 < args.size(); i += 2) {
    const Token& field = args[i];
    const Token& value = args[i + 1];
    // A field is a string (atoms allowed, as Dovecot does), never NIL.
    if (!isAstring(field) || field.kind == TokenKind::Nil || field.value.size() > kMaxField) {
      return false;
    }
    if (!isAstring(value)) return false;  // NIL included: an nstring
    if (value.value.size() > kMaxValue) return false;
  }
  return true;
}

}  // namespace gatehouse::imap
