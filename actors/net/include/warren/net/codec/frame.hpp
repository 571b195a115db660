// codec `frame`: binary frames with a 13-byte header.
//
//   type u8 | id u64 big-endian | len u32 big-endian | payload[len]
//
//   1 DATA     device -> gw  id = device message id (consecutive +1 per connection)
//   2 ACK      gw -> device  id = highest DATA id acknowledged; len = 4;
//                            payload = u32 BE "skipped": earlier DATA ids covered by
//                            this ACK that got no ACK of their own.
//                            Invariant: previous_acked_id + skipped + 1 == id
//   3 PUSH     gw -> device  id = to_device_seq (1, 2, 3, ... consecutive); payload
//   4 PUSH_ACK device -> gw  id = highest to_device_seq processed (cumulative); len 0
//   5 PING / 6 PONG          len 0, id echoed
//
// Unknown type or len > max_frame (default 65536) is an error (unknown_frame_type /
// frame_too_large), as is a wrong fixed length (bad_fixed_length). Errors are
// detected as soon as the header is complete; frames before the error are delivered.
//
// Decoding is incremental: frames that lie entirely inside the fed chunk have
// payload views into that chunk (zero copy); a frame spanning chunks is
// reassembled in an internal buffer. A payload view stays valid until the next
// feed()/next() call with a *new* chunk (or reset()/destruction), and for frames
// inside the caller's chunk as long as the caller keeps that chunk alive.
#pragma once

#include <warren/net/codec/error.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace warren::net::codec {

enum class frame_type : std::uint8_t {
  data = 1,
  ack = 2,
  push = 3,
  push_ack = 4,
  ping = 5,
  pong = 6,
};

inline constexpr std::size_t frame_header_size = 13;
inline constexpr std::size_t ack_payload_size = 4;

/// "DATA", "ACK", "PUSH", "PUSH_ACK", "PING", "PONG", or "UNKNOWN".
std::string_view to_string(frame_type t) noexcept;

[[nodiscard]] constexpr bool is_known_frame_type(std::uint8_t t) noexcept {
  return t >= 1 && t <= 6;
}

/// Required payload length of a type, or nullopt if the length is variable.
[[nodiscard]] constexpr std::optional<std::uint32_t> fixed_payload_length(frame_type t) noexcept {
  switch (t) {
    case frame_type::ack:
      return ack_payload_size;
    case frame_type::push_ack:
    case frame_type::ping:
    case frame_type::pong:
      return 0;
    default:
      return std::nullopt;
  }
}

/// A decoded frame. `payload` is a view (see the lifetime note above).
struct frame {
  frame_type type{};
  std::uint64_t id = 0;
  std::string_view payload;

  /// ACK only: the "skipped" count (payload as u32 big-endian). 0 if not an ACK.
  [[nodiscard]] std::uint32_t ack_skipped() const noexcept;
  friend bool operator==(const frame&, const frame&) = default;
};

// ---- big-endian helpers -----------------------------------------------------

namespace detail {
inline void put_u32be(unsigned char* p, std::uint32_t v) noexcept {
  p[0] = static_cast<unsigned char>(v >> 24);
  p[1] = static_cast<unsigned char>(v >> 16);
  p[2] = static_cast<unsigned char>(v >> 8);
  p[3] = static_cast<unsigned char>(v);
}
inline void put_u64be(unsigned char* p, std::uint64_t v) noexcept {
  put_u32be(p, static_cast<std::uint32_t>(v >> 32));
  put_u32be(p + 4, static_cast<std::uint32_t>(v));
}
inline std::uint32_t get_u32be(const unsigned char* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}
inline std::uint64_t get_u64be(const unsigned char* p) noexcept {
  return (std::uint64_t{get_u32be(p)} << 32) | get_u32be(p + 4);
}
} // namespace detail

// ---- decoder ----------------------------------------------------------------

class frame_decoder {
public:
  explicit frame_decoder(std::size_t max_frame = default_max_frame) noexcept : max_(max_frame) {}

  /// Pull step: consumes bytes from `in` (advancing it) until one frame is complete
  /// (returns frame, `out` set), `in` is exhausted (need_more) or the stream is
  /// broken (error). Call repeatedly with the remaining `in` to drain a chunk.
  decode_status next(std::string_view& in, frame& out);

  /// Feeds one chunk; calls on_frame(const frame&) for each complete frame.
  template <class F>
  feed_result feed(std::string_view data, F&& on_frame) {
    feed_result r;
    frame f;
    for (;;) {
      const decode_status s = next(data, f);
      if (s == decode_status::frame) {
        ++r.frames;
        on_frame(std::as_const(f));
      } else {
        r.error = error_;
        return r;
      }
    }
  }

  /// Feeds one chunk; clears `out` and fills it with the decoded frames.
  feed_result feed(std::string_view data, std::vector<frame>& out) {
    out.clear();
    return feed(data, [&out](const frame& f) { out.push_back(f); });
  }

  template <class F>
  feed_result feed(std::span<const std::byte> data, F&& on_frame) {
    return feed(detail::as_chars(data.data(), data.size()), std::forward<F>(on_frame));
  }

  [[nodiscard]] bool failed() const noexcept { return error_ != error_reason::none; }
  [[nodiscard]] error_reason error() const noexcept { return error_; }
  [[nodiscard]] std::size_t max_frame() const noexcept { return max_; }
  /// Bytes of the current partial frame (header included) held by the decoder.
  [[nodiscard]] std::size_t buffered() const noexcept { return partial_.size(); }
  void reset() noexcept;
  void shrink() noexcept;

private:
  decode_status fail(error_reason r) noexcept;
  /// Validates a complete header; fills type_/id_/len_.
  error_reason parse_header(const unsigned char* h) noexcept;

  std::size_t max_;
  error_reason error_ = error_reason::none;
  frame_type type_{};
  std::uint64_t id_ = 0;
  std::uint32_t len_ = 0;
  std::string partial_;   // unfinished frame: header bytes, then payload bytes
  std::string assembled_; // last frame reassembled across chunks (views point here)
};

// ---- encoders (append to `out`) ---------------------------------------------

/// Raw encoder: writes any type/id/payload without validation (tests, fuzzing).
template <byte_buffer B>
void encode_frame(B& out, std::uint8_t type, std::uint64_t id, std::string_view payload) {
  unsigned char* p = detail::grow(out, frame_header_size + payload.size());
  p[0] = type;
  detail::put_u64be(p + 1, id);
  detail::put_u32be(p + 9, static_cast<std::uint32_t>(payload.size()));
  if (!payload.empty())
    std::memcpy(p + frame_header_size, payload.data(), payload.size());
}

template <byte_buffer B>
void encode_frame(B& out, const frame& f) {
  encode_frame(out, static_cast<std::uint8_t>(f.type), f.id, f.payload);
}

template <byte_buffer B>
void encode_data(B& out, std::uint64_t id, std::string_view payload) {
  encode_frame(out, static_cast<std::uint8_t>(frame_type::data), id, payload);
}

template <byte_buffer B>
void encode_ack(B& out, std::uint64_t id, std::uint32_t skipped) {
  unsigned char* p = detail::grow(out, frame_header_size + ack_payload_size);
  p[0] = static_cast<unsigned char>(frame_type::ack);
  detail::put_u64be(p + 1, id);
  detail::put_u32be(p + 9, static_cast<std::uint32_t>(ack_payload_size));
  detail::put_u32be(p + frame_header_size, skipped);
}

template <byte_buffer B>
void encode_push(B& out, std::uint64_t seq, std::string_view payload) {
  encode_frame(out, static_cast<std::uint8_t>(frame_type::push), seq, payload);
}

template <byte_buffer B>
void encode_push_ack(B& out, std::uint64_t seq) {
  encode_frame(out, static_cast<std::uint8_t>(frame_type::push_ack), seq, {});
}

template <byte_buffer B>
void encode_ping(B& out, std::uint64_t id) {
  encode_frame(out, static_cast<std::uint8_t>(frame_type::ping), id, {});
}

template <byte_buffer B>
void encode_pong(B& out, std::uint64_t id) {
  encode_frame(out, static_cast<std::uint8_t>(frame_type::pong), id, {});
}

// ---- ACK bookkeeping --------------------------------------------------------

/// Contents of an ACK frame.
struct ack_info {
  std::uint64_t id = 0;      ///< highest DATA id acknowledged
  std::uint32_t skipped = 0; ///< earlier ids covered without an ACK of their own
  friend bool operator==(const ack_info&, const ack_info&) = default;
};

/// Gateway side: records accepted DATA ids (in order, consecutive) and produces
/// cumulative ACKs satisfying previous_acked_id + skipped + 1 == id.
class ack_tracker {
public:
  /// `first_id`: the id of the first DATA frame on the connection (default 1).
  explicit ack_tracker(std::uint64_t first_id = 1) noexcept
    : last_accepted_(first_id - 1), last_acked_(first_id - 1) {}

  /// Records that DATA `id` was accepted. Returns id_not_consecutive (and records
  /// nothing) unless id == last_accepted() + 1.
  error_reason accept(std::uint64_t id) noexcept;

  /// True if some accepted id has not been acknowledged yet.
  [[nodiscard]] bool pending() const noexcept { return last_accepted_ != last_acked_; }

  /// The ACK covering everything accepted so far (nullopt if nothing is pending);
  /// marks it as sent. If more than 2^32 ids are pending, the ACK covers as many as
  /// `skipped` can express and pending() stays true.
  std::optional<ack_info> take_ack() noexcept;

  /// take_ack() and, if there was one, encode it into `out`. Returns whether it did.
  template <byte_buffer B>
  bool write_ack(B& out) {
    const auto a = take_ack();
    if (a)
      encode_ack(out, a->id, a->skipped);
    return a.has_value();
  }

  [[nodiscard]] std::uint64_t last_accepted() const noexcept { return last_accepted_; }
  [[nodiscard]] std::uint64_t last_acked() const noexcept { return last_acked_; }

private:
  std::uint64_t last_accepted_;
  std::uint64_t last_acked_;
};

/// Device side: validates incoming ACKs against the invariant and the DATA sent.
class ack_checker {
public:
  explicit ack_checker(std::uint64_t first_id = 1) noexcept
    : last_sent_(first_id - 1), last_acked_(first_id - 1) {}

  /// Records that DATA `id` was sent. Returns id_not_consecutive (recording
  /// nothing) unless id == last_sent() + 1.
  error_reason sent(std::uint64_t id) noexcept;

  /// Validates one ACK: previous_acked_id + skipped + 1 == id (ack_invariant) and
  /// id <= last_sent() (ack_beyond_sent). On success the ACK becomes the previous.
  error_reason check(ack_info ack) noexcept;
  /// Same for a decoded frame (not_an_ack if it is not an ACK).
  error_reason check(const frame& f) noexcept;

  [[nodiscard]] std::uint64_t last_sent() const noexcept { return last_sent_; }
  [[nodiscard]] std::uint64_t last_acked() const noexcept { return last_acked_; }
  /// DATA sent but not yet covered by an ACK.
  [[nodiscard]] std::uint64_t unacked() const noexcept { return last_sent_ - last_acked_; }
  [[nodiscard]] std::uint64_t acks() const noexcept { return acks_; }
  [[nodiscard]] std::uint64_t skipped_total() const noexcept { return skipped_total_; }

private:
  std::uint64_t last_sent_;
  std::uint64_t last_acked_;
  std::uint64_t acks_ = 0;
  std::uint64_t skipped_total_ = 0;
};

} // namespace warren::net::codec
