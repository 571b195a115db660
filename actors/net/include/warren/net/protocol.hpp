// The pluggable per-connection protocol (Ranch's protocol module): the user's code
// that runs inside a connection's endpoint actor, on its thread, one call at a time.
#pragma once

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/message.hpp>
#include <caf/response_promise.hpp>
#include <caf/timespan.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace warren::net {

/// The listener's wire codec (listener_options::codec).
///   line:  LF-terminated text messages (codec/line.hpp)
///   frame: 13-byte-header binary frames with DATA/ACK/PUSH/PUSH_ACK/PING/PONG
///          (codec/frame.hpp); the endpoint answers PING, tracks PUSH_ACK and sends
///          batched ACKs, the protocol sees DATA payloads.
enum class codec_kind : uint8_t { line, frame };

struct connection_info {
  uint64_t id = 0;  ///< unique per listener
  std::string peer; ///< "address:port"
  bool tls = false;
  std::string tls_version;      ///< "TLSv1.3", ... (empty for plain TCP)
  std::string verified_subject; ///< client certificate CN under mTLS, else empty
};

/// What a protocol may do with its connection.
///
/// Sequence numbers: "from-device seq" n is the n-th message delivered to on_frames
/// (1-based; frames_in() is the latest). "to-device seq" n is the n-th message queued
/// with send() (frames_out() is the latest); codec frame uses it as the PUSH id.
class connection_context {
public:
  virtual ~connection_context() = default;
  /// Queues one message. codec line: payload + LF; codec frame: a PUSH frame with id
  /// frames_out() + 1. False if it cannot be encoded (a line containing LF, a payload
  /// over max_frame: the device's decoder would refuse it) or the connection is closing. May close the
  /// connection with reason overflow when the outbound queue passes its high watermark.
  virtual bool send(std::string_view frame) = 0;
  /// True once the connection is closing or closed: send() refuses everything from
  /// then on. A refusal while this is false means that message cannot be encoded.
  virtual bool closing() const { return false; }
  /// Closes after the queued output is written (and, over TLS, a close_notify). An
  /// empty reason is a normal exit.
  virtual void close(caf::error reason = {}) = 0;
  /// Valid, and unchanged, from on_connect until the protocol is destroyed: a protocol
  /// may keep a pointer to it.
  virtual const connection_info& info() const = 0;
  /// Calls protocol::on_timer(ctx, id) once after `delay` (unless closed first).
  virtual void start_timer(uint64_t id, caf::timespan delay) = 0;
  /// Sequence numbers: messages received from / sent to the device so far (codec
  /// frame: DATA frames in, PUSH frames out; ACK/PING/PONG/PUSH_ACK do not count).
  virtual uint64_t frames_in() const = 0;
  virtual uint64_t frames_out() const = 0;
  /// The endpoint actor (for registering the connection with other actors).
  virtual caf::actor self() const = 0;

  /// The listener's codec.
  virtual codec_kind codec() const { return codec_kind::line; }
  /// Cumulative: the messages up to from-device seq `seq` were accepted (e.g. by the
  /// backend). codec frame: sends one ACK for them, batched (at most one ACK per
  /// listener_options::ack_interval); a seq above frames_in() counts as frames_in(),
  /// an old one is ignored. With listener_options::auto_ack (the default) the endpoint
  /// calls this itself after each on_frames. codec line: nothing goes on the wire.
  /// Either codec: once the peer's input ended (EOF, a frame error), a connection
  /// with auto_ack off stays up until everything received was acked here, at most
  /// listener_options::close_timeout, so that the replies and ACKs still leave.
  virtual void ack(uint64_t /*seq*/) {}
  /// codec frame: the device's DATA id of from-device seq `seq` (1..frames_in());
  /// ids on a connection are consecutive, so this is first_id + seq - 1. 0 before
  /// the first DATA. codec line: `seq`.
  virtual uint64_t message_id(uint64_t seq) const { return seq; }
  /// codec frame: the highest to-device seq (PUSH id) the device acknowledged with a
  /// PUSH_ACK (cumulative). codec line: 0.
  virtual uint64_t push_acked() const { return 0; }

  /// Read hold, driven by the protocol (e.g. while too many device messages wait for
  /// a backend): no new read is started until resume_reading(). Active-once, so at
  /// most the one read in flight completes and is delivered to on_frames; after that
  /// the peer fills its TCP window. Idempotent, not counted: one resume_reading() ends
  /// any number of pause_reading() calls. Independent from the outbound-overflow pause
  /// (overflow_policy::pause_reading): reading resumes only when neither holds it,
  /// when the current callback returns. While held, idle_timeout does not close the
  /// connection (the silence is ours). Closing works as usual. The defaults do nothing.
  virtual void pause_reading() {}
  virtual void resume_reading() {}

  /// During on_message only, for a request (`request(ctx.self(), ...)`): a promise for
  /// its response, to deliver now or later (from another callback or actor); the
  /// endpoint then sends no reply of its own, so on_message should return true.
  /// Otherwise (an asynchronous message, outside on_message, a second call for the
  /// same request, the default implementation) an invalid promise: `pending()` is
  /// false.
  virtual caf::response_promise make_response_promise() { return {}; }
};

class protocol {
public:
  virtual ~protocol() = default;
  /// After the TLS handshake (or at once for plain TCP), before the first read.
  virtual void on_connect(connection_context&) {}
  /// One read's worth of messages (codec frame: DATA payloads). Views are valid during
  /// the call only. The next read starts when this returns (active-once): a slow
  /// protocol slows the peer down.
  virtual void on_frames(connection_context& ctx, std::span<const std::string_view> frames) = 0;
  /// codec frame: the device acknowledged the PUSH frames up to to-device seq `seq`
  /// (cumulative; called once per read when it advanced, after that read's on_frames).
  virtual void on_push_ack(connection_context&, uint64_t /*seq*/) {}
  virtual void on_timer(connection_context&, uint64_t) {}
  /// Any other message sent to the endpoint actor (ctx.self()), e.g. a command for
  /// the device from another actor. Return false if not understood: the message is
  /// dropped (a request gets unexpected_message). A request that returns true gets an
  /// empty reply at once, unless the protocol took ctx.make_response_promise().
  virtual bool on_message(connection_context&, caf::message&) { return false; }
  /// Last call, whatever ended the connection (not called if on_connect never was).
  virtual void on_close(const caf::error&) {}
};

using protocol_factory = std::function<std::unique_ptr<protocol>()>;

} // namespace warren::net
