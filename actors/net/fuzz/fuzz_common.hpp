// Shared helpers for the codec fuzz targets.
//
// Input layout: byte 0 picks the chunking, byte 1 picks the max frame length,
// the rest is the byte stream fed to the decoder.
#pragma once

#include <warren/net/codec/error.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

namespace warren_fuzz {

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "fuzz invariant violated: %s\n", what);
  std::abort();
}

#define WARREN_FUZZ_CHECK(cond)                                                                              \
  do {                                                                                                       \
    if (!(cond))                                                                                             \
      ::warren_fuzz::fail(#cond);                                                                            \
  } while (0)

struct input {
  std::uint8_t chunk_seed = 0;
  std::size_t max_frame = warren::net::codec::default_max_frame;
  std::string_view stream;
};

inline bool parse(const std::uint8_t* data, std::size_t size, input& in) {
  if (size < 2)
    return false;
  in.chunk_seed = data[0];
  // High bit set: default max (65536); otherwise a small max 0..63 so the
  // too-large paths are reachable with short inputs.
  in.max_frame = (data[1] & 0x80) ? warren::net::codec::default_max_frame : (data[1] & 0x3f);
  in.stream = {reinterpret_cast<const char*>(data) + 2, size - 2};
  return true;
}

/// Chunk sizes derived from the seed: sizes 0..limit (0 = an empty feed).
inline std::vector<std::string_view> split(std::string_view s, std::uint8_t seed) {
  std::vector<std::string_view> chunks;
  const std::size_t limit = std::size_t{1} << (seed & 7); // 1 .. 128
  std::uint32_t x = 0x9e3779b9u ^ (std::uint32_t{seed} * 0x01000193u);
  while (!s.empty()) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    std::size_t n = (seed & 0x80) ? (x % (limit + 1)) : (1 + x % limit);
    if (n > s.size())
      n = s.size();
    chunks.push_back(s.substr(0, n));
    s.remove_prefix(n);
  }
  return chunks;
}

} // namespace warren_fuzz
