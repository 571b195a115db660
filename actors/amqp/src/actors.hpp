// Internal: the producer and consumer actors and the messages their threads send them.
#pragma once

#include <warren/amqp/amqp.hpp>

#include <caf/all.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace warren::amqp::detail {

// thread -> producer actor
using confirmed_atom = caf::atom_constant<caf::atom("aconfirmed")>; // (vector<uint64_t> ids)
using flushed_atom = caf::atom_constant<caf::atom("aflushed")>;     // (uint64_t left unconfirmed)
using flush_timeout_atom = caf::atom_constant<caf::atom("aflushto")>;
using flush_expire_atom = caf::atom_constant<caf::atom("aflushexp")>; // (uint64_t watermark)
// thread -> consumer actor
using deliveries_atom = caf::atom_constant<caf::atom("adeliver")>; // (vector<delivery>)
using requeue_atom = caf::atom_constant<caf::atom("arequeue")>;    // (uint64_t gen, uint64_t tag)

/// One message read from the to-device queue.
struct delivery {
  uint64_t generation = 0; ///< which connection of the consumer it came on
  uint64_t tag = 0;        ///< delivery tag on that connection's channel
  bool redelivered = false;
  std::string error; ///< non-empty: the headers name no target (dead-letter it)
  backend::to_device_message msg;
};

caf::actor spawn_producer(caf::actor_system& sys, const options& opts);
caf::actor spawn_consumer(caf::actor_system& sys, const options& opts,
                          std::shared_ptr<backend::router> router, unsigned index);

} // namespace warren::amqp::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<warren::amqp::detail::delivery>)
