// A raw POSIX client socket for the tests that need what the Asio client hides:
// a socket made before the process runs out of fds, non-blocking writes until the
// kernel buffers are full (EAGAIN), a peer that never reads. Every wait has a deadline.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace net_test {

class raw_socket {
public:
  raw_socket() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {}
  ~raw_socket() { close(); }
  raw_socket(const raw_socket&) = delete;
  raw_socket& operator=(const raw_socket&) = delete;
  raw_socket(raw_socket&& x) noexcept
    : fd_(std::exchange(x.fd_, -1)), buf_(std::move(x.buf_)), closed_(x.closed_) {}

  bool valid() const { return fd_ >= 0; }
  int fd() const { return fd_; }

  /// Blocking connect to 127.0.0.1:port (needs no new fd); the socket is non-blocking afterwards.
  bool connect(uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0)
      return false;
    return ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK) == 0;
  }

  void set_sndbuf(int bytes) { ::setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes); }

  /// One non-blocking write: bytes written, 0 if the send buffer is full, -1 on error
  /// (peer closed or reset; no SIGPIPE).
  long try_write(std::string_view data) {
    auto n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n >= 0)
      return static_cast<long>(n);
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
  }

  /// POLLIN / POLLOUT readiness within the timeout (0 on timeout).
  short wait(short events, std::chrono::milliseconds timeout) {
    pollfd p{fd_, events, 0};
    int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
    return r > 0 ? p.revents : 0;
  }

  bool wait_writable(std::chrono::milliseconds timeout) {
    return (wait(POLLOUT, timeout) & (POLLOUT | POLLERR | POLLHUP)) != 0;
  }

  /// Writes all of `data`; false on error or when no progress was possible for `timeout`.
  bool write_all(std::string_view data, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    while (!data.empty()) {
      auto n = try_write(data);
      if (n < 0)
        return false;
      if (n == 0 && !wait_writable(timeout))
        return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  /// Reads what is there (waiting up to `timeout` for something): false on timeout;
  /// sets closed() on EOF or error.
  bool read_some(std::chrono::milliseconds timeout) {
    if (wait(POLLIN, timeout) == 0)
      return false;
    char tmp[65536];
    auto n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n > 0)
      buf_.append(tmp, static_cast<std::size_t>(n));
    else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
      closed_ = true;
    return true;
  }

  /// The next line (without LF), or nothing on close or timeout.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto line = take_line())
        return line;
      auto now = std::chrono::steady_clock::now();
      if (closed_ || now >= until)
        return std::nullopt;
      read_some(std::chrono::duration_cast<std::chrono::milliseconds>(until - now) +
                std::chrono::milliseconds(1));
    }
  }

  /// A complete line already read, if any.
  std::optional<std::string> take_line() {
    auto pos = buf_.find('\n');
    if (pos == std::string::npos)
      return std::nullopt;
    auto line = buf_.substr(0, pos);
    buf_.erase(0, pos + 1);
    return line;
  }

  /// True once the peer closed (within the timeout); discards what it reads.
  bool wait_closed(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (!closed_) {
      auto now = std::chrono::steady_clock::now();
      if (now >= until)
        return false;
      read_some(std::chrono::duration_cast<std::chrono::milliseconds>(until - now) +
                std::chrono::milliseconds(1));
      buf_.clear();
    }
    return true;
  }

  bool closed() const { return closed_; }

  void close() {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }

private:
  int fd_;
  std::string buf_;
  bool closed_ = false;
};

} // namespace net_test
