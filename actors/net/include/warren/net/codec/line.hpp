// codec `line`: newline-delimited text messages.
//
// device -> gateway: a message is the bytes up to LF; one trailing CR is stripped;
// empty lines are ignored. gateway -> device: payload followed by LF. A message
// longer than max_frame bytes (after stripping the CR) is a frame_too_large error.
//
// Decoding is incremental and allocation-light: bytes may arrive in any chunking,
// the decoder keeps at most one partial line, and lines that lie entirely inside
// the fed chunk are delivered as views into that chunk (zero copy). A line that
// spans chunks is reassembled in an internal buffer whose capacity is reused.
//
// View lifetime: a delivered std::string_view stays valid until the next call to
// feed()/next() with a *new* chunk (or reset()/destruction) and, for lines that lie
// inside the caller's chunk, as long as the caller keeps that chunk alive.
#pragma once

#include <warren/net/codec/error.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace warren::net::codec {

class line_decoder {
public:
  explicit line_decoder(std::size_t max_frame = default_max_frame) noexcept : max_(max_frame) {}

  /// Pull step: consumes bytes from `in` (advancing it) until one line is complete
  /// (returns frame, line set), `in` is exhausted (need_more) or the stream is
  /// broken (error). Call repeatedly with the remaining `in` to drain a chunk.
  decode_status next(std::string_view& in, std::string_view& line);

  /// Feeds one chunk; calls on_line(std::string_view) for each complete line.
  /// Lines decoded before an error are delivered; after an error nothing is.
  template <class F>
  feed_result feed(std::string_view data, F&& on_line) {
    feed_result r;
    std::string_view line;
    for (;;) {
      const decode_status s = next(data, line);
      if (s == decode_status::frame) {
        ++r.frames;
        on_line(line);
      } else {
        r.error = error_;
        return r;
      }
    }
  }

  /// Feeds one chunk; clears `out` and fills it with the decoded lines (reuse the
  /// vector across calls to avoid allocating).
  feed_result feed(std::string_view data, std::vector<std::string_view>& out) {
    out.clear();
    return feed(data, [&out](std::string_view l) { out.push_back(l); });
  }

  template <class F>
  feed_result feed(std::span<const std::byte> data, F&& on_line) {
    return feed(detail::as_chars(data.data(), data.size()), std::forward<F>(on_line));
  }

  [[nodiscard]] bool failed() const noexcept { return error_ != error_reason::none; }
  [[nodiscard]] error_reason error() const noexcept { return error_; }
  [[nodiscard]] std::size_t max_frame() const noexcept { return max_; }
  /// Bytes of the current partial line held by the decoder.
  [[nodiscard]] std::size_t buffered() const noexcept { return partial_.size(); }
  /// Back to the initial state (clears the error and any partial line).
  void reset() noexcept;
  /// Releases the internal buffers' memory (e.g. for idle connections).
  void shrink() noexcept;

private:
  decode_status fail(error_reason r) noexcept;
  /// Could a line that so far is `size` bytes ending with `last` still be valid?
  [[nodiscard]] bool partial_fits(std::size_t size, char last) const noexcept {
    return size <= max_ || (size == max_ + 1 && last == '\r');
  }

  std::size_t max_;
  error_reason error_ = error_reason::none;
  std::string partial_;   // bytes of the unfinished line (no LF yet)
  std::string assembled_; // last line reassembled across chunks (views point here)
};

/// Appends `payload` + LF to `out`. Returns false (and appends nothing) if the
/// payload contains an LF, which the line protocol cannot carry.
/// Note: line_decoder ignores empty lines and strips one trailing CR, so an empty
/// payload or one ending in CR does not survive a round trip through it.
template <byte_buffer B>
[[nodiscard]] bool encode_line(B& out, std::string_view payload) {
  if (payload.find('\n') != std::string_view::npos)
    return false;
  unsigned char* p = detail::grow(out, payload.size() + 1);
  if (!payload.empty())
    std::memcpy(p, payload.data(), payload.size());
  p[payload.size()] = '\n';
  return true;
}

} // namespace warren::net::codec
