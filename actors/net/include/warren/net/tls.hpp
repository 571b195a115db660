// TLS settings of a listener and the one shared server context built from them.
#pragma once

#include <warren/net/identity.hpp>

#include <asio/ssl/context.hpp>

#include <cstddef>
#include <memory>
#include <string>

struct x509_st; // OpenSSL's X509

namespace warren::net {

enum class tls_version : uint8_t { tls12, tls13 };

struct tls_options {
  std::string cert_file;    ///< PEM certificate (chain)
  std::string key_file;     ///< PEM private key
  std::string ca_file;      ///< PEM CAs for client certificates; with verify_peer: mTLS
  bool verify_peer = false; ///< require and verify a client certificate
  tls_version min_version = tls_version::tls12;
  bool session_tickets = false; ///< off by default: no ticket key to rotate
};

/// Builds the server context (one per listener, shared by all its connections).
/// Throws std::system_error / std::runtime_error when a file cannot be loaded.
std::shared_ptr<asio::ssl::context> make_server_context(const tls_options& opts);

/// The verified peer certificate's subject CN (UTF-8), or "" if there is no
/// certificate, it did not verify, or its subject has no usable CN (certificate_cn);
/// the last case is logged at warn with the reason and the peer (once per connection:
/// the endpoint calls it once, after the handshake). `ssl` is the connection's SSL*.
std::string verified_subject(void* ssl);

/// Longest CN verified_subject accepts, in UTF-8 bytes (identity.hpp).
constexpr std::size_t max_subject_bytes = max_identity_bytes;

/// A certificate's subject CN as verified_subject reads it.
struct subject_cn {
  std::string cn;      ///< UTF-8; empty when there is none or it is unusable
  std::string problem; ///< why the CN is unusable; empty when usable or absent
};

/// Reads the subject CN of `cert` (an X509*; nullptr: none): converted to UTF-8 from
/// any ASN.1 string type. Unusable (cn empty, problem set): more than one CN, one that
/// has no UTF-8 form, or one that is no identity (identity_problem(): empty, too long,
/// control, separator or format characters). No CN at all is not a problem.
subject_cn certificate_cn(const x509_st* cert);

} // namespace warren::net
