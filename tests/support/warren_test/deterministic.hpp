// A CAF actor system on the deterministic test coordinator, for doctest: no worker
// threads, messages run only when the test says so, and time moves only when the test
// advances it. Tests drive it with run() and advance(), and observe actors with a
// probe (a scoped_actor whose mailbox the test inspects).
#pragma once

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/scoped_actor.hpp>

#include <chrono>

namespace warren_test {

struct deterministic_config : caf::actor_system_config {
  deterministic_config() {
    set("scheduler.policy", caf::atom("testing"));
    set("logger.verbosity", caf::atom("quiet"));
  }
};

struct deterministic {
  deterministic_config cfg;
  caf::actor_system sys{cfg};
  caf::scheduler::test_coordinator& sched = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());

  /// Runs every ready actor until none is left. Returns how many jobs ran.
  size_t run() { return sched.run(); }

  /// Moves the test clock forward, fires the timers that fall due, and runs.
  size_t advance(caf::timespan d) {
    auto n = sched.advance_time(d);
    run();
    return n;
  }

  /// Runs, then fires pending timers one by one (in deadline order) until nothing
  /// is left to do.
  void run_all_timers() {
    run();
    while (sched.trigger_timeout())
      run();
  }

  ~deterministic() { run(); }
};

} // namespace warren_test
