#include <warren/net/codec/line.hpp>

#include <doctest/doctest.h>
#include <warren_test/counting_new.hpp> // counts allocations

#include <atomic>
#include <cstdlib>
#include <new>

#include <string>
#include <string_view>
#include <vector>

using namespace warren::net::codec;

namespace {

struct decoded {
  std::vector<std::string> lines;
  error_reason error = error_reason::none;
};

// Feeds `wire` split at the given cut points, copying each delivered line (views
// are only valid until the next feed).
decoded decode_chunks(std::string_view wire, const std::vector<std::size_t>& cuts,
                      std::size_t max = default_max_frame) {
  line_decoder d(max);
  decoded out;
  std::size_t pos = 0;
  auto feed = [&](std::string_view chunk) {
    // Feed from a separate heap copy so zero-copy views can't hide lifetime bugs.
    std::string copy(chunk);
    const auto r = d.feed(std::string_view(copy), [&](std::string_view l) { out.lines.emplace_back(l); });
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

} // namespace

TEST_CASE("line: basic lines, CR stripping, empty lines ignored") {
  const auto d = decode_all("hello\nworld\r\n\n\r\nx\r\r\n  \nlast");
  CHECK(d.error == error_reason::none);
  REQUIRE(d.lines.size() == 4);
  CHECK(d.lines[0] == "hello");
  CHECK(d.lines[1] == "world");
  CHECK(d.lines[2] == "x\r"); // only one trailing CR is stripped
  CHECK(d.lines[3] == "  ");  // whitespace-only is not empty
}

TEST_CASE("line: incomplete line is held, completed by the next chunk") {
  line_decoder d;
  std::vector<std::string_view> out;
  auto r = d.feed("abc", out);
  CHECK(r.ok());
  CHECK(r.frames == 0);
  CHECK(out.empty());
  CHECK(d.buffered() == 3);
  r = d.feed("def\r", out);
  CHECK(out.empty());
  CHECK(d.buffered() == 7);
  r = d.feed("\nxy\n", out);
  CHECK(r.ok());
  CHECK(r.frames == 2);
  REQUIRE(out.size() == 2);
  CHECK(out[0] == "abcdef");
  CHECK(out[1] == "xy");
  CHECK(d.buffered() == 0);
}

TEST_CASE("line: chunking at every byte boundary gives the same lines") {
  const std::string wire = "alpha\r\n\nbeta\ngamma delta\r\n\r\n\r\r\n1\n22\r\n333\nunterminated";
  const auto whole = decode_all(wire);
  REQUIRE(whole.lines == std::vector<std::string>{"alpha", "beta", "gamma delta", "\r", "1", "22", "333"});
  for (std::size_t i = 0; i <= wire.size(); ++i) {
    CAPTURE(i);
    CHECK(decode_chunks(wire, {i}).lines == whole.lines);
    for (std::size_t j = i; j <= wire.size(); ++j) {
      CAPTURE(j);
      const auto two = decode_chunks(wire, {i, j});
      CHECK(two.lines == whole.lines);
      CHECK(two.error == error_reason::none);
    }
  }
  // One byte at a time.
  std::vector<std::size_t> all;
  for (std::size_t i = 1; i < wire.size(); ++i)
    all.push_back(i);
  CHECK(decode_chunks(wire, all).lines == whole.lines);
}

TEST_CASE("line: exact max length accepted, max+1 rejected") {
  constexpr std::size_t max = 16;
  const std::string exact(max, 'a');
  const std::string over(max + 1, 'b');

  SUBCASE("exact max, with LF and with CRLF") {
    const auto d = decode_all(exact + "\n" + exact + "\r\n", max);
    CHECK(d.error == error_reason::none);
    CHECK(d.lines == std::vector<std::string>{exact, exact});
  }
  SUBCASE("max+1 with LF") {
    const auto d = decode_all(over + "\n", max);
    CHECK(d.error == error_reason::frame_too_large);
    CHECK(d.lines.empty());
  }
  SUBCASE("max+1 with CRLF") {
    const auto d = decode_all(over + "\r\n", max);
    CHECK(d.error == error_reason::frame_too_large);
  }
  SUBCASE("max+1 without LF is detected early, without waiting for LF") {
    line_decoder d(max);
    std::vector<std::string_view> out;
    CHECK(d.feed(exact, out).ok());
    CHECK(d.feed("\r", out).ok()); // could still be exact + CRLF
    const auto r = d.feed("x", out);
    CHECK(r.error == error_reason::frame_too_large);
    CHECK(d.failed());
  }
  SUBCASE("every chunking agrees") {
    const std::string wire = exact + "\r\n" + exact + "\n" + over + "\nnever";
    for (std::size_t i = 0; i <= wire.size(); ++i) {
      CAPTURE(i);
      const auto d = decode_chunks(wire, {i}, max);
      CHECK(d.error == error_reason::frame_too_large);
      CHECK(d.lines == std::vector<std::string>{exact, exact});
    }
  }
  SUBCASE("default max is 65536") {
    CHECK(line_decoder{}.max_frame() == 65536);
    const std::string big(65536, 'z');
    CHECK(decode_all(big + "\n").lines.size() == 1);
    CHECK(decode_all(big + "z\n").error == error_reason::frame_too_large);
  }
}

TEST_CASE("line: frames before an error are delivered, nothing after") {
  line_decoder d(8);
  std::vector<std::string> got;
  const auto r = d.feed(std::string_view("one\ntwo\r\n0123456789\nthree\n"),
                        [&](std::string_view l) { got.emplace_back(l); });
  CHECK(r.error == error_reason::frame_too_large);
  CHECK(r.frames == 2);
  CHECK(got == std::vector<std::string>{"one", "two"});
  // The decoder stays failed.
  got.clear();
  const auto r2 = d.feed(std::string_view("four\n"), [&](std::string_view l) { got.emplace_back(l); });
  CHECK(r2.error == error_reason::frame_too_large);
  CHECK(got.empty());
  // reset() recovers.
  d.reset();
  CHECK_FALSE(d.failed());
  CHECK(d.feed(std::string_view("five\n"), [&](std::string_view l) { got.emplace_back(l); }).ok());
  CHECK(got == std::vector<std::string>{"five"});
}

TEST_CASE("line: lines inside a chunk are zero-copy views into it") {
  line_decoder d;
  const std::string chunk = "ab\ncd\n";
  std::vector<std::string_view> out;
  d.feed(chunk, out);
  REQUIRE(out.size() == 2);
  CHECK(out[0].data() == chunk.data());
  CHECK(out[1].data() == chunk.data() + 3);
}

TEST_CASE("line: a reassembled line stays valid while the rest of the chunk decodes") {
  line_decoder d;
  std::vector<std::string_view> out;
  d.feed("spa", out);
  std::string chunk = "nning\nnext\ntail-part";
  d.feed(chunk, out);
  REQUIRE(out.size() == 2);
  CHECK(out[0] == "spanning"); // still intact after the tail was buffered
  CHECK(out[1] == "next");
  d.feed("\n", out);
  REQUIRE(out.size() == 1);
  CHECK(out[0] == "tail-part");
}

TEST_CASE("line: encoder appends payload + LF and refuses embedded LF") {
  std::string buf = "x";
  CHECK(encode_line(buf, "hello"));
  CHECK(encode_line(buf, ""));
  CHECK(buf == "xhello\n\n");
  CHECK_FALSE(encode_line(buf, "a\nb"));
  CHECK(buf == "xhello\n\n");

  std::vector<unsigned char> v;
  CHECK(encode_line(v, "hi"));
  CHECK(v == std::vector<unsigned char>{'h', 'i', '\n'});

  // Round trip.
  std::string wire;
  for (auto p : {"a", "bb", "c c", "d\td"})
    CHECK(encode_line(wire, p));
  CHECK(decode_all(wire).lines == std::vector<std::string>{"a", "bb", "c c", "d\td"});
}

TEST_CASE("line: error reason names") {
  CHECK(to_string(error_reason::none) == "none");
  CHECK(to_string(error_reason::frame_too_large) == "frame_too_large");
  CHECK(to_string(error_reason::unknown_frame_type) == "unknown_frame_type");
  CHECK(to_string(error_reason::bad_fixed_length) == "bad_fixed_length");
}

TEST_CASE("line: decoding many lines does not allocate per line") {
  std::string wire;
  for (int i = 0; i < 1000; ++i)
    CHECK(encode_line(wire, "message number " + std::to_string(i)));
  line_decoder d;
  std::vector<std::string_view> out;
  out.reserve(1000);
  // Warm up: two lines spanning chunks so both internal buffers (they alternate)
  // have capacity; from then on nothing allocates.
  const std::string warm(64, 'w');
  for (int i = 0; i < 2; ++i) {
    d.feed(warm, out);
    d.feed("\n", out);
  }

  std::size_t count = 0, bytes = 0;
  const std::size_t before = warren_test::allocations.load();
  auto r = d.feed(wire, [&](std::string_view l) {
    ++count;
    bytes += l.size();
  });
  r = d.feed(wire, out); // vector variant with reserved capacity
  // Chunked feeding with lines spanning chunks reuses the internal buffers.
  for (std::size_t pos = 0; pos < wire.size(); pos += 37)
    d.feed(std::string_view(wire).substr(pos, 37), [&](std::string_view) { ++count; });
  CHECK(warren_test::allocations.load() == before);
  CHECK(r.frames == 1000);
  CHECK(count == 2000);
  CHECK(out.size() == 1000);
  CHECK(bytes == wire.size() - 1000);
}
