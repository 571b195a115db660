#include <warren/net/codec/error.hpp>

namespace warren::net::codec {

std::string_view to_string(error_reason r) noexcept {
  switch (r) {
    case error_reason::none:
      return "none";
    case error_reason::frame_too_large:
      return "frame_too_large";
    case error_reason::unknown_frame_type:
      return "unknown_frame_type";
    case error_reason::bad_fixed_length:
      return "bad_fixed_length";
    case error_reason::id_not_consecutive:
      return "id_not_consecutive";
    case error_reason::ack_invariant:
      return "ack_invariant";
    case error_reason::ack_beyond_sent:
      return "ack_beyond_sent";
    case error_reason::not_an_ack:
      return "not_an_ack";
  }
  return "unknown";
}

} // namespace warren::net::codec
