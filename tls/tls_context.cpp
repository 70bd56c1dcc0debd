// BoringSSL contexts: the server side (certificates chosen by SNI, strict ALPN, TLS 1.2+) and the
// client side used towards back-ends (CA verification of the configured name, SNI, ALPN).
#include "tls/tls_context.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bytestring.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/pool.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

#include "tls/pem_file.h"
#include "tls/ticket_keys.h"

namespace gatehouse {
namespace {

// One certificate chain with its key, as handed to SSL_set_chain_and_key.
struct CertEntry {
  std::vector<std::string> names;  // lower case; "*.domain" entries are wildcards
  std::vector<bssl::UniquePtr<CRYPTO_BUFFER>> chain;
  std::vector<CRYPTO_BUFFER*> chain_view;  // the same buffers, in the form BoringSSL takes
  bssl::UniquePtr<EVP_PKEY> key;
  std::string session_context;  // see sessionContext()
};

// What the callbacks need. It is owned by the SSL_CTX (ex_data, freed with it), so an SSL that
// outlives its ServerTlsContext (config reload mid-handshake) still finds it.
struct ServerTable {
  std::vector<CertEntry> entries;
  std::string alpn;
  std::shared_ptr<const TicketKeys> ticket_keys;  // null: BoringSSL's own keys for this context
};

void freeServerTable(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*index*/,
                     long /*argl*/, void* /*argp*/) {
  std::unique_ptr<ServerTable> owned(static_cast<ServerTable*>(ptr));
}

int serverTableIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, freeServerTable);
  return index;
}

const ServerTable* serverTableOf(const SSL* ssl) {
  return static_cast<const ServerTable*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), serverTableIndex()));
}

std::string lowerCase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// The last queued BoringSSL error as text, for messages about configuration files.
std::string lastCryptoError() {
  uint32_t err = ERR_peek_last_error();
  ERR_clear_error();
  if (err == 0) return "unknown error";
  const char* reason = ERR_reason_error_string(err);
  return reason != nullptr ? lowerCase(reason) : "unknown error";
}

// Exact name first, then a one-label wildcard; nullptr means "keep the default certificate".
const CertEntry* selectCertificate(const ServerTable& table, std::string_view sni) {
  if (sni.empty()) return nullptr;
  if (sni.back() == '.') sni.remove_suffix(1);
  std::string name = lowerCase(sni);
  for (const CertEntry& entry : table.entries) {
    for (const std::string& candidate : entry.names) {
      if (candidate == name) return &entry;
    }
  }
  size_t dot = name.find('.');
  if (dot == std::string::npos || dot == 0) return nullptr;
  std::string_view suffix = std::string_view(name).substr(dot);  // ".domain"
  for (const CertEntry& entry : table.entries) {
    for (const std::string& candidate : entry.names) {
      if (candidate.size() > 2 && candidate.compare(0, 2, "*.") == 0 &&
          std::string_view(candidate).substr(1) == suffix) {
        return &entry;
      }
    }
  }
  return nullptr;
}

// A session resumes only where it was made: same protocol (an IMAP session is no POP3 session, the
// ALPACA class of confusion) and same certificate (BoringSSL asks servers to partition by SNI
// host).
std::string sessionContext(std::string_view alpn, size_t certificate_index) {
  return std::string(alpn) + "/" + std::to_string(certificate_index);
}

// Runs once the ClientHello (and so the SNI) has been parsed.
int selectCertificateCallback(SSL* ssl, void* /*arg*/) {
  const ServerTable* table = serverTableOf(ssl);
  if (table == nullptr) return 0;
  const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  const CertEntry* entry = selectCertificate(*table, sni != nullptr ? sni : "");
  if (entry == nullptr || entry == &table->entries.front()) return 1;  // the default is set
  const std::string& context = entry->session_context;
  return SSL_set_chain_and_key(ssl, entry->chain_view.data(), entry->chain_view.size(),
                               entry->key.get(), nullptr) &&
         SSL_set_session_id_context(ssl, reinterpret_cast<const uint8_t*>(context.data()),
                                    context.size());
}

int ticketKeyCallback(SSL* ssl, uint8_t* name, uint8_t* iv, EVP_CIPHER_CTX* cipher, HMAC_CTX* hmac,
                      int encrypt) {
  const ServerTable* table = serverTableOf(ssl);
  if (table == nullptr || !table->ticket_keys) return -1;
  return encrypt != 0 ? table->ticket_keys->seal(name, iv, cipher, hmac)
                      : table->ticket_keys->open(name, iv, cipher, hmac);
}

// Strict ALPN: a client that offers ALPN must offer ours (cross-protocol attacks such as ALPACA
// rely on a server answering a protocol it does not speak).
int selectAlpnCallback(SSL* ssl, const uint8_t** out, uint8_t* out_len, const uint8_t* in,
                       unsigned in_len, void* /*arg*/) {
  const ServerTable* table = serverTableOf(ssl);
  if (table == nullptr) return SSL_TLSEXT_ERR_ALERT_FATAL;
  CBS list;
  CBS_init(&list, in, in_len);
  while (CBS_len(&list) > 0) {
    CBS name;
    if (!CBS_get_u8_length_prefixed(&list, &name)) break;
    if (std::string_view(reinterpret_cast<const char*>(CBS_data(&name)), CBS_len(&name)) ==
        table->alpn) {
      *out = CBS_data(&name);
      *out_len = static_cast<uint8_t>(CBS_len(&name));
      return SSL_TLSEXT_ERR_OK;
    }
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;  // BoringSSL sends no_application_protocol
}

// Errors start with the JSON pointer of the file's key in the configuration (`at` is the entry's).
bool loadEntry(const CertificateConfig& config, const std::string& at, CertEntry& entry,
               std::string& error) {
  bssl::UniquePtr<BIO> cert_bio(BIO_new_file(config.cert_file.c_str(), "r"));
  if (!cert_bio) {
    error = at + "/cert: certificate file " + config.cert_file +
            ": cannot open: " + std::strerror(errno);
    ERR_clear_error();
    return false;
  }
  bssl::UniquePtr<X509> leaf;
  for (;;) {
    bssl::UniquePtr<X509> cert(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    uint8_t* der = nullptr;
    int der_len = i2d_X509(cert.get(), &der);
    if (der_len <= 0) break;
    bssl::UniquePtr<uint8_t> der_owner(der);
    bssl::UniquePtr<CRYPTO_BUFFER> buffer(
        CRYPTO_BUFFER_new(der, static_cast<size_t>(der_len), nullptr));
    if (!buffer) break;
    entry.chain_view.push_back(buffer.get());
    entry.chain.push_back(std::move(buffer));
    if (!leaf) leaf = std::move(cert);
  }
  if (!leaf || !pemReadEndedCleanly()) {
    error = at + "/cert: certificate file " + config.cert_file + ": " +
            (leaf ? "malformed PEM: " + lastCryptoError() : "no PEM certificate found");
    ERR_clear_error();
    return false;
  }
  ERR_clear_error();

  bssl::UniquePtr<BIO> key_bio(BIO_new_file(config.key_file.c_str(), "r"));
  if (!key_bio) {
    error = at + "/key: key file " + config.key_file + ": cannot open: " + std::strerror(errno);
    ERR_clear_error();
    return false;
  }
  entry.key.reset(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!entry.key) {
    error = at + "/key: key file " + config.key_file +
            ": no usable PEM private key: " + lastCryptoError();
    return false;
  }
  if (X509_check_private_key(leaf.get(), entry.key.get()) != 1) {
    error = at + "/key: key file " + config.key_file + " does not match certificate file " +
            config.cert_file;
    ERR_clear_error();
    return false;
  }
  for (const std::string& name : config.names) {
    std::string lower = lowerCase(name);
    if (!lower.empty() && lower.back() == '.') lower.pop_back();
    if (!lower.empty()) entry.names.push_back(std::move(lower));
  }
  return true;
}

}  // namespace

std::shared_ptr<const ServerTlsContext> ServerTlsContext::create(
    const std::vector<CertificateConfig>& certificates, const std::string& alpn,
    std::shared_ptr<const TicketKeys> ticket_keys, std::string& error) {
  if (certificates.empty()) {
    error = "no certificate configured";
    return nullptr;
  }
  if (alpn.size() > 255) {
    error = "ALPN name longer than 255 bytes";
    return nullptr;
  }
  auto table = std::make_unique<ServerTable>();
  table->alpn = alpn;
  table->entries.resize(certificates.size());
  for (size_t i = 0; i < certificates.size(); ++i) {
    const std::string at = "/tls/certificates/" + std::to_string(i);
    if (!loadEntry(certificates[i], at, table->entries[i], error)) return nullptr;
    table->entries[i].session_context = sessionContext(alpn, i);
  }

  // Without X509 objects: the server never verifies peers, and buffers are cheaper per SSL.
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_with_buffers_method()));
  if (!ctx || !SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION)) {
    error = "cannot create TLS context: " + lastCryptoError();
    return nullptr;
  }
  const CertEntry& fallback = table->entries.front();
  if (!SSL_CTX_set_chain_and_key(ctx.get(), fallback.chain_view.data(), fallback.chain_view.size(),
                                 fallback.key.get(), nullptr)) {
    error = "/tls/certificates/0/cert: certificate file " + certificates.front().cert_file + ": " +
            lastCryptoError();
    return nullptr;
  }
  if (table->entries.size() > 1) {
    SSL_CTX_set_cert_cb(ctx.get(), selectCertificateCallback, nullptr);
  }
  const std::string& session_context = fallback.session_context;
  // Resumption is by ticket only: the stateful cache would hold memory per client and resume
  // nothing on the pool's other instances.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  if (!SSL_CTX_set_session_id_context(ctx.get(),
                                      reinterpret_cast<const uint8_t*>(session_context.data()),
                                      session_context.size())) {
    error = "cannot create TLS context: " + lastCryptoError();
    return nullptr;
  }
  if (ticket_keys) {
    table->ticket_keys = std::move(ticket_keys);
    SSL_CTX_set_tlsext_ticket_key_cb(ctx.get(), ticketKeyCallback);
  }
  if (!alpn.empty()) SSL_CTX_set_alpn_select_cb(ctx.get(), selectAlpnCallback, nullptr);
  if (!SSL_CTX_set_ex_data(ctx.get(), serverTableIndex(), table.get())) {
    error = "cannot create TLS context: " + lastCryptoError();
    return nullptr;
  }
  table.release();  // now owned by ctx (freeServerTable)

  auto context = std::make_shared<ServerTlsContext>(PrivateTag{});
  context->ctx_ = std::move(ctx);
  context->alpn_ = alpn;
  return context;
}

bssl::UniquePtr<SSL> ServerTlsContext::newSsl() const {
  bssl::UniquePtr<SSL> ssl(SSL_new(ctx_.get()));
  if (ssl) SSL_set_accept_state(ssl.get());
  return ssl;
}

std::shared_ptr<const ClientTlsContext> ClientTlsContext::create(
    const BackendConfig& backend, const std::vector<std::string>& alpn, std::string& error) {
  std::string peer_name = backend.server_name.empty() ? backend.address : backend.server_name;
  in6_addr scratch;
  bool is_ip = inet_pton(AF_INET, peer_name.c_str(), &scratch) == 1 ||
               inet_pton(AF_INET6, peer_name.c_str(), &scratch) == 1;

  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  if (!ctx || !SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION)) {
    error = "cannot create TLS context: " + lastCryptoError();
    return nullptr;
  }
  if (backend.verify) {
    if (backend.ca_file.empty()) {
      error = "certificate verification is on but no ca_file is set";
      return nullptr;
    }
    if (peer_name.empty()) {
      error = "certificate verification needs server_name or address";
      return nullptr;
    }
    if (!SSL_CTX_load_verify_locations(ctx.get(), backend.ca_file.c_str(), nullptr)) {
      error = "ca_file " + backend.ca_file + ": " + lastCryptoError();
      return nullptr;
    }
    X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx.get());
    int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, peer_name.c_str())
                   : X509_VERIFY_PARAM_set1_host(param, peer_name.data(), peer_name.size());
    if (!ok) {
      error = "cannot verify against name " + peer_name;
      ERR_clear_error();
      return nullptr;
    }
    // Names from subjectAltName only (RFC 9525 6.3), never the subject's CN.
    X509_VERIFY_PARAM_set_hostflags(
        param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  }
  if (!alpn.empty()) {
    std::string wire;
    for (const std::string& name : alpn) {
      if (name.empty() || name.size() > 255) {
        error = "invalid ALPN name";
        return nullptr;
      }
      wire.push_back(static_cast<char>(name.size()));
      wire += name;
    }
    // Unlike most of BoringSSL, this returns zero on success.
    if (SSL_CTX_set_alpn_protos(ctx.get(), reinterpret_cast<const uint8_t*>(wire.data()),
                                wire.size()) != 0) {
      error = "cannot set ALPN: " + lastCryptoError();
      return nullptr;
    }
  }

  auto context = std::make_shared<ClientTlsContext>(PrivateTag{});
  context->ctx_ = std::move(ctx);
  context->peer_name_ = std::move(peer_name);
  context->peer_name_is_ip_ = is_ip;
  return context;
}

bssl::UniquePtr<SSL> ClientTlsContext::newSsl() const {
  bssl::UniquePtr<SSL> ssl(SSL_new(ctx_.get()));
  if (!ssl) return nullptr;
  SSL_set_connect_state(ssl.get());
  if (!peer_name_is_ip_ && !peer_name_.empty() &&
      !SSL_set_tlsext_host_name(ssl.get(), peer_name_.c_str())) {
    return nullptr;
  }
  return ssl;
}

}  // namespace gatehouse
