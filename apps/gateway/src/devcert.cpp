#include "devcert.hpp"

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <sys/stat.h>

namespace warren::gateway {

namespace {

template <class T, void (*Free)(T*)>
struct deleter {
  void operator()(T* p) const noexcept { Free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, deleter<EVP_PKEY, EVP_PKEY_free>>;
using x509_ptr = std::unique_ptr<X509, deleter<X509, X509_free>>;

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error("development certificate: " + what);
}

void add_ext(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext)
    fail("bad extension " + std::string{value});
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

void write_pem(const std::filesystem::path& path, mode_t mode, auto&& writer) {
  auto tmp = path;
  tmp += ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f)
    fail("cannot write " + tmp.string());
  ::chmod(tmp.c_str(), mode);
  bool ok = writer(f) == 1;
  ok = std::fclose(f) == 0 && ok;
  if (!ok)
    fail("cannot write " + tmp.string());
  std::filesystem::rename(tmp, path);
}

} // namespace

dev_cert ensure_dev_cert(const std::filesystem::path& dir) {
  dev_cert out;
  auto cert_path = dir / "dev-cert.pem";
  auto key_path = dir / "dev-key.pem";
  out.cert_file = cert_path.string();
  out.key_file = key_path.string();
  if (std::filesystem::exists(cert_path) && std::filesystem::exists(key_path))
    return out;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    fail("cannot create " + dir.string() + ": " + ec.message());
  pkey_ptr key{EVP_EC_gen("P-256")};
  if (!key)
    fail("EC key generation failed");
  x509_ptr cert{X509_new()};
  X509_set_version(cert.get(), 2); // v3
  unsigned char serial[16];
  RAND_bytes(serial, sizeof(serial));
  serial[0] &= 0x7F;
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 365L * 24 * 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Warren development"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"),
                             -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  // As `openssl req -x509`: a self-signed certificate usable as its own trust anchor.
  add_ext(cert.get(), NID_basic_constraints, "critical,CA:TRUE");
  add_ext(cert.get(), NID_key_usage, "critical,digitalSignature,keyCertSign");
  add_ext(cert.get(), NID_ext_key_usage, "serverAuth");
  add_ext(cert.get(), NID_subject_key_identifier, "hash");
  add_ext(cert.get(), NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1");
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0)
    fail("signing failed");
  write_pem(key_path, 0600, [&](std::FILE* f) {
    return PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  });
  write_pem(cert_path, 0644, [&](std::FILE* f) { return PEM_write_X509(f, cert.get()); });
  out.created = true;
  return out;
}

} // namespace warren::gateway
