// The errors of cluster-wide names and groups (names.hpp, groups.hpp): one category,
// every failure mode named, so a caller can tell "nobody holds it" from "NATS is down"
// from "no answer in time" (docs/cluster-names.md, "Errors").
#pragma once

#include <caf/atom.hpp>
#include <caf/error.hpp>

#include <cstdint>
#include <string>

namespace warren::cluster {

constexpr caf::atom_value cluster_error_category = caf::atom("cluster");

enum class cluster_errc : uint8_t {
  /// register_name: a live actor holds the name somewhere in the cluster (first
  /// registration wins, as in OTP's global).
  already_registered = 1,
  /// unregister_name: this node holds no such name.
  not_registered,
  /// A call to a name nobody holds: no node subscribes it (never registered, released,
  /// its actor died, or its node is gone), or its owner released it just now.
  no_such_name,
  /// No answer within request_timeout (the owning node or NATS is frozen, or the
  /// called actor did not reply in time).
  timeout,
  /// This node's NATS link is down: nothing was sent (never a hang).
  cluster_unavailable,
  /// The message or its reply cannot be serialized or deserialized: a type without
  /// inspect or not registered with add_message_type on both nodes, an actor handle
  /// inside it, or larger than max_message_size.
  bad_message,
  /// An empty name or group, or a null actor.
  invalid_argument,
  /// groups::leave: the actor is not a member of the group.
  not_joined,
};

std::string to_string(cluster_errc x);
caf::error make_error(cluster_errc x);
caf::error make_error(cluster_errc x, std::string what);

/// Whether `e` is `x` of this category.
inline bool is(const caf::error& e, cluster_errc x) {
  return e && e.category() == cluster_error_category && e.code() == static_cast<uint8_t>(x);
}

} // namespace warren::cluster
