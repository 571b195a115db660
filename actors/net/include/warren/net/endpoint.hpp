// Internal: the endpoint actor, one per connection. It owns the socket (which lives
// on an io_pool loop), does the TLS handshake, reads active-once, decodes with the
// listener's codec and runs the user's protocol.
#pragma once

#include <warren/child_spec.hpp>

#include <cstddef>
#include <memory>

namespace warren::net::detail {

struct listener_state;

/// The simple_one_for_one template start function of connection supervisor `idx`;
/// its extra argument is the accepted socket (detail::socket_ptr).
start_fn endpoint_template(std::shared_ptr<listener_state> st, std::size_t idx);

} // namespace warren::net::detail
