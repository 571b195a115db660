// The gateway on a Warren cluster (docs/cluster.md): NATS subject interest is the
// cluster-wide device directory. A session's node subscribes warren.conn.<id> while
// the connection lives and warren.dev.<token> once its claim on the device is settled
// with the other nodes; a delivery to a device that is not connected here is a NATS
// request to its subject, answered by the owning session; "no responders" means it is
// connected nowhere.
//
//   cluster_directory   the NATS node, the subjects, the inbound callbacks (libnats
//                       delivery threads: parse, find the local session, hand over by
//                       message), the counters
//   cluster agents      actors that send this node's requests (deliveries for
//                       devices elsewhere, claims) and match the replies; a device's
//                       requests always go through the same agent
//   cluster peers       one actor: heartbeats, the view of the other nodes, the
//                       scatter-gather answers, re-verification after a split
#pragma once

#include "cluster_wire.hpp"
#include "registry.hpp"

#include <warren/backend/messages.hpp>
#include <warren/child_spec.hpp>
#include <warren/cluster/node.hpp>
#include <warren/log.hpp>

#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/timespan.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace warren::gateway {

struct cluster_config {
  bool enabled = false;
  cluster::options nats;
  /// After a session subscribed its device it asks once more, this much later, whether
  /// another node claimed the same device meanwhile (two claims at once, each seeing
  /// no owner): longer than NATS's interest propagation between servers (ms).
  caf::timespan claim_settle = std::chrono::milliseconds(100);
  caf::timespan heartbeat_interval = std::chrono::seconds(1);
  /// A node not heard for this long is shown as lost; when it is heard again, both
  /// sides verify the claims made meanwhile (a healed split).
  caf::timespan node_timeout = std::chrono::seconds(3);
  /// Request actors (0: two).
  std::size_t agents = 0;
  /// GET /v1/connections?scope=cluster: at most this many sessions from each node.
  std::size_t list_limit = 1000;
};

struct cluster_counters {
  std::atomic<uint64_t> requests_out{0};   ///< deliveries sent to other nodes
  std::atomic<uint64_t> delivered_out{0};  ///< ... that the owning session accepted
  std::atomic<uint64_t> refused_out{0};    ///< ... that it refused (closing, bad message)
  std::atomic<uint64_t> no_responders{0};  ///< ... for a device connected nowhere
  std::atomic<uint64_t> timeouts{0};       ///< requests without an answer in time
  std::atomic<uint64_t> unavailable{0};    ///< requests not sent: NATS down
  std::atomic<uint64_t> requests_in{0};    ///< deliveries from other nodes to sessions here
  std::atomic<uint64_t> takeovers_out{0};  ///< devices this node took from another node
  std::atomic<uint64_t> takeovers_in{0};   ///< devices another node took from this one
  std::atomic<uint64_t> claims_lost{0};    ///< sessions closed because a newer claim exists elsewhere
  std::atomic<uint64_t> bad_input{0};      ///< malformed messages on warren subjects (dropped)
  std::atomic<uint64_t> name_conflicts{0}; ///< heartbeats of another process under this node's name
};

// Messages between the directory, the agents and the sessions.
/// to a session: (cluster_deliver_atom, to_device_message, std::string reply)
using cluster_deliver_atom = caf::atom_constant<caf::atom("cldeliver")>;
/// to a session: (cluster_claim_atom, std::string claim, std::string reply) another
/// node claims the session's device
using cluster_claim_atom = caf::atom_constant<caf::atom("clclaim")>;
/// session -> agent: (claim_atom, std::string device_id, std::string claim, bool verify)
/// agent -> session: (claim_atom, std::string status, uint64_t next_seq, bool verify)
///   status: free (no owner), yielded (the owner closed; next_seq is its next
///   to_device_seq), refused (a newer claim owns it), timeout, unavailable
using claim_atom = caf::atom_constant<caf::atom("clclaimreq")>;
/// to every session: (reverify_atom, int64_t since_us) verify claims made since then
using reverify_atom = caf::atom_constant<caf::atom("clreverify")>;

class cluster_directory {
public:
  /// `registry` holds this directory (set_cluster) and so outlives it.
  cluster_directory(cluster_config cfg, session_registry& registry);
  ~cluster_directory();

  /// Connects to NATS (in the background when no server answers yet).
  void start(caf::actor_system& sys);
  /// Leaves: closes the NATS link; no callback reaches the actor system after this.
  void stop();

  const cluster_config& cfg() const { return cfg_; }
  cluster::node& node() { return *node_; }
  const cluster::node& node() const { return *node_; }
  const std::string& node_name() const { return cfg_.nats.node_name; }
  cluster_counters& counters() { return counters_; }
  const cluster_counters& counters() const { return counters_; }
  /// Microseconds since the epoch when this node started.
  int64_t started_us() const { return started_us_; }

  std::string subject(backend::address_kind kind, std::string_view id) const;
  cluster::subscription subscribe(backend::address_kind kind, std::string_view id);

  /// The agent that sends requests for `id` (always the same one; while it restarts,
  /// the next running one), or a null handle when none runs.
  caf::actor agent_for(std::string_view id) const;
  std::size_t agents() const { return agent_names_.size(); }
  static std::string agent_name(std::size_t i);

  /// Delivers to a device held by another node and waits for the owning session's
  /// answer (at most request_timeout), on the calling thread: for a caller that blocks
  /// anyway (the admin API), it saves the hops through an agent. None when delivered,
  /// else the agents' errors (no_such_device, closing, bad_message, no_answer,
  /// cluster_unavailable). Not from an actor.
  caf::error deliver_blocking(const backend::to_device_message& m);

  /// A claim by this node for connection `conn_id`, made now.
  wire::claim_key claim(std::string_view conn_id, int64_t since_us) const;

  /// Publishes a reply (no-op without a reply subject).
  void reply(const std::string& to, std::span<const cluster::header> headers, std::string_view data = {});

  /// The supervisor of the agents and the peers actor (a child of the gateway's tree).
  child_spec supervisor_child();

  session_registry& registry() { return *registry_; }

  /// What the heartbeats tell of another node.
  struct peer {
    std::chrono::steady_clock::time_point last_seen{};
    int64_t last_seen_us = 0;
    int64_t started_us = 0;
    bool lost = false;
    int64_t lost_since_us = 0; ///< its last heartbeat before it went silent
  };
  std::map<std::string, peer> peers_view() const;
  /// A heartbeat of `name`. When claims made here may overlap claims made there
  /// unseen, the time since which they may: when it went silent, for a node back after
  /// being lost; when it started, for a node heard for the first time (or a new
  /// process under its name), which may have run on the far side of a split all along.
  std::optional<int64_t> saw_peer(const std::string& name, int64_t started_us);
  /// Marks the nodes silent for node_timeout as lost.
  void mark_lost(std::chrono::steady_clock::time_point now);

  /// The local sessions as JSON (for warren.nodes.connections); set by the gateway.
  std::function<std::string(std::size_t limit)> list_sessions;
  /// This node's view as JSON (GET /v1/cluster, warren.nodes.info).
  std::string info_json() const;

private:
  static void on_device(void* ctx, cluster::message m);
  static void on_connection(void* ctx, cluster::message m);
  void inbound(backend::address_kind kind, cluster::message m);
  void bad_input(std::string_view subject, std::string_view why, const cluster::message& m);

  cluster_config cfg_;
  session_registry* registry_; ///< owns us (no shared_ptr: that would be a cycle)
  std::unique_ptr<cluster::node> node_;
  std::atomic<caf::actor_system*> sys_{nullptr};
  std::vector<std::string> agent_names_; ///< "warren.cluster.agent.<i>", built once
  std::string dev_prefix_, conn_prefix_;
  cluster::sub_target dev_target_, conn_target_;
  cluster::sub_target node_targets_[3]; ///< heartbeat, info, connections
  std::vector<cluster::subscription> node_subs_;
  mutable std::mutex peers_mtx_;
  std::map<std::string, peer> peers_;
  cluster_counters counters_;
  int64_t started_us_ = 0;
  log_limit bad_log_;
};

using cluster::unix_us;

} // namespace warren::gateway
