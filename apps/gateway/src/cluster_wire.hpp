// The gateway's messages between nodes over NATS (docs/cluster.md, "Wire"). Core
// NATS carries them; the headers say what a message is, the body is the payload.
//
//   warren.dev.<token>, warren.conn.<token>     subscribed by the session's node
//     Warren-Op: deliver   [Warren-Seq: N]      body: the payload for the device
//       reply  Warren-Status: delivered | closing | bad_message | bad_request
//     Warren-Op: claim     Warren-Claim: <claim> [Warren-Verify: 1]
//       reply  Warren-Status: yielded  Warren-Next-Seq: N     (the old session closes)
//              Warren-Status: refused  Warren-Claim: <the owner's newer claim>
//              Warren-Status: gone     (subscribed, but the session just ended)
//   "no responders" from the server: nobody holds that device or connection.
//
//   warren.nodes.heartbeat   each node's heartbeat (JSON), every heartbeat_interval
//   warren.nodes.info        scatter-gather: every node replies with its view (JSON)
//   warren.nodes.connections scatter-gather: every node replies with its sessions
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>

namespace warren::gateway::wire {

inline constexpr const char* op = "Warren-Op";
inline constexpr const char* seq = "Warren-Seq";
inline constexpr const char* claim = "Warren-Claim";
inline constexpr const char* verify = "Warren-Verify";
inline constexpr const char* status = "Warren-Status";
inline constexpr const char* next_seq = "Warren-Next-Seq";
inline constexpr const char* error = "Warren-Error";

/// Who holds a device since when. Claims are ordered (since, node, connection): the
/// greater one is newer, and the newest claim owns the device (docs/cluster.md).
struct claim_key {
  int64_t since_us = 0; ///< Unix time of the claim, microseconds
  std::string node;
  std::string connection_id;

  auto tie() const { return std::tie(since_us, node, connection_id); }
  friend bool operator<(const claim_key& a, const claim_key& b) { return a.tie() < b.tie(); }
  friend bool operator==(const claim_key& a, const claim_key& b) { return a.tie() == b.tie(); }
};

/// "<since_us>;<node>;<connection id>"
std::string to_string(const claim_key& k);
/// Nothing for text that to_string cannot have made.
std::optional<claim_key> parse_claim(std::string_view text);

/// A decimal uint64 and nothing else.
std::optional<uint64_t> parse_u64(std::string_view text);

} // namespace warren::gateway::wire
