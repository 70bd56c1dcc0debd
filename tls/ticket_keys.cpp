#include "tls/ticket_keys.h"

#include <openssl/cipher.h>
#include <openssl/digest.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>

namespace gatehouse {
namespace {

const EVP_CIPHER* cipherFor(size_t key_size) {
  return key_size == 32 ? EVP_aes_256_cbc() : EVP_aes_128_cbc();
}

}  // namespace

std::string TicketKeys::problemWith(std::string_view file) {
  if (file.size() == 48 || file.size() == 80) return {};
  return "a session ticket key file holds 48 or 80 random bytes (openssl rand 80 > FILE), not " +
         std::to_string(file.size());
}

TicketKeys::TicketKeys(const std::vector<Secret>& files) {
  keys_.reserve(files.size());
  for (const Secret& file : files) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(file.reveal().data());
    Key& key = keys_.emplace_back();
    std::memcpy(key.name.data(), bytes, kNameSize);
    if (file.size() == 80) {
      key.key_size = 32;
      std::memcpy(key.hmac_key.data(), bytes + 16, 32);
      std::memcpy(key.aes_key.data(), bytes + 48, 32);
    } else {
      key.key_size = 16;
      std::memcpy(key.aes_key.data(), bytes + 16, 16);
      std::memcpy(key.hmac_key.data(), bytes + 32, 16);
    }
  }
}

TicketKeys::~TicketKeys() {
  if (!keys_.empty()) OPENSSL_cleanse(keys_.data(), keys_.size() * sizeof(Key));
}

int TicketKeys::seal(uint8_t* name, uint8_t* iv, EVP_CIPHER_CTX* cipher, HMAC_CTX* hmac) const {
  const Key& key = keys_.front();
  const EVP_CIPHER* aes = cipherFor(key.key_size);
  if (!RAND_bytes(iv, EVP_CIPHER_iv_length(aes)) ||
      !EVP_EncryptInit_ex(cipher, aes, nullptr, key.aes_key.data(), iv) ||
      !HMAC_Init_ex(hmac, key.hmac_key.data(), key.key_size, EVP_sha256(), nullptr)) {
    return -1;
  }
  std::memcpy(name, key.name.data(), kNameSize);
  return 1;
}

int TicketKeys::open(const uint8_t* name, const uint8_t* iv, EVP_CIPHER_CTX* cipher,
                     HMAC_CTX* hmac) const {
  auto key = std::find_if(keys_.begin(), keys_.end(), [name](const Key& k) {
    return std::memcmp(k.name.data(), name, kNameSize) == 0;
  });
  if (key == keys_.end()) return 0;
  if (!HMAC_Init_ex(hmac, key->hmac_key.data(), key->key_size, EVP_sha256(), nullptr) ||
      !EVP_DecryptInit_ex(cipher, cipherFor(key->key_size), nullptr, key->aes_key.data(), iv)) {
    return -1;
  }
  return key == keys_.begin() ? 1 : 2;
}

}  // namespace gatehouse
