#include <warren/net/tls.hpp>

#include <warren/log.hpp>
#include <warren/net/identity.hpp>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdio>

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

subject_cn certificate_cn(const x509_st* cert) {
  subject_cn r;
  if (cert == nullptr)
    return r;
  const X509_NAME* name = X509_get_subject_name(cert);
  int at = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (at < 0)
    return r; // no CN: no subject, nothing wrong with that
  if (int next = X509_NAME_get_index_by_NID(name, NID_commonName, at); next >= 0) {
    r.problem = "more than one CN";
    return r;
  }
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, at));
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, data); // any string type; fails on invalid encodings
  if (n < 0) {
    r.problem = "CN is not a valid string (no UTF-8 form)";
    return r;
  }
  std::string cn(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(n));
  OPENSSL_free(utf8);
  // ASN1_STRING_to_UTF8 made valid UTF-8; the rest is what any identity must be.
  if (auto problem = identity_problem(cn); !problem.empty()) {
    r.problem = "CN " + problem;
    return r;
  }
  r.cn = std::move(cn);
  return r;
}

namespace {

/// The CN as it may appear in a log line: printable ASCII kept, everything else \xNN,
/// at most 64 bytes of it.
std::string escaped_cn(const x509_st* cert) {
  const X509_NAME* name = X509_get_subject_name(cert);
  int at = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (at < 0)
    return {};
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, at));
  const unsigned char* p = ASN1_STRING_get0_data(data);
  auto len = static_cast<std::size_t>(ASN1_STRING_length(data));
  std::string out;
  for (std::size_t i = 0; i < len && i < 64; ++i) {
    if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\') {
      out += static_cast<char>(p[i]);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02x", p[i]);
      out += hex;
    }
  }
  if (len > 64)
    out += "...";
  return out;
}

std::string peer_of(SSL* s) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  int fd = SSL_get_fd(s);
  if (fd < 0 || getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return "?";
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
    port = ntohs(a->sin6_port);
  }
  return std::string{host} + ":" + std::to_string(port);
}

} // namespace

std::string verified_subject(void* ssl) {
  auto* s = static_cast<SSL*>(ssl);
  X509* cert = SSL_get0_peer_certificate(s);
  if (cert == nullptr || SSL_get_verify_result(s) != X509_V_OK)
    return {};
  auto r = certificate_cn(cert);
  // Called once per connection, when its handshake completed: one line per connection.
  if (!r.problem.empty())
    log().warn("TLS peer {}: verified client certificate has no usable subject: {} (CN \"{}\"); the "
               "connection has no verified subject",
               peer_of(s), r.problem, escaped_cn(cert));
  return std::move(r.cn);
}

} // namespace warren::net
