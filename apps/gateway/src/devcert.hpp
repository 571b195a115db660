// The development certificate: a self-signed ECDSA P-256 certificate for
// CN=localhost (SAN localhost, 127.0.0.1, ::1), made with OpenSSL 3 the first time
// the gateway runs without a configured certificate, and reused afterwards.
#pragma once

#include <filesystem>
#include <string>

namespace warren::gateway {

struct dev_cert {
  std::string cert_file; ///< PEM; also the file to trust (openssl s_client -CAfile)
  std::string key_file;  ///< PEM, mode 0600
  bool created = false;  ///< false: an existing pair was reused
};

/// Makes (or reuses) `dir`/dev-cert.pem and dev-key.pem. Throws std::runtime_error.
dev_cert ensure_dev_cert(const std::filesystem::path& dir);

} // namespace warren::gateway
