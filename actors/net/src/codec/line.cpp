#include <warren/net/codec/line.hpp>

#include <cstring>
#include <utility>

namespace warren::net::codec {

namespace {

// Strips one trailing CR.
std::string_view strip_cr(std::string_view l) noexcept {
  if (!l.empty() && l.back() == '\r')
    l.remove_suffix(1);
  return l;
}

} // namespace

decode_status line_decoder::fail(error_reason r) noexcept {
  error_ = r;
  partial_.clear();
  return decode_status::error;
}

decode_status line_decoder::next(std::string_view& in, std::string_view& line) {
  if (error_ != error_reason::none)
    return decode_status::error;
  while (!in.empty()) {
    const auto* nl = static_cast<const char*>(std::memchr(in.data(), '\n', in.size()));
    if (nl == nullptr) {
      // No LF in the chunk: all of it joins the partial line (if it can still fit).
      if (!partial_fits(partial_.size() + in.size(), in.back()))
        return fail(error_reason::frame_too_large);
      partial_.append(in);
      in = {};
      return decode_status::need_more;
    }
    const auto n = static_cast<std::size_t>(nl - in.data());
    std::string_view l;
    if (partial_.empty()) {
      l = strip_cr(in.substr(0, n)); // zero copy: a view into the caller's chunk
    } else {
      if (partial_.size() + n > max_ + 1)
        return fail(error_reason::frame_too_large);
      partial_.append(in.data(), n);
      // Hand the finished line over to assembled_ (valid until the next chunk) and
      // keep the other buffer's capacity for the next partial line.
      std::swap(partial_, assembled_);
      partial_.clear();
      l = strip_cr(assembled_);
    }
    if (l.size() > max_)
      return fail(error_reason::frame_too_large);
    in.remove_prefix(n + 1);
    if (l.empty())
      continue; // empty lines are ignored
    line = l;
    return decode_status::frame;
  }
  return decode_status::need_more;
}

void line_decoder::reset() noexcept {
  error_ = error_reason::none;
  partial_.clear();
  assembled_.clear();
}

void line_decoder::shrink() noexcept {
  partial_.shrink_to_fit();
  assembled_.clear();
  assembled_.shrink_to_fit();
}

} // namespace warren::net::codec
