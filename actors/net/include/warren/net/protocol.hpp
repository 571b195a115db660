// The pluggable per-connection protocol (Ranch's protocol module): the user's code
// that runs inside a connection's endpoint actor, on its thread, one call at a time.
#pragma once

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/message.hpp>
#include <caf/timespan.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace warren::net {

struct connection_info {
  uint64_t id = 0;  ///< unique per listener
  std::string peer; ///< "address:port"
  bool tls = false;
  std::string tls_version;      ///< "TLSv1.3", ... (empty for plain TCP)
  std::string verified_subject; ///< client certificate CN under mTLS, else empty
};

/// What a protocol may do with its connection.
class connection_context {
public:
  virtual ~connection_context() = default;
  /// Queues one frame (encoded by the listener's codec). False if the frame cannot be
  /// encoded (a line containing LF) or the connection is closing. May close the
  /// connection with reason overflow when the outbound queue passes its high watermark.
  virtual bool send(std::string_view frame) = 0;
  /// Closes after the queued output is written. An empty reason is a normal exit.
  virtual void close(caf::error reason = {}) = 0;
  virtual const connection_info& info() const = 0;
  /// Calls protocol::on_timer(ctx, id) once after `delay` (unless closed first).
  virtual void start_timer(uint64_t id, caf::timespan delay) = 0;
  /// Sequence numbers: frames received from / sent to the device so far.
  virtual uint64_t frames_in() const = 0;
  virtual uint64_t frames_out() const = 0;
  /// The endpoint actor (for registering the connection with other actors).
  virtual caf::actor self() const = 0;
};

class protocol {
public:
  virtual ~protocol() = default;
  /// After the TLS handshake (or at once for plain TCP), before the first read.
  virtual void on_connect(connection_context&) {}
  /// One read's worth of frames. Views are valid during the call only. The next read
  /// starts when this returns (active-once): a slow protocol slows the peer down.
  virtual void on_frames(connection_context& ctx, std::span<const std::string_view> frames) = 0;
  virtual void on_timer(connection_context&, uint64_t) {}
  /// Any other message sent to the endpoint actor (ctx.self()), e.g. a command for
  /// the device from another actor. Return false if not understood: the message is
  /// dropped (a request gets unexpected_message).
  virtual bool on_message(connection_context&, caf::message&) { return false; }
  /// Last call, whatever ended the connection (not called if on_connect never was).
  virtual void on_close(const caf::error&) {}
};

using protocol_factory = std::function<std::unique_ptr<protocol>()>;

} // namespace warren::net
