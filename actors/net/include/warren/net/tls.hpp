// TLS settings of a listener and the one shared server context built from them.
#pragma once

#include <asio/ssl/context.hpp>

#include <memory>
#include <string>

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

/// The verified peer certificate's subject CN, or "" if there is none or it did not
/// verify. `ssl` is the connection's SSL*.
std::string verified_subject(void* ssl);

} // namespace warren::net
