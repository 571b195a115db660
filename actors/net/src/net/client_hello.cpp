#include "client_hello.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <vector>

namespace warren::net::detail {

hello_progress client_hello_progress(const unsigned char* p, std::size_t n) {
  constexpr unsigned char handshake_record = 22, client_hello = 1;
  constexpr std::size_t header = 5, max_record = 16384;
  // The handshake message header (type, 24-bit length) may itself span records.
  unsigned char msg[4] = {};
  std::size_t msg_have = 0, payload = 0, need = 0; // need: 0 until the message header is known
  std::size_t off = 0;
  if (n > 0 && p[0] != handshake_record)
    return hello_progress::ready; // say, plain HTTP: the handshake fails at once
  while (n - off >= header) {
    if (p[off] != handshake_record)
      return hello_progress::ready;
    std::size_t len = (std::size_t{p[off + 3]} << 8) | p[off + 4];
    if (len == 0 || len > max_record)
      return hello_progress::ready;
    std::size_t here = len < n - off - header ? len : n - off - header; // of this record, arrived
    for (std::size_t i = 0; i < here && msg_have < 4; ++i)
      msg[msg_have++] = p[off + header + i];
    if (need == 0 && msg_have == 4) {
      if (msg[0] != client_hello)
        return hello_progress::ready;
      need = 4 + ((std::size_t{msg[1]} << 16) | (std::size_t{msg[2]} << 8) | msg[3]);
    }
    payload += here;
    if (need != 0 && payload >= need)
      return hello_progress::ready;
    if (here < len)
      break; // this record is still arriving
    off += header + len;
  }
  return n >= max_hello_peek ? hello_progress::ready : hello_progress::partial;
}

hello_progress peek_client_hello(int fd) {
  thread_local std::vector<unsigned char> buf(max_hello_peek);
  ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return hello_progress::partial;
  if (n <= 0)
    return hello_progress::ready;
  return client_hello_progress(buf.data(), static_cast<std::size_t>(n));
}

} // namespace warren::net::detail
