#include "tls/pem_file.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>

namespace gatehouse {

bool pemReadEndedCleanly() {
  const uint32_t err = ERR_peek_last_error();
  return err == 0 ||
         (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE);
}

std::string pemCertificatesProblem(const std::string& path) {
  bssl::UniquePtr<BIO> bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) {
    ERR_clear_error();
    return std::string("cannot open: ") + std::strerror(errno);
  }
  size_t count = 0;
  while (bssl::UniquePtr<X509>(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr))) ++count;
  const bool clean_end = pemReadEndedCleanly();
  ERR_clear_error();
  if (count == 0) return "no PEM certificate found";
  return clean_end ? "" : "malformed PEM";
}

}  // namespace gatehouse
