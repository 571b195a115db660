// warren::net::io_pool and the scheduler tuning: which scheduling policy the io loops
// and CAF's workers run under (net/scheduler.hpp), read back from the threads.
#include <warren/net/io_pool.hpp>
#include <warren/net/scheduler.hpp>

#include <asio/post.hpp>
#include <caf/all.hpp>
#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <sched.h>

namespace net = warren::net;

namespace {

/// The policy of loop `i`'s thread, read on that thread.
int loop_policy(net::io_pool& pool, std::size_t i) {
  std::promise<int> p;
  auto f = p.get_future();
  asio::post(pool.at(i), [&p] { p.set_value(sched_getscheduler(0)); });
  REQUIRE(f.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
  return f.get();
}

/// The policy of the CAF worker that runs an actor.
int worker_policy(caf::actor_system_config& cfg) {
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  // One (unused) argument: CAF 0.17 binds a null tuple for an actor spawned without
  // any (UBSan reports it).
  auto probe = sys.spawn([](caf::event_based_actor*,
                            int) -> caf::behavior { return {[](int) { return sched_getscheduler(0); }}; },
                         0);
  int policy = -1;
  self->request(probe, std::chrono::seconds(30), 0)
      .receive([&](int x) { policy = x; }, [&](caf::error& e) { FAIL(to_string(e)); });
  self->send_exit(probe, caf::exit_reason::user_shutdown);
  return policy;
}

} // namespace

// "Not asked" means the thread keeps the policy it inherits from this one (SCHED_OTHER,
// unless the tests themselves run under another policy).
TEST_CASE("io loops run under SCHED_BATCH by default, and keep their policy when asked") {
  {
    net::io_pool pool{2};
    CHECK(loop_policy(pool, 0) == SCHED_BATCH);
    CHECK(loop_policy(pool, 1) == SCHED_BATCH);
  }
  net::io_pool plain{1, false};
  CHECK(loop_policy(plain, 0) == sched_getscheduler(0));
}

TEST_CASE("tune_scheduler_for_io puts CAF's workers under SCHED_BATCH unless told not to") {
  {
    caf::actor_system_config cfg;
    cfg.set("scheduler.max-threads", 1);
    net::tune_scheduler_for_io(cfg);
    CHECK(worker_policy(cfg) == SCHED_BATCH);
  }
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 1);
  net::tune_scheduler_for_io(cfg, 0, net::default_worker_nice, false);
  CHECK(worker_policy(cfg) == sched_getscheduler(0));
}
