#include "proxy/core/base64.h"

#include <array>
#include <cstdint>

namespace gatehouse {
namespace {

constexpr std::string_view kBase64Alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr int8_t kNotBase64 = -1;

// Reverse of kBase64Alphabet; kNotBase64 for every other byte.
constexpr std::array<int8_t, 256> makeBase64Values() {
  std::array<int8_t, 256> values{};
  for (auto& value : values) value = kNotBase64;
  for (size_t i = 0; i < kBase64Alphabet.size(); ++i) {
    values[static_cast<unsigned char>(kBase64Alphabet[i])] = static_cast<int8_t>(i);
  }
  return values;
}
constexpr std::array<int8_t, 256> kBase64Values = makeBase64Values();

}  // namespace

std::string base64Encode(std::string_view data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const uint32_t group = static_cast<uint32_t>(static_cast<unsigned char>(data[i])) << 16 |
                           static_cast<uint32_t>(static_cast<unsigned char>(data[i + 1])) << 8 |
                           static_cast<unsigned char>(data[i + 2]);
    out.push_back(kBase64Alphabet[(group >> 18) & 63]);
    out.push_back(kBase64Alphabet[(group >> 12) & 63]);
    out.push_back(kBase64Alphabet[(group >> 6) & 63]);
    out.push_back(kBase64Alphabet[group & 63]);
  }
  const size_t rest = data.size() - i;
  if (rest == 0) return out;
  uint32_t group = static_cast<uint32_t>(static_cast<unsigned char>(data[i])) << 16;
  if (rest == 2) group |= static_cast<uint32_t>(static_cast<unsigned char>(data[i + 1])) << 8;
  out.push_back(kBase64Alphabet[(group >> 18) & 63]);
  out.push_back(kBase64Alphabet[(group >> 12) & 63]);
  out.push_back(rest == 2 ? kBase64Alphabet[(group >> 6) & 63] : '=');
  out.push_back('=');
  return out;
}

std::optional<std::string> base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  size_t padding = 0;
  if (!text.empty() && text.back() == '=') ++padding;
  if (text.size() >= 2 && text[text.size() - 2] == '=') ++padding;
  if (padding == 1 && text.back() != '=') return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  const size_t data_chars = text.size() - padding;
  uint32_t bits = 0;
  int bit_count = 0;
  for (size_t i = 0; i < data_chars; ++i) {
    const int8_t value = kBase64Values[static_cast<unsigned char>(text[i])];
    if (value == kNotBase64) return std::nullopt;  // also a '=' before the padding
    bits = (bits << 6) | static_cast<uint32_t>(value);
    bit_count += 6;
    if (bit_count >= 8) {
      bit_count -= 8;
      out.push_back(static_cast<char>((bits >> bit_count) & 0xff));
    }
  }
  // Padding leaves 2 or 4 bits over; a canonical encoder sets them to zero.
  if ((bits & ((1u << bit_count) - 1)) != 0) return std::nullopt;
  return out;
}

}  // namespace gatehouse
