// CAF scheduler settings for processes whose CAF workers share the cores with
// warren::net's io loops (the gateway, warren-net-echo).
#pragma once

#include <caf/actor_system_config.hpp>

#include <cstddef>

namespace warren::net {

/// CAF's work-stealing workers, once out of work, spin briefly (aggressive polls),
/// then nap in 50 µs sleeps for up to 500 polls (moderate), and only then block on a
/// condition variable until work comes. Next to io loops on the same cores every nap
/// is a context switch that preempts a loop, and a connection's next step waits for
/// the nap to end. `moderate_polls` 0 (the default here) makes an idle worker block
/// right after its spin: measured on one core, 15–20% less server CPU per TLS churn
/// connection and the same stream throughput (docs/benchmarks.md).
inline void tune_scheduler_for_io(caf::actor_system_config& cfg, std::size_t moderate_polls = 0) {
  cfg.set("work-stealing.moderate-poll-attempts", moderate_polls);
}

} // namespace warren::net
