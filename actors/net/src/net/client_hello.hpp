// Internal: how far a TLS ClientHello has arrived, judged from the bytes a connection
// received so far (peeked, not read: OpenSSL reads them afterwards). The listener
// counts a handshake against max_handshakes only once its ClientHello is whole.
#pragma once

#include <cstddef>

namespace warren::net::detail {

enum class hello_progress {
  partial, ///< a ClientHello on its way: wait for more bytes
  ready    ///< hand the bytes to the handshake
};

/// Largest ClientHello waited for: two full records (real ones take a few hundred bytes,
/// about 2 KiB with post-quantum key shares). A larger one is handed on as it is.
constexpr std::size_t max_hello_peek = 2 * (5 + 16384);

/// `ready` once `p[0..n)` holds a whole ClientHello (in one or more handshake records);
/// also at once for what is no ClientHello (another record type, a record length over
/// 2^14, another handshake message) and when `n` reached max_hello_peek: the handshake
/// then fails, or goes on, as it would have. `partial`: more is to come.
hello_progress client_hello_progress(const unsigned char* p, std::size_t n);

/// Peeks at what socket `fd` has received (MSG_PEEK, non-blocking). Nothing yet is
/// `partial`; EOF and errors are `ready` (the handshake reports them).
hello_progress peek_client_hello(int fd);

} // namespace warren::net::detail
