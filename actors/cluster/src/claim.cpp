#include <warren/cluster/claim.hpp>

#include <charconv>
#include <chrono>
#include <cstdint>

namespace warren::cluster {

std::string to_string(const claim_key& k) {
  return std::to_string(k.since_us) + ";" + k.node + ";" + k.id;
}

std::optional<uint64_t> parse_u64(std::string_view text) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size())
    return std::nullopt;
  return v;
}

std::optional<claim_key> parse_claim(std::string_view text) {
  auto a = text.find(';');
  if (a == std::string_view::npos)
    return std::nullopt;
  auto b = text.find(';', a + 1);
  if (b == std::string_view::npos || b == a + 1 || b + 1 >= text.size())
    return std::nullopt;
  auto since = parse_u64(text.substr(0, a));
  if (!since || *since > static_cast<uint64_t>(INT64_MAX))
    return std::nullopt;
  claim_key k;
  k.since_us = static_cast<int64_t>(*since);
  k.node = std::string{text.substr(a + 1, b - a - 1)};
  k.id = std::string{text.substr(b + 1)};
  if (k.node.size() > 64 || k.id.size() > 64 || k.id.find(';') != std::string::npos)
    return std::nullopt;
  return k;
}

} // namespace warren::cluster
