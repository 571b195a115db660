// The contract between device sessions and backends (Owsla's producer and consumer
// pool), shared by every backend (local, echo, amqp) and by the gateway.
//
//   device -> backend: the session sends its producer
//       (publish_atom, std::vector<device_message>)            sender = the session
//     and the producer, once the backend has *accepted* them (local: handed over;
//     amqp: the broker confirmed), sends back to that sender
//       (accepted_atom, uint64_t connection_seq)               cumulative, per session
//     where connection_seq is the highest from_device_seq now accepted. Until then
//     the session holds the device's ACKs (codec frame) and, past a bound, stops
//     reading: a slow or absent backend is backpressure, never loss. The session keeps
//     the publish message until then (to publish it again to a restarted producer): a
//     producer that takes the batch by mutable reference gets a copy of it (CAF's copy
//     on write); a const reference costs nothing.
//     A backend may run several producers (backend_spec::producers): a session then
//     publishes to producer_name_at(producer_name, producer_index(connection id, n)),
//     always the same one for a connection.
//
//   backend -> device, one message: a consumer finds the session through a `router`
//     and sends
//       request(session, timeout, deliver_atom, to_device_message)
//     the session answers `delivered_atom` once the message is written to its
//     connection's outbound queue (or ordered behind a to_device_seq gap), or an
//     error (no such device, closing): the consumer then rejects or dead-letters the
//     message per backend; it is never dropped silently. (local and amqp consumers.)
//
//   backend -> device, a batch, one-way (for a backend that needs no per-message
//     answer, e.g. echo): a sender that found the session through the `router` sends
//       (deliver_atom, std::vector<to_device_message>)
//     or, when it is also that session's producer, the batch with its acceptance
//       (deliver_atom, std::vector<to_device_message>, accepted_atom, uint64_t connection_seq)
//     which the session handles as the batch followed by (accepted_atom, connection_seq).
//     The session queues every message of the batch in order in one pass (to_device_seq
//     rules as for single messages; `kind`/`target` are not read: the batch was routed
//     already, and may be left empty). No answer: a message the session cannot queue
//     (closing) is counted as undeliverable, nothing else.
#pragma once

#include <warren/child_spec.hpp>

#include <caf/actor.hpp>
#include <caf/atom.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace warren::backend {

/// A message from a device on its way to the backend.
struct device_message {
  std::string connection_id;          ///< UUID v4 of the connection
  std::string device_id;              ///< may be empty (device not identified)
  uint64_t from_device_seq = 0;       ///< 1, 2, 3, ... per connection
  std::optional<uint64_t> message_id; ///< codec frame: the device's DATA id
  std::string payload;
};

/// How a backend message names its device.
enum class address_kind : uint8_t { connection, device };

/// A message from the backend for one device.
struct to_device_message {
  address_kind kind = address_kind::device;
  std::string target;                    ///< connection id or device id
  std::optional<uint64_t> to_device_seq; ///< orders messages per device; none: deliver at once
  std::string payload;
};

using publish_atom = caf::atom_constant<caf::atom("bpublish")>;   // (vector<device_message>)
using accepted_atom = caf::atom_constant<caf::atom("baccepted")>; // (uint64_t connection_seq)
using deliver_atom = caf::atom_constant<caf::atom("bdeliver")>;   // (to_device_message) -> delivered_atom,
                                                                // (vector<to_device_message>[, accepted_atom,
                                                                // uint64_t]) one-way
using delivered_atom = caf::atom_constant<caf::atom("bdelivered")>; // reply to deliver_atom

/// Finds the session (endpoint actor) of a device or connection. The gateway
/// implements it over its session registry; lookups are lock-light and may run on
/// any thread.
class router {
public:
  virtual ~router() = default;
  /// The session actor, or a null handle when no such device is connected.
  virtual caf::actor find(address_kind kind, std::string_view id) const = 0;
};

/// What a backend contributes to the gateway's tree: one supervisor child (its
/// producer(s) and consumers), started before any listener, stopped after them. Its
/// producer registers itself (warren::register_name) as `producer_name`; with
/// `producers` > 1, producer i registers as producer_name_at(producer_name, i) (the
/// first one as `producer_name` itself) and each session uses one of them.
struct backend_spec {
  std::string kind; ///< "local", "echo", "amqp"
  child_spec supervisor;
  std::string producer_name = "warren.backend.producer";
  std::size_t producers = 1;
};

/// The registered name of producer `i` of a pool: `base` for 0, `base.<i>` otherwise.
std::string producer_name_at(const std::string& base, std::size_t i);

/// Which of `n` producers a connection publishes to (stable per connection id).
std::size_t producer_index(std::string_view connection_id, std::size_t n);

std::string to_string(address_kind x);

} // namespace warren::backend

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(warren::backend::device_message)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<warren::backend::device_message>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(warren::backend::to_device_message)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<warren::backend::to_device_message>)
