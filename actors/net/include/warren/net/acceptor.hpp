// Internal: acceptor actors. Acceptor i accepts on listen socket i mod n, on that
// socket's loop, and hands each socket to connection supervisor i. It never does the
// TLS handshake (the endpoint does), so a slow client cannot stall accepting. Over TLS
// it accepts only while a handshake slot is free (listener_options::max_handshakes).
#pragma once

#include <warren/child_spec.hpp>

#include <cstddef>
#include <memory>

namespace warren::net::detail {

struct listener_state;

/// Start function of acceptor `idx` (its connection supervisor must be running).
start_fn acceptor_start(std::shared_ptr<listener_state> st, std::size_t idx);

} // namespace warren::net::detail
