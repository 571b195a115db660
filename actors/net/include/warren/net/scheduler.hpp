// CAF scheduler settings for processes whose CAF workers share the cores with
// warren::net's io loops (the gateway, warren-net-echo).
#pragma once

#include <caf/actor_system_config.hpp>
#include <caf/thread_hook.hpp>

#include <cstddef>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace warren::net {

/// CAF's work-stealing workers, once out of work, spin briefly (aggressive polls),
/// then nap in 50 µs sleeps for up to 500 polls (moderate), and only then block on a
/// condition variable until work comes. Next to io loops on the same cores every nap
/// is a context switch that preempts a loop, and a connection's next step waits for
/// the nap to end. `moderate_polls` 0 (the default here) makes an idle worker block
/// right after its spin: measured on one core, 15–20% less server CPU per TLS churn
/// connection and the same stream throughput (docs/benchmarks.md).
///
/// `worker_nice` (default 5) lowers the priority of CAF's threads below the io
/// loops': a worker woken by a message no longer preempts a loop in the middle of a
/// TLS handshake or a batch of reads; it runs when the loop waits for the network.
/// Measured on one core: 6–8% more stream echoes and 3–5% less CPU per TLS churn
/// connection. 0 leaves the priorities alone.
class worker_nice_hook : public caf::thread_hook {
public:
  explicit worker_nice_hook(int nice) : nice_(nice) {}
  void init(caf::actor_system&) override {}
  void thread_started() override {
    // Per thread on Linux: setpriority() with a thread id; relative to the process's
    // own nice value (raising it needs no privilege). Best effort.
    auto tid = static_cast<id_t>(::syscall(SYS_gettid));
    (void)setpriority(PRIO_PROCESS, tid, getpriority(PRIO_PROCESS, tid) + nice_);
  }
  void thread_terminates() override {}

private:
  int nice_;
};

inline void tune_scheduler_for_io(caf::actor_system_config& cfg, std::size_t moderate_polls = 0,
                                  int worker_nice = 5) {
  cfg.set("work-stealing.moderate-poll-attempts", moderate_polls);
  if (worker_nice != 0)
    cfg.add_thread_hook<worker_nice_hook>(worker_nice);
}

} // namespace warren::net
