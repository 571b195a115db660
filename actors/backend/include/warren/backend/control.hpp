// Additions to the session/backend contract of messages.hpp (additive: nothing in
// messages.hpp changes): the errors a session or consumer answers deliver_atom with,
// and the producer's flush request used by a graceful stop.
#pragma once

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/make_message.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace warren::backend {

constexpr caf::atom_value backend_error_category = caf::atom("backend");

enum class backend_errc : uint8_t {
  no_such_device = 1, ///< no session for that connection id / device id
  closing,            ///< the session is closing; the message was not queued
  bad_message,        ///< cannot be encoded for the device (e.g. a line containing LF)
  no_consumer,        ///< the backend has no consumer running
  // Another node holds the device (docs/cluster.md). Neither means it was delivered:
  // a backend keeps the message (AMQP requeues it); the admin API answers 503 / 504.
  cluster_unavailable, ///< this node cannot reach the cluster now (NATS down or reconnecting)
  no_answer,           ///< the owning node did not answer within the cluster's request timeout
};

/// The backend_errc of `err`, or nothing when it is another kind of error.
std::optional<backend_errc> backend_error(const caf::error& err);

std::string to_string(backend_errc x);
caf::error make_error(backend_errc x);
caf::error make_error(backend_errc x, std::string what);

/// (flush_atom) -> unit: the producer answers once everything it received before has
/// been handed over (local: the sink is flushed; amqp: confirms arrived or timed out).
using flush_atom = caf::atom_constant<caf::atom("bflush")>;

} // namespace warren::backend
