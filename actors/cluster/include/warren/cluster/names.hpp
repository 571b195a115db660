// Cluster-wide names: OTP's global (register_name, whereis_name, send) for actors whose
// messages CAF can serialize (docs/cluster-names.md).
//
//   cluster::names names{sys, node};                 // node: a started cluster::node
//   names.register_name("counter", counter);         // error already_registered when held anywhere
//   auto c = names.whereis("counter");               // from any node: a caf::actor
//   self->request(c, 5s, add_atom::value, 3).then(...);   // a call; errors below
//   caf::anon_send(c, reset_atom::value);            // a cast
//
// The owner node subscribes `<prefix>.name.<token>`; NATS's interest is the directory,
// so a name whose node died (its connection gone) has no responders: no_such_name.
// Conflicts follow the gateway's claim protocol (docs/cluster.md, "Claims") with the
// opposite winner: the OLDEST claim keeps a name (first registration wins). Two
// registrations at once are settled by a verification `claim_settle` after subscribing,
// before register_name answers (and before the name takes calls). A name lost later (a
// split that healed, found when this node's NATS link comes back or at verify_interval)
// is released here and its actor receives (name_lost_atom, std::string name); the actor
// is not killed (OTP's global kills one by default: in C++ the owner decides, e.g. by
// exiting).
//
// Messages and replies cross nodes as caf::binary_serializer bytes: every type in them
// needs inspect() and a name registered with add_message_type<T>("name") in every
// node's actor_system_config. Actor handles inside messages are not supported (CAF's
// middleman is not used); the callee sees an internal actor as the sender of a remote
// call and none for a cast.
//
// Threads: the blocking calls (register_name, unregister_name) wait on a scoped actor;
// call them from outside actors, or send the same messages to service() from an actor.
// The node must outlive this object; destroy it outside actors too (it waits for its
// actor to stop).
#pragma once

#include <warren/cluster/errors.hpp>
#include <warren/cluster/node.hpp>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/timespan.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace warren::cluster {

/// (name_lost_atom, std::string name): the actor's name went to an older claim.
using name_lost_atom = caf::atom_constant<caf::atom("name_lost")>;

/// service(): (register_name_atom, std::string, caf::actor) -> unit or error.
using register_name_atom = caf::atom_constant<caf::atom("clnreg")>;
/// service(): (unregister_name_atom, std::string) -> unit or error not_registered.
using unregister_name_atom = caf::atom_constant<caf::atom("clnunreg")>;

struct names_options {
  /// The node's reply slot for this layer's requests (node::set_reply_target, 0-255).
  /// The gateway takes slots 0 up to its agent count (at most 64); one process with
  /// two layers on one node gives each its own slot.
  uint32_t reply_slot = 255;
  /// A call, or a claim, without an answer by then fails (timeout); zero: the node's
  /// request_timeout.
  caf::timespan request_timeout{0};
  /// After subscribing a newly registered name, its claim is verified this much later,
  /// which catches two registrations made at once (longer than interest propagation
  /// between NATS servers: a few ms). register_name answers after the verification.
  caf::timespan claim_settle = std::chrono::milliseconds(100);
  /// Every held name's claim is verified again this often (finds the overlap a healed
  /// split between NATS servers leaves), and always after this node's link comes back;
  /// zero: only after the link comes back.
  caf::timespan verify_interval = std::chrono::seconds(30);
  /// Messages (and replies) larger than this, serialized, are refused (bad_message);
  /// larger ones from the wire are dropped. NATS's own default max_payload is 1 MiB.
  std::size_t max_message_size = 1 << 20;
};

struct names_counters {
  std::atomic<uint64_t> calls_out{0};    ///< calls sent to other nodes
  std::atomic<uint64_t> casts_out{0};    ///< casts published to other nodes
  std::atomic<uint64_t> calls_in{0};     ///< calls from other nodes handed to a local actor
  std::atomic<uint64_t> casts_in{0};     ///< casts from other nodes handed to a local actor
  std::atomic<uint64_t> no_such_name{0}; ///< calls answered no_such_name
  std::atomic<uint64_t> timeouts{0};     ///< calls and claims without an answer in time
  std::atomic<uint64_t> unavailable{0};  ///< refused because NATS was down
  std::atomic<uint64_t> names_lost{0};   ///< names lost to an older claim after registration
  std::atomic<uint64_t> bad_input{0};    ///< malformed messages from the wire, dropped
};

class names {
public:
  names(caf::actor_system& sys, node& n, names_options opts = {});
  ~names();
  names(const names&) = delete;
  names& operator=(const names&) = delete;

  /// Registers `who` as `name` in the whole cluster; blocks for about one round trip
  /// plus claim_settle. Errors: already_registered (a live actor holds it, here or on
  /// another node, or a registration made at the same time is older), timeout (a node
  /// that subscribes it does not answer), cluster_unavailable, invalid_argument. An
  /// actor may hold several names. The name is released when `who` exits.
  caf::error register_name(const std::string& name, const caf::actor& who);

  /// Releases a name this node holds; not_registered otherwise (a name held by
  /// another node is released there).
  caf::error unregister_name(const std::string& name);

  /// A handle for `name` usable like a local actor: the registered actor itself when
  /// this node holds the name, otherwise a small proxy that sends over NATS (a request
  /// gets the reply, or no_such_name, timeout, cluster_unavailable, bad_message). The
  /// proxy resolves the name at every message, so it keeps working when the name moves
  /// to another node. Null for an empty name.
  caf::actor whereis(const std::string& name);

  /// The names this node holds, in no order.
  std::vector<std::string> registered_names() const;

  /// The actor behind this object (register_name_atom, unregister_name_atom).
  caf::actor service() const;

  const names_counters& counters() const;

  struct core;

private:
  std::shared_ptr<core> core_;
};

} // namespace warren::cluster
