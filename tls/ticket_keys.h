// Session ticket keys read from files, so that every Gatehouse of a pool behind a load balancer
// (and the next one after a restart) resumes the TLS sessions the others sealed. The file format is
// nginx's ssl_session_ticket_key, so keys can be shared with nginx too:
//   80 bytes: key name (16), HMAC-SHA256 key (32), AES-256-CBC key (32);
//   48 bytes: key name (16), AES-128-CBC key (16), HMAC-SHA256 key (16).
// The first key seals new tickets; every key opens them, so a rotation is: add the new key first,
// keep the old one second until its tickets have expired, then drop it.
#pragma once

#include <openssl/base.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/core/secret.h"

namespace gatehouse {

class TicketKeys {
 public:
  static constexpr size_t kNameSize = 16;
  static constexpr size_t kMaxFileSize = 80;

  // Empty if `file` (a key file's content) is a usable key; otherwise why not.
  static std::string problemWith(std::string_view file);
  // The name a ticket carries in clear to say which key sealed it.
  static std::string_view nameOf(std::string_view file) { return file.substr(0, kNameSize); }

  // `files` have all passed problemWith(); there is at least one.
  explicit TicketKeys(const std::vector<Secret>& files);
  ~TicketKeys();
  TicketKeys(const TicketKeys&) = delete;
  TicketKeys& operator=(const TicketKeys&) = delete;

  // The two halves of BoringSSL's SSL_CTX_set_tlsext_ticket_key_cb. seal: sets the name and a
  // fresh IV, keys both contexts; 1, or -1 on failure. open: 0 for a key we do not have (a full
  // handshake follows), 1 when opened with the current key, 2 with an older one (issue a new
  // ticket), -1 on failure.
  int seal(uint8_t* name, uint8_t* iv, EVP_CIPHER_CTX* cipher, HMAC_CTX* hmac) const;
  int open(const uint8_t* name, const uint8_t* iv, EVP_CIPHER_CTX* cipher, HMAC_CTX* hmac) const;

 private:
  struct Key {
    std::array<uint8_t, kNameSize> name{};
    std::array<uint8_t, 32> hmac_key{};
    std::array<uint8_t, 32> aes_key{};
    size_t key_size = 0;  // of both keys: 16 (48-byte file) or 32 (80-byte file)
  };
  std::vector<Key> keys_;
};

}  // namespace gatehouse
