#include <warren/net/codec/frame.hpp>

#include <doctest/doctest.h>
#include <warren_test/counting_new.hpp> // counts allocations

#include <atomic>
#include <cstdlib>
#include <new>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using namespace warren::net::codec;

namespace {

// Owning copy of a frame (views are only valid until the next feed).
struct owned {
  frame_type type;
  std::uint64_t id;
  std::string payload;
  friend bool operator==(const owned&, const owned&) = default;
};

struct decoded {
  std::vector<owned> frames;
  error_reason error = error_reason::none;
};

decoded decode_chunks(std::string_view wire, const std::vector<std::size_t>& cuts,
                      std::size_t max = default_max_frame) {
  frame_decoder d(max);
  decoded out;
  std::size_t pos = 0;
  auto feed = [&](std::string_view chunk) {
    std::string copy(chunk); // separate heap copy: catches views into dead chunks under ASan
    const auto r = d.feed(std::string_view(copy), [&](const frame& f) {
      out.frames.push_back({f.type, f.id, std::string(f.payload)});
    });
    if (!r)
      out.error = r.error;
  };
  for (std::size_t c : cuts) {
    feed(wire.substr(pos, c - pos));
    pos = c;
  }
  feed(wire.substr(pos));
  return out;
}

decoded decode_all(std::string_view wire, std::size_t max = default_max_frame) {
  return decode_chunks(wire, {}, max);
}

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int x : b)
    s.push_back(static_cast<char>(x));
  return s;
}

std::string all_types_wire() {
  std::string w;
  encode_data(w, 1, "temp=21.5");
  encode_data(w, 2, "");
  encode_ack(w, 2, 1);
  encode_push(w, 1, std::string("bin\0ary\xff", 8));
  encode_push_ack(w, 1);
  encode_ping(w, 0xdeadbeefcafef00dULL);
  encode_pong(w, 0xdeadbeefcafef00dULL);
  return w;
}

const std::vector<owned> all_types_frames = {
    {frame_type::data, 1, "temp=21.5"},
    {frame_type::data, 2, ""},
    {frame_type::ack, 2, bytes({0, 0, 0, 1})},
    {frame_type::push, 1, std::string("bin\0ary\xff", 8)},
    {frame_type::push_ack, 1, ""},
    {frame_type::ping, 0xdeadbeefcafef00dULL, ""},
    {frame_type::pong, 0xdeadbeefcafef00dULL, ""},
};

} // namespace

TEST_CASE("frame: big-endian layout matches hand-written bytes") {
  std::string w;
  encode_data(w, 0x0102030405060708ULL, "hi");
  CHECK(w == bytes({1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 2, 'h', 'i'}));

  w.clear();
  encode_ack(w, 0x2a, 0x01020304);
  CHECK(w == bytes({2, 0, 0, 0, 0, 0, 0, 0, 0x2a, 0, 0, 0, 4, 1, 2, 3, 4}));

  w.clear();
  encode_push(w, 0x100, "x");
  CHECK(w == bytes({3, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 'x'}));

  w.clear();
  encode_push_ack(w, 7);
  encode_ping(w, 0xff00000000000001ULL);
  encode_pong(w, 9);
  CHECK(w == bytes({4, 0,    0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, //
                    5, 0xff, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, //
                    6, 0,    0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0}));

  // Decoding hand-written bytes: len 0x00000100 = 256 is big-endian.
  std::string in = bytes({1, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0, 1, 0});
  in += std::string(256, 'p');
  const auto d = decode_all(in);
  REQUIRE(d.frames.size() == 1);
  CHECK(d.frames[0].type == frame_type::data);
  CHECK(d.frames[0].id == 0x1234);
  CHECK(d.frames[0].payload == std::string(256, 'p'));
}

TEST_CASE("frame: every frame type round-trips") {
  const auto d = decode_all(all_types_wire());
  CHECK(d.error == error_reason::none);
  CHECK(d.frames == all_types_frames);

  frame_decoder dec;
  std::vector<frame> out;
  const std::string w = all_types_wire();
  const auto r = dec.feed(w, out);
  CHECK(r.frames == 7);
  REQUIRE(out.size() == 7);
  CHECK(out[2].ack_skipped() == 1);
  CHECK(out[0].ack_skipped() == 0); // not an ACK
  // Re-encoding the decoded frames reproduces the wire bytes exactly.
  std::string again;
  for (const auto& f : out)
    encode_frame(again, f);
  CHECK(again == w);
}

TEST_CASE("frame: chunking at every byte boundary gives the same frames") {
  const std::string wire = all_types_wire();
  for (std::size_t i = 0; i <= wire.size(); ++i) {
    CAPTURE(i);
    const auto one = decode_chunks(wire, {i});
    CHECK(one.frames == all_types_frames);
    for (std::size_t j = i; j <= wire.size(); j += 3) {
      CAPTURE(j);
      const auto two = decode_chunks(wire, {i, j});
      CHECK(two.frames == all_types_frames);
      CHECK(two.error == error_reason::none);
    }
  }
  std::vector<std::size_t> all;
  for (std::size_t i = 1; i < wire.size(); ++i)
    all.push_back(i);
  CHECK(decode_chunks(wire, all).frames == all_types_frames);
}

TEST_CASE("frame: partial frame is buffered, then completed") {
  frame_decoder d;
  std::vector<frame> out;
  std::string w;
  encode_data(w, 5, "payload");
  CHECK(d.feed(std::string_view(w).substr(0, 4), out).frames == 0);
  CHECK(d.buffered() == 4);
  CHECK(d.feed(std::string_view(w).substr(4, 12), out).frames == 0);
  CHECK(d.buffered() == 16);
  const auto r = d.feed(std::string_view(w).substr(16), out);
  CHECK(r.frames == 1);
  REQUIRE(out.size() == 1);
  CHECK(out[0].id == 5);
  CHECK(out[0].payload == "payload");
  CHECK(d.buffered() == 0);
}

TEST_CASE("frame: frames inside a chunk are zero-copy views into it") {
  std::string w;
  encode_data(w, 1, "abc");
  encode_data(w, 2, "def");
  frame_decoder d;
  std::vector<frame> out;
  d.feed(w, out);
  REQUIRE(out.size() == 2);
  CHECK(out[0].payload.data() == w.data() + 13);
  CHECK(out[1].payload.data() == w.data() + 13 + 3 + 13);
}

TEST_CASE("frame: max length — exact accepted, max+1 rejected from the header alone") {
  constexpr std::size_t max = 32;
  std::string w;
  encode_data(w, 1, std::string(max, 'a'));
  auto d = decode_all(w, max);
  CHECK(d.error == error_reason::none);
  REQUIRE(d.frames.size() == 1);
  CHECK(d.frames[0].payload.size() == max);

  w.clear();
  encode_data(w, 1, "ok");
  encode_push(w, 2, std::string(max + 1, 'b'));
  encode_data(w, 3, "never");
  for (std::size_t i = 0; i <= w.size(); ++i) {
    CAPTURE(i);
    d = decode_chunks(w, {i}, max);
    CHECK(d.error == error_reason::frame_too_large);
    CHECK(d.frames == std::vector<owned>{{frame_type::data, 1, "ok"}});
  }

  // Detected from the 13-byte header: the payload is never waited for.
  frame_decoder dec(max);
  std::vector<frame> out;
  const std::string hdr = bytes({1, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff});
  CHECK(dec.feed(std::string_view(hdr).substr(0, 12), out).ok());
  CHECK(dec.feed(std::string_view(hdr).substr(12), out).error == error_reason::frame_too_large);
  CHECK(dec.failed());

  CHECK(frame_decoder{}.max_frame() == 65536);
  w.clear();
  encode_data(w, 1, std::string(65536, 'x'));
  CHECK(decode_all(w).frames.size() == 1);
  w.clear();
  encode_data(w, 1, std::string(65537, 'x'));
  CHECK(decode_all(w).error == error_reason::frame_too_large);
}

TEST_CASE("frame: unknown type is an error; earlier frames delivered") {
  for (int t : {0, 7, 8, 0x80, 0xff}) {
    CAPTURE(t);
    std::string w;
    encode_ping(w, 1);
    encode_frame(w, static_cast<std::uint8_t>(t), 2, "");
    encode_pong(w, 3);
    frame_decoder dec;
    std::vector<frame> out;
    const auto r = dec.feed(w, out);
    CHECK(r.error == error_reason::unknown_frame_type);
    CHECK(r.frames == 1);
    REQUIRE(out.size() == 1);
    CHECK(out[0].type == frame_type::ping);
    // Stays failed until reset.
    CHECK(dec.feed(std::string_view(w).substr(26), out).error == error_reason::unknown_frame_type);
    CHECK(out.empty());
    dec.reset();
    CHECK(dec.feed(std::string_view(w).substr(26), out).ok());
    REQUIRE(out.size() == 1);
    CHECK(out[0].type == frame_type::pong);
  }
}

TEST_CASE("frame: bad fixed lengths are protocol errors") {
  auto check_bad = [](frame_type t, std::string payload) {
    CAPTURE(to_string(t));
    CAPTURE(payload.size());
    std::string w;
    encode_frame(w, static_cast<std::uint8_t>(t), 1, payload);
    CHECK(decode_all(w).error == error_reason::bad_fixed_length);
  };
  check_bad(frame_type::ack, "");
  check_bad(frame_type::ack, "abc");
  check_bad(frame_type::ack, "abcde");
  check_bad(frame_type::push_ack, "a");
  check_bad(frame_type::ping, "a");
  check_bad(frame_type::pong, "abcd");
  // The right fixed lengths, and variable-length types with any length, are fine.
  std::string w;
  encode_frame(w, static_cast<std::uint8_t>(frame_type::ack), 1, "abcd");
  encode_frame(w, static_cast<std::uint8_t>(frame_type::data), 1, "abcd");
  encode_frame(w, static_cast<std::uint8_t>(frame_type::push), 1, "");
  CHECK(decode_all(w).error == error_reason::none);
  CHECK(decode_all(w).frames.size() == 3);
}

TEST_CASE("frame: ack_tracker produces ACKs satisfying the invariant") {
  ack_tracker t;
  CHECK_FALSE(t.pending());
  CHECK_FALSE(t.take_ack());
  CHECK(t.accept(1) == error_reason::none);
  CHECK(t.take_ack() == ack_info{1, 0});
  CHECK(t.accept(2) == error_reason::none);
  CHECK(t.accept(3) == error_reason::none);
  CHECK(t.accept(4) == error_reason::none);
  CHECK(t.pending());
  CHECK(t.take_ack() == ack_info{4, 2}); // 2 and 3 covered without their own ACK
  CHECK_FALSE(t.pending());
  CHECK(t.accept(6) == error_reason::id_not_consecutive);
  CHECK(t.accept(4) == error_reason::id_not_consecutive);
  CHECK(t.last_accepted() == 4);
  CHECK(t.accept(5) == error_reason::none);
  std::string w;
  CHECK(t.write_ack(w));
  CHECK_FALSE(t.write_ack(w));
  CHECK(w == bytes({2, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 4, 0, 0, 0, 0}));

  // Custom first id.
  ack_tracker t2(100);
  CHECK(t2.accept(99) == error_reason::id_not_consecutive);
  CHECK(t2.accept(100) == error_reason::none);
  CHECK(t2.accept(101) == error_reason::none);
  CHECK(t2.take_ack() == ack_info{101, 1});
}

TEST_CASE("frame: ack_tracker + ack_checker agree over a random-ish run") {
  ack_tracker gw;
  ack_checker dev;
  frame_decoder dec;
  std::vector<frame> out;
  std::uint64_t next_id = 1;
  std::uint32_t rng = 12345;
  std::uint64_t acks = 0;
  for (int round = 0; round < 500; ++round) {
    rng = rng * 1103515245u + 12345u;
    const unsigned burst = (rng >> 16) % 7;
    for (unsigned k = 0; k < burst; ++k) {
      REQUIRE(dev.sent(next_id) == error_reason::none);
      REQUIRE(gw.accept(next_id) == error_reason::none);
      ++next_id;
    }
    std::string wire;
    if (gw.write_ack(wire)) {
      REQUIRE(dec.feed(wire, out).frames == 1);
      REQUIRE(dev.check(out[0]) == error_reason::none);
      ++acks;
      CHECK(dev.last_acked() == next_id - 1);
      CHECK(dev.unacked() == 0);
    }
  }
  CHECK(dev.acks() == acks);
  CHECK(dev.acks() + dev.skipped_total() == next_id - 1); // every id covered exactly once
}

TEST_CASE("frame: ack_checker rejects broken ACKs") {
  ack_checker c;
  for (std::uint64_t i = 1; i <= 10; ++i)
    REQUIRE(c.sent(i) == error_reason::none);
  CHECK(c.sent(12) == error_reason::id_not_consecutive);

  CHECK(c.check(ack_info{3, 1}) == error_reason::ack_invariant); // 0 + 1 + 1 != 3
  CHECK(c.check(ack_info{3, 2}) == error_reason::none);
  CHECK(c.last_acked() == 3);
  CHECK(c.check(ack_info{3, 0}) == error_reason::ack_invariant);           // not advancing
  CHECK(c.check(ack_info{2, 0xffffffffu}) == error_reason::ack_invariant); // going back
  CHECK(c.check(ack_info{4, 0}) == error_reason::none);
  CHECK(c.check(ack_info{11, 6}) == error_reason::ack_beyond_sent); // 11 was never sent
  CHECK(c.last_acked() == 4);
  CHECK(c.check(ack_info{10, 5}) == error_reason::none);
  CHECK(c.unacked() == 0);
  CHECK(c.acks() == 3);
  CHECK(c.skipped_total() == 7);

  frame f{frame_type::push, 11, ""};
  CHECK(c.check(f) == error_reason::not_an_ack);

  CHECK(to_string(error_reason::ack_invariant) == "ack_invariant");
  CHECK(to_string(error_reason::ack_beyond_sent) == "ack_beyond_sent");
  CHECK(to_string(frame_type::push_ack) == "PUSH_ACK");
  CHECK(to_string(static_cast<frame_type>(42)) == "UNKNOWN");
}

TEST_CASE("frame: decoding many frames does not allocate per frame") {
  std::string wire;
  for (std::uint64_t i = 1; i <= 1000; ++i)
    encode_data(wire, i, "payload " + std::to_string(i));
  frame_decoder d;
  std::vector<frame> out;
  out.reserve(1000);
  // Warm up: two frames spanning chunks so both internal buffers (they alternate)
  // have capacity; from then on nothing allocates.
  std::string warm;
  encode_data(warm, 0, std::string(64, 'w'));
  for (int i = 0; i < 2; ++i) {
    d.feed(std::string_view(warm).substr(0, 20), out);
    d.feed(std::string_view(warm).substr(20), out);
  }

  std::string acks;
  acks.reserve(17 * 1000);
  std::uint64_t id_sum = 0;
  std::size_t count = 0;
  const std::size_t before = warren_test::allocations.load();
  auto r = d.feed(wire, [&](const frame& f) { id_sum += f.id; });
  r = d.feed(wire, out);
  for (std::size_t pos = 0; pos < wire.size(); pos += 29)
    d.feed(std::string_view(wire).substr(pos, 29), [&](const frame&) { ++count; });
  ack_tracker t;
  for (std::uint64_t i = 1; i <= 1000; ++i) {
    t.accept(i);
    t.write_ack(acks);
  }
  CHECK(warren_test::allocations.load() == before);
  CHECK(r.frames == 1000);
  CHECK(out.size() == 1000);
  CHECK(count == 1000);
  CHECK(id_sum == 1000 * 1001 / 2);
  CHECK(acks.size() == 17 * 1000);
}
