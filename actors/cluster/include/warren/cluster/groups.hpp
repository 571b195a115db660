// Cluster-wide process groups: OTP's pg (join, leave, get_members) plus a fan-out, for
// actors whose messages CAF can serialize (docs/cluster-names.md).
//
//   cluster::groups groups{sys, node};
//   groups.join("watchers", a);                       // a may join several times (pg counts)
//   groups.broadcast("watchers", caf::make_message(tick_atom::value, 7));
//
// A node with at least one member of a group subscribes `<prefix>.grp.<token>` once
// (not once per member) and fans each broadcast out to its members in-process. NATS's
// interest is the membership: a node that dies takes its members with its connection.
// Members leave when they exit. A broadcast is at most once per member (core NATS),
// unordered between senders, anonymous (no sender), and reaches each distinct member
// once however often it joined (as warren::send_group). Types in the message need
// inspect() and add_message_type<T>("name") on every node, as for names.hpp.
//
// The node must outlive this object. join/leave/broadcast never block; members()
// blocks for gather_window (a scatter-gather), so call it outside actors.
#pragma once

#include <warren/cluster/errors.hpp>
#include <warren/cluster/node.hpp>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/message.hpp>
#include <caf/timespan.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace warren::cluster {

struct groups_options {
  /// members(): how long to collect the other nodes' answers (a node that answers
  /// later is missing from the result).
  caf::timespan gather_window = std::chrono::milliseconds(500);
  /// members(): at most this many other nodes.
  std::size_t max_nodes = 1024;
  /// Broadcasts larger than this, serialized, are refused (bad_message); larger ones
  /// from the wire are dropped.
  std::size_t max_message_size = 1 << 20;
};

struct groups_counters {
  std::atomic<uint64_t> broadcasts_out{0}; ///< broadcasts published to other nodes
  std::atomic<uint64_t> broadcasts_in{0};  ///< broadcasts received from other nodes
  std::atomic<uint64_t> delivered{0};      ///< messages enqueued to local members (both ways)
  std::atomic<uint64_t> unavailable{0};    ///< broadcasts not published: NATS down
  std::atomic<uint64_t> bad_input{0};      ///< malformed messages from the wire, dropped
};

/// members(): how many memberships (joins) a node has in the group.
struct group_node {
  std::string node;
  std::size_t members = 0;
};

class groups {
public:
  groups(caf::actor_system& sys, node& n, groups_options opts = {});
  ~groups();
  groups(const groups&) = delete;
  groups& operator=(const groups&) = delete;

  /// One more membership of `who` in `group` (pg:join). invalid_argument for an empty
  /// group or a null actor. The first local member subscribes the group's subject.
  caf::error join(const std::string& group, const caf::actor& who);

  /// One membership less (pg:leave); not_joined when `who` has none. The last local
  /// member's leave unsubscribes.
  caf::error leave(const std::string& group, const caf::actor& who);

  /// Enqueues `msg` once to every distinct member on every node: this node's in-process,
  /// the others' through one NATS publish. bad_message (nobody got it) when it cannot be
  /// serialized; cluster_unavailable when NATS is down (this node's members got it).
  caf::error broadcast(const std::string& group, const caf::message& msg);

  /// This node's members, once per join (pg:get_local_members).
  std::vector<caf::actor> local_members(const std::string& group) const;

  /// The groups with a member on this node.
  std::vector<std::string> which_groups() const;

  /// Every node with members, this one first when it has any, and how many memberships
  /// each has (pg:get_members, as counts: the actors of other nodes have no handles
  /// here; use a broadcast to reach them). Blocks for gather_window at most; with NATS
  /// down, only this node.
  std::vector<group_node> members(const std::string& group);

  const groups_counters& counters() const;

  struct core;

private:
  std::shared_ptr<core> core_;
};

} // namespace warren::cluster
