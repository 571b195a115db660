// The messages of cluster-wide names and groups over NATS (docs/cluster-names.md,
// "Wire"), and what both layers need to read them safely.
//
//   <prefix>.name.<token>   subscribed by the node that holds the name
//     Warren-Op: call   body: the message (binary_serializer)   reply subject required
//       reply  Warren-Status: ok  body: the reply message (an error reply is a message
//              holding the caf::error) | no_such_name | bad_request (Warren-Error: why)
//     Warren-Op: cast   body: the message                       no reply
//     Warren-Op: claim  Warren-Claim: <since_us>;<node>;<actor id> [Warren-Verify: 1]
//       reply  Warren-Status: yielded (the owner's claim is newer: it let go)
//              Warren-Status: refused  Warren-Claim: <the owner's older claim>
//              Warren-Status: gone     (subscribed, but released just now)
//   <prefix>.grp.<token>    subscribed by every node with a member of the group
//     no reply subject      body: the message, fanned out to the node's members
//     a reply subject       a members query: reply body "<node>;<count>"
#pragma once

#include <warren/cluster/node.hpp>

#include <caf/actor_system.hpp>
#include <caf/message.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace warren::cluster::wire {

inline constexpr const char* op = "Warren-Op";
inline constexpr const char* claim = "Warren-Claim";
inline constexpr const char* verify = "Warren-Verify";
inline constexpr const char* status = "Warren-Status";
inline constexpr const char* error = "Warren-Error";

/// The bytes of `msg`, or nothing when a type in it cannot be serialized or the result
/// is larger than `max`.
std::optional<std::string> encode(caf::actor_system& sys, const caf::message& msg, std::size_t max);
/// The message of `data`, or nothing for bytes that are not one whole message of types
/// registered in `sys`.
std::optional<caf::message> decode(caf::actor_system& sys, std::string_view data);

/// Keeps `p` alive until the process exits.
void keep_forever(std::shared_ptr<void> p);

/// A sub_target that reaches its owner through a weak pointer and lives until the
/// process exits: libnats may run a callback for a message it dequeued just before
/// the subscription was destroyed, so the target must outlive every subscription, and
/// the owner may be gone by then.
template <class Owner>
const sub_target* weak_target(const std::shared_ptr<Owner>& owner, void (Owner::*fn)(message)) {
  struct holder {
    sub_target target;
    std::weak_ptr<Owner> owner;
    void (Owner::*fn)(message);
  };
  auto h = std::make_shared<holder>();
  h->owner = owner;
  h->fn = fn;
  h->target.ctx = h.get();
  h->target.on_message = [](void* ctx, message m) {
    auto self = static_cast<holder*>(ctx);
    if (auto o = self->owner.lock())
      ((*o).*(self->fn))(std::move(m));
  };
  const sub_target* out = &h->target;
  keep_forever(std::move(h));
  return out;
}

} // namespace warren::cluster::wire
