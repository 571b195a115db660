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
//     reading: a slow or absent backend is backpressure, never loss.
//
//   backend -> device: a consumer finds the session through a `router` and sends
//       request(session, timeout, deliver_atom, to_device_message)
//     the session answers `delivered_atom` once the message is written to its
//     connection's outbound queue (or ordered behind a to_device_seq gap), or an
//     error (no such device, closing): the consumer then rejects or dead-letters the
//     message per backend; it is never dropped silently.
#pragma once

#include <warren/child_spec.hpp>

#include <caf/actor.hpp>
#include <caf/atom.hpp>

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

using publish_atom = caf::atom_constant<caf::atom("bpublish")>;     // (vector<device_message>)
using accepted_atom = caf::atom_constant<caf::atom("baccepted")>;   // (uint64_t connection_seq)
using deliver_atom = caf::atom_constant<caf::atom("bdeliver")>;     // (to_device_message) -> delivered_atom
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
/// producer and consumers), started before any listener, stopped after them. Its
/// producer registers itself (warren::register_name) as `producer_name`.
struct backend_spec {
  std::string kind; ///< "local", "echo", "amqp"
  child_spec supervisor;
  std::string producer_name = "warren.backend.producer";
};

std::string to_string(address_kind x);

} // namespace warren::backend

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(warren::backend::device_message)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<warren::backend::device_message>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(warren::backend::to_device_message)
