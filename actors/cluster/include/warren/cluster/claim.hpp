// Who holds a cluster-wide id since when: the claim of docs/cluster.md ("Claims"),
// shared by every layer that resolves conflicts between nodes the same way. A claim is
// (since_us, node, id); claims compare in that order. Which end wins is the layer's
// rule: the gateway's devices go to the newest claim (a reconnecting device takes
// over), cluster-wide names to the oldest (first registration wins, as in OTP's global).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <warren/wall_clock.hpp>

namespace warren::cluster {

struct claim_key {
  int64_t since_us = 0; ///< Unix time of the claim, microseconds
  std::string node;     ///< the claiming node's name (at most 64 bytes)
  std::string id;       ///< what claims on that node: a connection id, an actor id (at most 64 bytes, no ';')

  auto tie() const { return std::tie(since_us, node, id); }
  friend bool operator<(const claim_key& a, const claim_key& b) { return a.tie() < b.tie(); }
  friend bool operator==(const claim_key& a, const claim_key& b) { return a.tie() == b.tie(); }
};

/// "<since_us>;<node>;<id>"
std::string to_string(const claim_key& k);
/// Nothing for text that to_string cannot have made.
std::optional<claim_key> parse_claim(std::string_view text);

/// A decimal uint64 and nothing else.
std::optional<uint64_t> parse_u64(std::string_view text);

/// Claims are stamped with warren::unix_us() (wall_clock.hpp): claims of different
/// hosts compare, so keep their clocks synchronised.
using warren::unix_us;

} // namespace warren::cluster
