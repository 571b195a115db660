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

#include <warren/cluster/claim.hpp>

namespace warren::gateway::wire {

inline constexpr const char* op = "Warren-Op";
inline constexpr const char* seq = "Warren-Seq";
inline constexpr const char* claim = "Warren-Claim";
inline constexpr const char* verify = "Warren-Verify";
inline constexpr const char* status = "Warren-Status";
inline constexpr const char* next_seq = "Warren-Next-Seq";
inline constexpr const char* error = "Warren-Error";

// Claims (docs/cluster.md, "Claims"): warren::cluster's, where the id is the
// connection id and the newest claim owns the device.
using cluster::claim_key;
using cluster::parse_claim;
using cluster::parse_u64;
using cluster::to_string;

} // namespace warren::gateway::wire
