// The application: exit codes for a stopped tree and a tree that died of
// escalation, and SIGTERM stopping the tree in order. Real threads; every wait ends
// on an event (the tree's down message), not on time.
#include "warren/application.hpp"
#include "warren/log.hpp"

#include <caf/all.hpp>
#include <doctest/doctest.h>

#include <csignal>
#include <mutex>

using namespace warren;

namespace {

struct order_log {
  std::mutex mtx;
  std::vector<std::string> exits;
};

// A worker that records its exit reason; crashes on an int message.
child_spec recorded(std::shared_ptr<order_log> log, std::string id) {
  child_spec spec;
  spec.id = id;
  spec.start = [log, id](const start_context& ctx) -> start_result {
    // (The unused int works around CAF 0.17's null dereference for argument-less spawns.)
    auto a = ctx.system().spawn(
        [](caf::event_based_actor* self, int) -> caf::behavior {
          return {[self](int) { self->quit(caf::sec::runtime_error); }};
        },
        0);
    caf::actor_cast<caf::abstract_actor*>(a)->attach_functor([log, id](const caf::error& reason) {
      std::lock_guard<std::mutex> guard{log->mtx};
      log->exits.push_back(id + ":" + describe_exit(reason));
    });
    return a;
  };
  return spec;
}

struct app_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  std::shared_ptr<order_log> exits = std::make_shared<order_log>();
  app_fixture() { set_log_level(spdlog::level::off); }
};

} // namespace

TEST_CASE_FIXTURE(app_fixture,
                  "stop() ends run() with exit_stopped after stopping children in reverse order") {
  application app{sys, "app", false};
  REQUIRE_FALSE(app.start({}, {recorded(exits, "a"), recorded(exits, "b")}));
  app.stop();
  CHECK(app.run() == application::exit_stopped);
  CHECK(describe_exit(app.exit_reason()) == "shutdown");
  CHECK(exits->exits == std::vector<std::string>{"b:shutdown", "a:shutdown"});
}

TEST_CASE_FIXTURE(app_fixture, "a tree that dies of escalation ends run() with exit_failed") {
  application app{sys, "app", false};
  supervisor_flags flags;
  flags.intensity = 0;
  REQUIRE_FALSE(app.start(flags, {recorded(exits, "a")}));
  auto kids = sup::which_children(sys, app.top());
  REQUIRE(kids);
  caf::anon_send(kids->front().handle, 1);
  CHECK(app.run() == application::exit_failed);
  CHECK(describe_exit(app.exit_reason()) == "shutdown");
}

TEST_CASE_FIXTURE(app_fixture, "a failed start reports exit_start_failed") {
  application app{sys, "app", false};
  child_spec bad;
  bad.id = "bad";
  bad.start = [](const start_context&) -> start_result { return make_error(exit_code::bad_start, "no"); };
  CHECK(app.start({}, {bad}) == make_error(sup_errc::start_failed));
  CHECK(app.run() == application::exit_start_failed);
}

TEST_CASE_FIXTURE(app_fixture, "SIGTERM stops the tree in order") {
  application app{sys, "app", true};
  REQUIRE_FALSE(app.start({}, {recorded(exits, "a"), recorded(exits, "b")}));
  std::raise(SIGTERM); // handlers are installed by start()
  CHECK(app.run() == application::exit_stopped);
  CHECK(exits->exits == std::vector<std::string>{"b:shutdown", "a:shutdown"});
}
