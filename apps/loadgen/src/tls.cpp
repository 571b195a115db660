#include "tls.hpp"

#include <stdexcept>

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace warren::loadgen {

namespace {
[[noreturn]] void throw_ssl(const std::string& what) {
  char buf[256] = "unknown error";
  if (unsigned long e = ERR_get_error())
    ERR_error_string_n(e, buf, sizeof buf);
  throw std::runtime_error(what + ": " + buf);
}
} // namespace

std::unique_ptr<asio::ssl::context> make_tls_context(const Options& o) {
  if (!o.tls)
    return nullptr;
  auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX* c = ctx->native_handle();

  int min = TLS1_2_VERSION, max = TLS1_3_VERSION;
  if (o.tls_version == TlsVersion::v12)
    max = TLS1_2_VERSION;
  else if (o.tls_version == TlsVersion::v13)
    min = TLS1_3_VERSION;
  if (!SSL_CTX_set_min_proto_version(c, min) || !SSL_CTX_set_max_proto_version(c, max))
    throw_ssl("TLS version");

  // Idle connections should not keep OpenSSL's 16 KiB read/write buffers around.
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
  // No resumption unless asked: every handshake is a full one (the expensive case for the server).
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  if (!o.tls_resume)
    SSL_CTX_set_options(c, SSL_OP_NO_TICKET);

  if (!o.ciphers.empty() && !SSL_CTX_set_cipher_list(c, o.ciphers.c_str()))
    throw_ssl("--ciphers");
  if (!o.ciphersuites.empty() && !SSL_CTX_set_ciphersuites(c, o.ciphersuites.c_str()))
    throw_ssl("--ciphersuites");

  if (!o.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(c, o.cert_file.c_str()) != 1)
      throw_ssl("--cert " + o.cert_file);
    if (SSL_CTX_use_PrivateKey_file(c, o.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
      throw_ssl("--key " + o.key_file);
    if (SSL_CTX_check_private_key(c) != 1)
      throw_ssl("--cert/--key do not match");
  }

  if (o.tls_verify) {
    if (SSL_CTX_load_verify_locations(c, o.ca_file.c_str(), nullptr) != 1)
      throw_ssl("--ca-file " + o.ca_file);
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
  }
  return ctx;
}

SessionCache::~SessionCache() {
  if (session_)
    SSL_SESSION_free(static_cast<SSL_SESSION*>(session_));
}

void SessionCache::put(void* ssl) {
  SSL_SESSION* s = SSL_get1_session(static_cast<SSL*>(ssl));
  if (!s)
    return;
  if (!SSL_SESSION_is_resumable(s)) {
    SSL_SESSION_free(s);
    return;
  }
  if (session_)
    SSL_SESSION_free(static_cast<SSL_SESSION*>(session_));
  session_ = s;
}

} // namespace warren::loadgen
