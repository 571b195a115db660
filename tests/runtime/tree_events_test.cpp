// The supervision tree's event feed (warren/observe/tree_events.hpp) and the
// supervisor fields of a tree dump, on the deterministic coordinator: what a live
// view receives after its snapshot.
#include "support/sup_fixture.hpp"

#include "warren/introspection.hpp"
#include "warren/observe/tree_events.hpp"
#include "warren/supervisor.hpp"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

using namespace std::chrono_literals;
using namespace warren;
using warren::observe::tree_event;
using warren::observe::tree_event_kind;
using warren_test::sup_fixture;
using warren_test::worker_spec;

namespace {

supervisor_flags flags(restart_strategy s, int intensity = 3, caf::timespan period = 5s) {
  supervisor_flags f;
  f.strategy = s;
  f.intensity = intensity;
  f.period = period;
  return f;
}

// The events queued for `sub` (none waited for: the coordinator runs them at once).
std::vector<tree_event> drain(observe::subscription& sub) {
  std::vector<tree_event> out;
  REQUIRE(sub.next(out, 0ms));
  return out;
}

std::vector<tree_event_kind> kinds(const std::vector<tree_event>& evs) {
  std::vector<tree_event_kind> out;
  for (auto& e : evs)
    out.push_back(e.kind);
  return out;
}

// The last seq in the timeline (process-wide: earlier tests left events there).
uint64_t timeline_end() {
  auto tl = observe::timeline();
  return tl.empty() ? 0 : tl.back().seq;
}

// The timeline's events after seq `after` from supervisor `sup`.
std::vector<tree_event> timeline_of(const caf::actor& sup, uint64_t after) {
  std::vector<tree_event> out;
  for (auto& e : observe::timeline())
    if (e.seq > after && e.supervisor == sup.id())
      out.push_back(e);
  return out;
}

child_spec conn_template(std::shared_ptr<warren_test::journal> j) {
  child_spec tmpl;
  tmpl.id = "conn";
  tmpl.start = [j](const start_context& ctx) -> start_result {
    auto name = ctx.args().get_as<std::string>(0);
    return caf::actor{
        ctx.system().spawn<warren_test::test_worker>(j, name, ctx.parent(), warren_test::worker_options{})};
  };
  return tmpl;
}

} // namespace

TEST_CASE_FIXTURE(sup_fixture,
                  "a watcher sees a restart as restarting then started, numbered from its first seq") {
  auto sup = start(flags(restart_strategy::one_for_one), {worker_spec(j, "a"), worker_spec(j, "b")});
  auto sub = observe::subscribe();
  auto old = current("a");
  crash("a");
  auto evs = drain(*sub);
  REQUIRE(kinds(evs) == std::vector{tree_event_kind::restarting, tree_event_kind::started});
  CHECK(evs[0].seq == sub->first_seq() + 1);
  CHECK(evs[1].seq == sub->first_seq() + 2);
  CHECK(evs[0].supervisor == sup.id());
  CHECK(evs[0].supervisor_id == "sup");
  CHECK(evs[0].child == "a");
  CHECK(evs[0].child_actor == 0);
  CHECK(evs[0].reason == "exception: boom");
  CHECK(evs[0].restarts == 1);
  CHECK(evs[0].window == 1);
  CHECK(evs[1].child_actor == current("a").id());
  CHECK(evs[1].child_actor != old.id());
  CHECK(evs[1].restarts == 1);
  CHECK(evs[1].children == 2);
  auto line = nlohmann::json::parse(observe::to_json(evs[0]));
  CHECK(line["kind"] == "restarting");
  CHECK(line["child"] == "a");
  CHECK(line["reason"] == "exception: boom");
  CHECK(line["seq"] == evs[0].seq);
}

TEST_CASE_FIXTURE(sup_fixture,
                  "restarts are kept in the timeline with nobody watching; starts are not built") {
  REQUIRE_FALSE(observe::watched());
  auto before = timeline_end();
  auto sup = start(flags(restart_strategy::one_for_one), {worker_spec(j, "a")});
  crash("a");
  crash("a");
  auto tl = timeline_of(sup, before);
  REQUIRE(kinds(tl) == std::vector{tree_event_kind::restarting, tree_event_kind::restarting});
  CHECK(tl[0].restarts == 1);
  CHECK(tl[1].restarts == 2);
  CHECK(tl[1].window == 2);
  CHECK(tl[1].seq == tl[0].seq + 1); // seq counts them though nobody watches
  CHECK(tl[0].unix_ms > 0);
}

TEST_CASE_FIXTURE(sup_fixture, "a delayed restart is a backoff event and a tree node with the time left") {
  auto spec = worker_spec(j, "a");
  spec.delay = restart_delay::fixed(2s);
  auto sup = start(flags(restart_strategy::one_for_one, 5, 30s), {spec, worker_spec(j, "b")});
  auto sub = observe::subscribe();
  crash("a");
  auto evs = drain(*sub);
  REQUIRE(kinds(evs) == std::vector{tree_event_kind::restarting, tree_event_kind::backoff});
  CHECK(evs[1].delay_ms == 2000);
  advance(500ms);
  auto t = ask<tree_node>(sup, tree_atom::value);
  REQUIRE(t);
  CHECK(t->strategy == "one_for_one");
  CHECK(t->intensity == 5);
  CHECK(t->period_ms == 30000);
  CHECK(t->restarts_in_window == 1);
  REQUIRE(t->children.size() == 2);
  auto& a = t->children[0].id == "a" ? t->children[0] : t->children[1];
  auto& b = t->children[0].id == "a" ? t->children[1] : t->children[0];
  CHECK(a.state == child_info::status::restarting);
  CHECK(a.backoff_ms == 1500);
  CHECK(b.backoff_ms == -1);
  auto j = nlohmann::json::parse(to_json(*t));
  CHECK(j["intensity"] == 5);
  CHECK(j["restarts_in_window"] == 1);
  advance(1500ms);
  evs = drain(*sub);
  REQUIRE(kinds(evs) == std::vector{tree_event_kind::started});
  CHECK(evs[0].child == "a");
  // The window counts only restarts inside the period.
  advance(30s);
  t = ask<tree_node>(sup, tree_atom::value);
  REQUIRE(t);
  CHECK(t->restarts_in_window == 0);
}

TEST_CASE_FIXTURE(sup_fixture, "reaching the intensity is a gave_up event") {
  auto sup = start(flags(restart_strategy::one_for_one, 1), {worker_spec(j, "a")});
  auto sub = observe::subscribe();
  crash("a");
  crash("a");
  auto evs = drain(*sub);
  REQUIRE(kinds(evs) ==
          std::vector{tree_event_kind::restarting, tree_event_kind::started, tree_event_kind::gave_up});
  CHECK(evs[2].reason == "exception: boom");
  CHECK(exited(sup));
}

TEST_CASE_FIXTURE(sup_fixture, "terminate_child and delete_child are exited and removed events") {
  auto sup = start(flags(restart_strategy::one_for_one), {worker_spec(j, "a")});
  auto sub = observe::subscribe();
  CHECK_FALSE(ask_ok(sup, terminate_child_atom::value, std::string{"a"}));
  CHECK_FALSE(ask_ok(sup, delete_child_atom::value, std::string{"a"}));
  auto evs = drain(*sub);
  REQUIRE(kinds(evs) == std::vector{tree_event_kind::exited, tree_event_kind::removed});
  CHECK(evs[0].reason == "shutdown");
  CHECK(evs[1].children == 0);
}

TEST_CASE_FIXTURE(sup_fixture, "dynamic starts and ends are coalesced into counts; their restarts are not") {
  auto sup = start(flags(restart_strategy::simple_one_for_one, 5), {conn_template(j)});
  auto sub = observe::subscribe();
  for (auto name : {"w1", "w2", "w3"})
    REQUIRE(ask<caf::actor>(sup, start_child_atom::value, caf::make_message(std::string{name})));
  REQUIRE_FALSE(ask_ok(sup, terminate_child_atom::value, current("w3")));
  // The counts go out within coalesce_interval: wait for them.
  std::vector<tree_event> evs;
  for (auto until = std::chrono::steady_clock::now() + 10s;
       evs.empty() && std::chrono::steady_clock::now() < until;)
    REQUIRE(sub->next(evs, 1s));
  REQUIRE(kinds(evs) == std::vector{tree_event_kind::counts});
  CHECK(evs[0].supervisor == sup.id());
  CHECK(evs[0].children == 2);
  // A restart goes out at once, after the counts that came before it.
  REQUIRE(ask<caf::actor>(sup, start_child_atom::value, caf::make_message(std::string{"w4"})));
  crash("w1");
  evs = drain(*sub);
  REQUIRE(kinds(evs) == std::vector{tree_event_kind::counts, tree_event_kind::restarting});
  CHECK(evs[0].children == 3);
  CHECK(evs[1].dynamic);
  CHECK(evs[1].child == "conn");
  CHECK(evs[1].restarts == 1);
}

TEST_CASE_FIXTURE(sup_fixture, "a slow watcher overflows, and resyncs from a new snapshot seq") {
  auto sup = start(flags(restart_strategy::one_for_one, 10), {worker_spec(j, "a")});
  auto sub = observe::subscribe(3);
  crash("a"); // restarting, started
  crash("a"); // restarting: the 4th event does not fit
  crash("a");
  std::vector<tree_event> evs;
  CHECK_FALSE(sub->next(evs, 0ms));
  CHECK(evs.empty());
  CHECK(observe::subscription::overflows() >= 1);
  auto seq = sub->resync();
  crash("a");
  evs = drain(*sub);
  REQUIRE(kinds(evs) == std::vector{tree_event_kind::restarting, tree_event_kind::started});
  CHECK(evs[0].seq == seq + 1);
}

TEST_CASE("a subscription counts as a watcher while it lives; wake ends a wait") {
  CHECK_FALSE(observe::watched());
  auto sub = observe::subscribe();
  CHECK(observe::watched());
  std::thread t{[&] {
    std::vector<tree_event> evs;
    CHECK(sub->next(evs, 60s)); // returns on wake, not after 60 s
    CHECK(evs.empty());
  }};
  sub->wake();
  t.join();
  sub.reset();
  CHECK_FALSE(observe::watched());
}
