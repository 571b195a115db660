// CAF scheduler settings for processes whose CAF workers share the cores with
// warren::net's io loops (the gateway, warren-net-echo).
#pragma once

#include <caf/actor_system_config.hpp>
#include <caf/thread_hook.hpp>

#include <cstddef>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace warren::net {

/// Moves the calling thread from SCHED_OTHER to SCHED_BATCH (keeping its nice value);
/// needs no privilege. False if the system refused (the thread then keeps its policy:
/// slower, not wrong).
///
/// A SCHED_BATCH thread that wakes up does not preempt the thread running on its core;
/// it waits for that one to block or for the tick. io loops and CAF workers hand each
/// other work all the time (data to an actor, bytes to write to a loop): with wakeup
/// preemption every hand-off costs two context switches while the other side holds one
/// item; without it the sender finishes its run and the receiver then finds many
/// items. Measured on one core (docs/benchmarks.md, run 5): plain TCP churn 0.054–0.085
/// -> 0.041–0.052 ms of server CPU per connection, gateway stream +15–45% echoes. The
/// cost: under full load a woken thread may wait up to a tick (1–4 ms) for its core;
/// on an idle core it runs at once.
inline bool set_sched_batch() noexcept {
  sched_param p{};
  p.sched_priority = 0;
  return pthread_setschedparam(pthread_self(), SCHED_BATCH, &p) == 0;
}

/// CAF's threads' nice value relative to the io loops' (worker_thread_hook).
constexpr int default_worker_nice = 5;

/// CAF's work-stealing workers, once out of work, spin briefly (aggressive polls),
/// then nap in 50 µs sleeps for up to 500 polls (moderate), and only then block on a
/// condition variable until work comes. Next to io loops on the same cores every nap
/// is a context switch that preempts a loop, and a connection's next step waits for
/// the nap to end. `moderate_polls` 0 (the default here) makes an idle worker block
/// right after its spin: measured on one core, 15–20% less server CPU per TLS churn
/// connection and the same stream throughput (docs/benchmarks.md).
///
/// `worker_nice` (default_worker_nice) lowers the priority of CAF's threads below the
/// io loops': a worker woken by a message no longer preempts a loop in the middle of a
/// TLS handshake or a batch of reads; it runs when the loop waits for the network.
/// Measured on one core: 6–8% more stream echoes and 3–5% less CPU per TLS churn
/// connection. 0 leaves the priorities alone.
///
/// `sched_batch` (default true) runs CAF's threads under SCHED_BATCH, as io_pool
/// runs its loops (set_sched_batch()).
class worker_thread_hook : public caf::thread_hook {
public:
  explicit worker_thread_hook(int nice, bool sched_batch = false) : nice_(nice), sched_batch_(sched_batch) {}
  void init(caf::actor_system&) override {}
  void thread_started() override {
    // Per thread on Linux: setpriority() with a thread id; relative to the process's
    // own nice value (raising it needs no privilege). Best effort.
    if (nice_ != 0) {
      auto tid = static_cast<id_t>(::syscall(SYS_gettid));
      (void)setpriority(PRIO_PROCESS, tid, getpriority(PRIO_PROCESS, tid) + nice_);
    }
    if (sched_batch_)
      (void)set_sched_batch();
  }
  void thread_terminates() override {}

private:
  int nice_;
  bool sched_batch_;
};

inline void tune_scheduler_for_io(caf::actor_system_config& cfg, std::size_t moderate_polls = 0,
                                  int worker_nice = default_worker_nice, bool sched_batch = true) {
  cfg.set("work-stealing.moderate-poll-attempts", moderate_polls);
  if (worker_nice != 0 || sched_batch)
    cfg.add_thread_hook<worker_thread_hook>(worker_nice, sched_batch);
}

} // namespace warren::net
