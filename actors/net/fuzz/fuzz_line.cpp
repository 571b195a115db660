// libFuzzer target for codec `line`.
//
// Invariants: decoding the stream in seed-chosen chunks yields exactly the lines
// and error of decoding it in one piece; no line is empty, contains LF or is longer
// than max; re-encoding the lines and decoding again yields the same lines.
#include "fuzz_common.hpp"

#include <warren/net/codec/line.hpp>

#include <string>
#include <vector>

using namespace warren::net::codec;

namespace {

struct result {
  std::vector<std::string> lines;
  error_reason error = error_reason::none;
};

result decode_whole(std::string_view s, std::size_t max) {
  result r;
  line_decoder d(max);
  // Pull API, one chunk.
  std::string_view line;
  for (;;) {
    const auto st = d.next(s, line);
    if (st == decode_status::frame) {
      r.lines.emplace_back(line);
      continue;
    }
    if (st == decode_status::error) {
      WARREN_FUZZ_CHECK(d.failed());
      r.error = d.error();
    } else {
      WARREN_FUZZ_CHECK(s.empty());
      WARREN_FUZZ_CHECK(!d.failed());
    }
    break;
  }
  return r;
}

result decode_chunked(const std::vector<std::string_view>& chunks, std::size_t max) {
  result r;
  line_decoder d(max);
  std::vector<std::string_view> out;
  for (auto c : chunks) {
    std::string copy(c); // own heap block per chunk: ASan sees views into dead chunks
    const auto fr = d.feed(std::string_view(copy), out);
    WARREN_FUZZ_CHECK(fr.frames == out.size());
    for (auto l : out)
      r.lines.emplace_back(l);
    // A partial line never exceeds max + 1 (room for a trailing CR).
    WARREN_FUZZ_CHECK(d.buffered() <= max + 1);
    if (!fr) {
      r.error = fr.error;
      // Once failed, nothing more is delivered.
      WARREN_FUZZ_CHECK(d.feed(std::string_view("x\n"), out).frames == 0);
      break;
    }
  }
  return r;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  warren_fuzz::input in;
  if (!warren_fuzz::parse(data, size, in))
    return 0;

  const result whole = decode_whole(in.stream, in.max_frame);
  const result chunked = decode_chunked(warren_fuzz::split(in.stream, in.chunk_seed), in.max_frame);
  WARREN_FUZZ_CHECK(whole.lines == chunked.lines);
  WARREN_FUZZ_CHECK(whole.error == chunked.error);
  WARREN_FUZZ_CHECK(whole.error == error_reason::none || whole.error == error_reason::frame_too_large);

  std::string wire;
  for (const auto& l : whole.lines) {
    WARREN_FUZZ_CHECK(!l.empty());
    WARREN_FUZZ_CHECK(l.size() <= in.max_frame);
    WARREN_FUZZ_CHECK(l.find('\n') == std::string::npos);
    // The decoder strips one CR, so a payload ending in CR goes out as CRLF.
    if (l.back() == '\r')
      WARREN_FUZZ_CHECK(encode_line(wire, l + '\r'));
    else
      WARREN_FUZZ_CHECK(encode_line(wire, l));
  }
  const result again = decode_whole(wire, in.max_frame);
  WARREN_FUZZ_CHECK(again.error == error_reason::none);
  WARREN_FUZZ_CHECK(again.lines == whole.lines);
  return 0;
}
