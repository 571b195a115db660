// libFuzzer target for codec `frame`.
//
// Invariants: decoding the stream in seed-chosen chunks yields exactly the frames
// and error of decoding it in one piece; every frame has a known type, len <= max
// and the right fixed length; re-encoding the frames reproduces the consumed
// input bytes exactly (the encoding is canonical) and decodes to the same frames;
// ACKs run through ack_checker never violate previous + skipped + 1 == id.
#include "fuzz_common.hpp"

#include <warren/net/codec/frame.hpp>

#include <string>
#include <vector>

using namespace warren::net::codec;

namespace {

struct owned {
  frame_type type;
  std::uint64_t id;
  std::string payload;
  bool operator==(const owned&) const = default;
};

struct result {
  std::vector<owned> frames;
  error_reason error = error_reason::none;
  std::size_t consumed = 0; // bytes of complete frames
};

result decode_whole(std::string_view s, std::size_t max) {
  result r;
  frame_decoder d(max);
  const auto fr = d.feed(s, [&](const frame& f) {
    r.frames.push_back({f.type, f.id, std::string(f.payload)});
    r.consumed += frame_header_size + f.payload.size();
  });
  WARREN_FUZZ_CHECK(fr.frames == r.frames.size());
  r.error = fr.error;
  return r;
}

result decode_chunked(const std::vector<std::string_view>& chunks, std::size_t max) {
  result r;
  frame_decoder d(max);
  std::vector<frame> out;
  for (auto c : chunks) {
    std::string copy(c);
    const auto fr = d.feed(std::string_view(copy), out);
    WARREN_FUZZ_CHECK(fr.frames == out.size());
    for (const auto& f : out)
      r.frames.push_back({f.type, f.id, std::string(f.payload)});
    WARREN_FUZZ_CHECK(d.buffered() <= frame_header_size + max);
    if (!fr) {
      r.error = fr.error;
      std::string ping;
      encode_ping(ping, 1);
      WARREN_FUZZ_CHECK(d.feed(std::string_view(ping), out).frames == 0);
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
  WARREN_FUZZ_CHECK(whole.frames == chunked.frames);
  WARREN_FUZZ_CHECK(whole.error == chunked.error);
  WARREN_FUZZ_CHECK(whole.error == error_reason::none || whole.error == error_reason::frame_too_large ||
                    whole.error == error_reason::unknown_frame_type ||
                    whole.error == error_reason::bad_fixed_length);

  ack_checker checker;
  std::uint64_t sent = 0;
  std::string wire;
  for (const auto& f : whole.frames) {
    WARREN_FUZZ_CHECK(is_known_frame_type(static_cast<std::uint8_t>(f.type)));
    WARREN_FUZZ_CHECK(f.payload.size() <= in.max_frame);
    if (const auto fixed = fixed_payload_length(f.type))
      WARREN_FUZZ_CHECK(f.payload.size() == *fixed);
    encode_frame(wire, frame{f.type, f.id, f.payload});

    // Pretend every DATA before the ACK was sent, then check the ACK.
    if (f.type == frame_type::ack) {
      const frame view{f.type, f.id, f.payload};
      while (sent < f.id && sent < 4096)
        WARREN_FUZZ_CHECK(checker.sent(++sent) == error_reason::none);
      const std::uint64_t before = checker.last_acked();
      const auto e = checker.check(view);
      if (e == error_reason::none) {
        WARREN_FUZZ_CHECK(before + view.ack_skipped() + 1 == view.id);
        WARREN_FUZZ_CHECK(checker.last_acked() == view.id);
      } else {
        WARREN_FUZZ_CHECK(checker.last_acked() == before);
      }
    }
  }
  // Canonical encoding: the re-encoded frames are exactly the consumed input.
  WARREN_FUZZ_CHECK(wire.size() == whole.consumed);
  WARREN_FUZZ_CHECK(in.stream.substr(0, whole.consumed) == wire);
  const result again = decode_whole(wire, in.max_frame);
  WARREN_FUZZ_CHECK(again.error == error_reason::none);
  WARREN_FUZZ_CHECK(again.frames == whole.frames);

  // ack_tracker: ACKs it produces always pass the checker.
  ack_tracker tracker;
  ack_checker dev;
  std::uint64_t next = 1;
  for (const auto& f : whole.frames) {
    const unsigned n = static_cast<unsigned>(f.id % 5);
    for (unsigned k = 0; k < n; ++k, ++next) {
      WARREN_FUZZ_CHECK(tracker.accept(next) == error_reason::none);
      WARREN_FUZZ_CHECK(dev.sent(next) == error_reason::none);
    }
    WARREN_FUZZ_CHECK(tracker.accept(next + 1 + (f.id & 1)) == error_reason::id_not_consecutive);
    if (const auto a = tracker.take_ack())
      WARREN_FUZZ_CHECK(dev.check(*a) == error_reason::none);
  }
  WARREN_FUZZ_CHECK(dev.unacked() == 0);
  return 0;
}
