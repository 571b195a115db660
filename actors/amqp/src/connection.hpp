// Internal: one blocking librabbitmq connection with one channel, the topology both
// sides declare, a wake-up eventfd for the owning thread, and reconnect backoff.
#pragma once

#include <warren/amqp/amqp.hpp>

#include <amqp.h>
#include <amqp_framing.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace warren::amqp::detail {

constexpr amqp_channel_t channel_no = 1;

/// A string view over amqp_bytes_t.
inline std::string_view view(amqp_bytes_t b) {
  return {static_cast<const char*>(b.bytes), b.len};
}

/// amqp_bytes_t over a string (no copy; the string must outlive the call).
inline amqp_bytes_t bytes(std::string_view s) {
  amqp_bytes_t b;
  b.len = s.size();
  b.bytes = const_cast<char*>(s.data());
  return b;
}

/// Describes a librabbitmq status code or RPC reply.
std::string describe_status(int status);
std::string describe_reply(const amqp_rpc_reply_t& r, std::string_view what);

/// An eventfd the owning actor writes to wake the connection thread.
class waker {
public:
  waker();
  ~waker();
  waker(const waker&) = delete;
  waker& operator=(const waker&) = delete;
  void wake() noexcept;
  void drain() noexcept;
  int fd() const noexcept { return fd_; }

private:
  int fd_ = -1;
};

/// Exponential backoff between connection attempts.
class backoff {
public:
  backoff(caf::timespan initial, caf::timespan max) : initial_(initial), max_(max), next_(initial) {}
  caf::timespan next() {
    auto d = next_;
    next_ = std::min(max_, next_ * 2);
    return d;
  }
  void reset() { next_ = initial_; }

private:
  caf::timespan initial_, max_, next_;
};

/// One AMQP connection with channel 1 open.
class connection {
public:
  connection() = default;
  ~connection() { destroy(); }
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  /// Connects, logs in and opens channel 1. Empty string on success, else why not.
  std::string open(const options& opts);

  /// Declares the device->backend side: exchange, and the from-device queue + binding.
  std::string declare_from_device(const options& opts);
  /// Declares the backend->device side: dead-letter exchange + queue, to-device queue.
  std::string declare_to_device(const options& opts);

  /// Graceful close (channel, connection) bounded by the RPC timeout, then destroy.
  void close();
  /// Drops the connection without a handshake (socket closed).
  void destroy() noexcept;

  bool is_open() const noexcept { return state_ != nullptr; }
  amqp_connection_state_t get() const noexcept { return state_; }
  int fd() const noexcept;
  /// True when librabbitmq holds undecoded bytes or queued frames.
  bool has_buffered() const noexcept;

  /// Handles a method frame that is not a delivery/confirm: connection.close and
  /// channel.close are answered and reported as an error text; anything else is
  /// ignored (empty result).
  std::string handle_method(const amqp_frame_t& frame);

private:
  std::string check(std::string_view what);
  amqp_connection_state_t state_ = nullptr;
};

} // namespace warren::amqp::detail
