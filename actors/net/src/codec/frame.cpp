#include <warren/net/codec/frame.hpp>

#include <algorithm>
#include <limits>
#include <utility>

namespace warren::net::codec {

std::string_view to_string(frame_type t) noexcept {
  switch (t) {
    case frame_type::data:
      return "DATA";
    case frame_type::ack:
      return "ACK";
    case frame_type::push:
      return "PUSH";
    case frame_type::push_ack:
      return "PUSH_ACK";
    case frame_type::ping:
      return "PING";
    case frame_type::pong:
      return "PONG";
  }
  return "UNKNOWN";
}

std::uint32_t frame::ack_skipped() const noexcept {
  if (type != frame_type::ack || payload.size() != ack_payload_size)
    return 0;
  return detail::get_u32be(reinterpret_cast<const unsigned char*>(payload.data()));
}

// ---- decoder ----------------------------------------------------------------

decode_status frame_decoder::fail(error_reason r) noexcept {
  error_ = r;
  partial_.clear();
  return decode_status::error;
}

error_reason frame_decoder::parse_header(const unsigned char* h) noexcept {
  if (!is_known_frame_type(h[0]))
    return error_reason::unknown_frame_type;
  type_ = static_cast<frame_type>(h[0]);
  id_ = detail::get_u64be(h + 1);
  len_ = detail::get_u32be(h + 9);
  if (len_ > max_)
    return error_reason::frame_too_large;
  if (const auto fixed = fixed_payload_length(type_); fixed && *fixed != len_)
    return error_reason::bad_fixed_length;
  return error_reason::none;
}

decode_status frame_decoder::next(std::string_view& in, frame& out) {
  if (error_ != error_reason::none)
    return decode_status::error;
  if (in.empty())
    return decode_status::need_more;

  if (partial_.empty()) {
    if (in.size() < frame_header_size) {
      partial_.assign(in);
      in = {};
      return decode_status::need_more;
    }
    if (const auto e = parse_header(reinterpret_cast<const unsigned char*>(in.data()));
        e != error_reason::none)
      return fail(e);
    const std::size_t total = frame_header_size + len_;
    if (in.size() < total) {
      partial_.assign(in); // at most header + max_frame bytes
      in = {};
      return decode_status::need_more;
    }
    out = frame{type_, id_, in.substr(frame_header_size, len_)}; // zero copy
    in.remove_prefix(total);
    return decode_status::frame;
  }

  // Continue a partial frame.
  if (partial_.size() < frame_header_size) {
    const std::size_t take = std::min(frame_header_size - partial_.size(), in.size());
    partial_.append(in.data(), take);
    in.remove_prefix(take);
    if (partial_.size() < frame_header_size)
      return decode_status::need_more;
    if (const auto e = parse_header(reinterpret_cast<const unsigned char*>(partial_.data()));
        e != error_reason::none)
      return fail(e);
  }
  const std::size_t total = frame_header_size + len_;
  const std::size_t take = std::min(total - partial_.size(), in.size());
  partial_.append(in.data(), take);
  in.remove_prefix(take);
  if (partial_.size() < total)
    return decode_status::need_more;
  std::swap(partial_, assembled_);
  partial_.clear();
  out = frame{type_, id_, std::string_view(assembled_).substr(frame_header_size, len_)};
  return decode_status::frame;
}

void frame_decoder::reset() noexcept {
  error_ = error_reason::none;
  partial_.clear();
  assembled_.clear();
}

void frame_decoder::shrink() noexcept {
  partial_.shrink_to_fit();
  assembled_.clear();
  assembled_.shrink_to_fit();
}

// ---- ACK bookkeeping --------------------------------------------------------

error_reason ack_tracker::accept(std::uint64_t id) noexcept {
  if (id != last_accepted_ + 1)
    return error_reason::id_not_consecutive;
  last_accepted_ = id;
  return error_reason::none;
}

std::optional<ack_info> ack_tracker::take_ack() noexcept {
  if (!pending())
    return std::nullopt;
  constexpr std::uint64_t max_skipped = std::numeric_limits<std::uint32_t>::max();
  const std::uint64_t skipped = std::min(last_accepted_ - last_acked_ - 1, max_skipped);
  const ack_info a{last_acked_ + skipped + 1, static_cast<std::uint32_t>(skipped)};
  last_acked_ = a.id;
  return a;
}

error_reason ack_checker::sent(std::uint64_t id) noexcept {
  if (id != last_sent_ + 1)
    return error_reason::id_not_consecutive;
  last_sent_ = id;
  return error_reason::none;
}

error_reason ack_checker::check(ack_info ack) noexcept {
  // Computed without overflow: id must be strictly above last_acked_.
  if (ack.id <= last_acked_ || ack.id - last_acked_ - 1 != ack.skipped)
    return error_reason::ack_invariant;
  if (ack.id > last_sent_)
    return error_reason::ack_beyond_sent;
  last_acked_ = ack.id;
  ++acks_;
  skipped_total_ += ack.skipped;
  return error_reason::none;
}

error_reason ack_checker::check(const frame& f) noexcept {
  if (f.type != frame_type::ack || f.payload.size() != ack_payload_size)
    return error_reason::not_an_ack;
  return check(ack_info{f.id, f.ack_skipped()});
}

} // namespace warren::net::codec
