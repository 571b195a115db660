#include <warren/net/tls.hpp>

#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace warren::net {

std::shared_ptr<asio::ssl::context> make_server_context(const tls_options& opts) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX* c = ctx->native_handle();
  SSL_CTX_set_min_proto_version(c, opts.min_version == tls_version::tls13 ? TLS1_3_VERSION : TLS1_2_VERSION);
  // Idle connections give their read/write buffers back: at 100k devices that is
  // most of the memory TLS would otherwise hold. The endpoint writes on a
  // non-blocking fd: partial writes, and a retry may pass the buffer at a new address.
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (!opts.session_tickets) {
    SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(c, 0);
  }
  ctx->use_certificate_chain_file(opts.cert_file);
  ctx->use_private_key_file(opts.key_file, asio::ssl::context::pem);
  if (!opts.ca_file.empty())
    ctx->load_verify_file(opts.ca_file);
  if (opts.verify_peer) {
    ctx->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
    // Required by OpenSSL for session resumption with client certificates.
    static const unsigned char sid[] = "warren";
    SSL_CTX_set_session_id_context(c, sid, sizeof(sid) - 1);
  } else {
    ctx->set_verify_mode(asio::ssl::verify_none);
  }
  return ctx;
}

std::string verified_subject(void* ssl) {
  auto* s = static_cast<SSL*>(ssl);
  X509* cert = SSL_get0_peer_certificate(s);
  if (cert == nullptr || SSL_get_verify_result(s) != X509_V_OK)
    return {};
  char buf[256] = {0};
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof(buf));
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string{};
}

} // namespace warren::net
