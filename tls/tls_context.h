// BoringSSL contexts: the server side (certificates chosen by SNI, strict ALPN, TLS 1.2+) and the
// client side used towards back-ends (CA verification of the configured name, SNI, ALPN).
#pragma once

#include <openssl/base.h>

#include <memory>
#include <string>
#include <vector>

#include "proxy/config/config.h"

namespace gatehouse {

class TicketKeys;

// Immutable after create(); shared between worker threads (SSL_new on a shared SSL_CTX is safe).
class ServerTlsContext {
 public:
  // `certificates[0]` is the default for clients that send no SNI or an unknown name.
  // `alpn` is the listener's ALPN protocol ("imap"): a client offering ALPN without it is refused
  // with a fatal no_application_protocol alert; a client offering no ALPN at all is served.
  // Sessions resume by ticket, sealed with `ticket_keys` (shared by every listener and every
  // instance that has the same key files) or, when null, with keys BoringSSL makes for this
  // context alone; a ticket only resumes on the same protocol and certificate.
  // On failure returns nullptr and sets `error` (names the file and the problem).
  static std::shared_ptr<const ServerTlsContext> create(
      const std::vector<CertificateConfig>& certificates, const std::string& alpn,
      std::shared_ptr<const TicketKeys> ticket_keys, std::string& error);

  // A fresh server-side SSL (accept state) for one connection; nullptr only if out of memory.
  // The SSL keeps the SSL_CTX (and with it the certificate table) alive on its own.
  bssl::UniquePtr<SSL> newSsl() const;

  const std::string& alpn() const { return alpn_; }

 private:
  struct PrivateTag {};  // lets create() use make_shared while others must call create()

 public:
  explicit ServerTlsContext(PrivateTag) {}

 private:
  bssl::UniquePtr<SSL_CTX> ctx_;
  std::string alpn_;
};

// Immutable after create(); one per back-end, shared between worker threads.
class ClientTlsContext {
 public:
  // Verifies the back-end's chain against `backend.ca_file` and its name (server_name, or the
  // address when empty; DNS name or IP literal) unless `backend.verify` is false. SNI is sent when
  // the name is a hostname. `alpn` lists the protocols to offer (may be empty).
  // On failure returns nullptr and sets `error`.
  static std::shared_ptr<const ClientTlsContext> create(const BackendConfig& backend,
                                                        const std::vector<std::string>& alpn,
                                                        std::string& error);

  // A fresh client-side SSL (connect state) with SNI set; nullptr only if out of memory.
  bssl::UniquePtr<SSL> newSsl() const;

  // The name that is verified and sent as SNI (if it is not an IP literal).
  const std::string& peerName() const { return peer_name_; }

 private:
  struct PrivateTag {};  // lets create() use make_shared while others must call create()

 public:
  explicit ClientTlsContext(PrivateTag) {}

 private:
  bssl::UniquePtr<SSL_CTX> ctx_;
  std::string peer_name_;
  bool peer_name_is_ip_ = false;
};

}  // namespace gatehouse
