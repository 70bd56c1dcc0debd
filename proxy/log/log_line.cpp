#include "proxy/log/log_line.h"

#include <charconv>

namespace gatehouse::log {
namespace {

// Length of the valid UTF-8 sequence at the start of `s`, or 0 (RFC 3629: no overlong forms,
// no surrogates, nothing above U+10FFFF).
size_t validUtf8Length(std::string_view s) {
  auto byte = [&s](size_t i) { return static_cast<unsigned char>(s[i]); };
  unsigned char b0 = byte(0);
  size_t length = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : 2;
  if (b0 < 0xC2 || b0 > 0xF4 || s.size() < length) return 0;
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return 0;
  }
  unsigned char b1 = byte(1);
  if (b0 == 0xE0 && b1 < 0xA0) return 0;  // overlong
  if (b0 == 0xED && b1 > 0x9F) return 0;  // surrogate
  if (b0 == 0xF0 && b1 < 0x90) return 0;  // overlong
  if (b0 == 0xF4 && b1 > 0x8F) return 0;  // above U+10FFFF
  return length;
}

template <typename T>
void appendNumber(std::string& out, T value) {
  char buf[24];
  auto result = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, result.ptr);
}

}  // namespace

const char* levelName(Level level) {
  switch (level) {
    case Level::Debug:
      return "debug";
    case Level::Info:
      return "info";
    case Level::Warn:
      return "warn";
    case Level::Error:
      return "error";
  }
  return "info";
}

void appendJsonString(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  size_t i = 0;
  while (i < text.size()) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      size_t n = validUtf8Length(text.substr(i));
      if (n == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(text.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xF]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  out.push_back('"');
}

void Field::appendTo(std::string& out) const {
  if (kind_ == Kind::Omitted) return;
  out.push_back(',');
  appendJsonString(out, key_);
  out.push_back(':');
  switch (kind_) {
    case Kind::Text:
      appendJsonString(out, text_);
      break;
    case Kind::Bool:
      out += boolean_ ? "true" : "false";
      break;
    case Kind::Signed:
      appendNumber(out, signed_);
      break;
    case Kind::Unsigned:
      appendNumber(out, unsigned_);
      break;
    case Kind::Omitted:
      break;
  }
}

std::string formatLine(std::string_view timestamp, Level level, std::string_view msg,
                       const Field* begin, const Field* end) {
  std::string out;
  out.reserve(256);
  out += "{\"ts\":";
  appendJsonString(out, timestamp);
  out += ",\"level\":\"";
  out += levelName(level);
  out += "\",\"msg\":";
  appendJsonString(out, msg);
  for (const Field* f = begin; f != end; ++f) f->appendTo(out);
  out += "}\n";
  return out;
}

}  // namespace gatehouse::log
