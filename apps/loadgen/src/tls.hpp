// The client TLS context shared (read-only) by all io threads, built from the TLS options.
#pragma once

#include <memory>

#include <asio/ssl/context.hpp>

#include "options.hpp"

namespace warren::loadgen {

// Returns nullptr when --tls is off. Throws std::runtime_error on a bad cert/key/CA/cipher setting.
std::unique_ptr<asio::ssl::context> make_tls_context(const Options& o);

// One TLS session remembered per io thread for --tls-resume (OpenSSL SSL_SESSION, reference counted).
class SessionCache {
public:
  SessionCache() = default;
  SessionCache(const SessionCache&) = delete;
  SessionCache& operator=(const SessionCache&) = delete;
  ~SessionCache();
  void* get() const { return session_; } // SSL_SESSION*
  void put(void* ssl);                   // takes SSL_get1_session(ssl) if resumable

private:
  void* session_ = nullptr;
};

} // namespace warren::loadgen
