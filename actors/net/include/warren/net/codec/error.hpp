// Shared vocabulary of the Warren wire codecs (warren::codec): error reasons,
// decode status, feed results and the output-buffer concept used by encoders.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace warren::net::codec {

/// Default maximum frame (payload) length for both codecs, in bytes.
inline constexpr std::size_t default_max_frame = 65536;

/// Why a decoder (or an ACK check) failed. A decoder that reports an error stays
/// failed until reset(); everything decoded before the error has been delivered.
enum class error_reason : std::uint8_t {
  none = 0,
  frame_too_large,    ///< line longer than max, or frame len field over max
  unknown_frame_type, ///< frame type byte is not 1..6
  bad_fixed_length,   ///< ACK len != 4, or PUSH_ACK/PING/PONG len != 0
  // ack_tracker / ack_checker (protocol level, not produced by decoders):
  id_not_consecutive, ///< DATA id is not previous + 1
  ack_invariant,      ///< previous_acked_id + skipped + 1 != id
  ack_beyond_sent,    ///< ACK id higher than the highest DATA id sent
  not_an_ack,         ///< frame handed to ack_checker is not an ACK
};

/// Stable snake_case name of a reason ("frame_too_large", ...).
std::string_view to_string(error_reason r) noexcept;

/// Result of one pull step of a decoder.
enum class decode_status : std::uint8_t {
  need_more, ///< input exhausted; the decoder may hold one partial frame
  frame,     ///< one frame was produced
  error,     ///< the stream is broken; see decoder.error()
};

/// Result of a feed() call.
struct feed_result {
  std::size_t frames = 0;                  ///< frames delivered by this call
  error_reason error = error_reason::none; ///< none, or why decoding stopped
  [[nodiscard]] bool ok() const noexcept { return error == error_reason::none; }
  explicit operator bool() const noexcept { return ok(); }
};

/// Anything contiguous and resizable with 1-byte elements: std::string,
/// std::vector<char>, std::vector<std::uint8_t>, std::vector<std::byte>, ...
/// Encoders append to it (they never clear it).
template <class B>
concept byte_buffer = requires(B& b, std::size_t n) {
  { b.size() } -> std::convertible_to<std::size_t>;
  b.resize(n);
  b.data();
}
&&sizeof(typename B::value_type) == 1;

namespace detail {

/// Grows `out` by n bytes and returns a pointer to the new tail.
template <byte_buffer B>
inline unsigned char* grow(B& out, std::size_t n) {
  const std::size_t old = out.size();
  out.resize(old + n);
  return reinterpret_cast<unsigned char*>(out.data()) + old;
}

inline std::string_view as_chars(const void* data, std::size_t size) noexcept {
  return {static_cast<const char*>(data), size};
}

} // namespace detail
} // namespace warren::net::codec
