// Supervisor semantics, checked against OTP's supervisor (supervisor.erl, OTP 25)
// on the deterministic coordinator: which children restart, in which order, with which
// identities, and how the supervisor itself ends. What needs real threads (a dropped
// supervisor, start_link's wait for a failed start) runs on a threaded system, waiting
// on events.
#include "support/sup_fixture.hpp"

#include "warren/exit.hpp"
#include "warren/registry.hpp"
#include "warren/server.hpp"
#include "warren/supervisor.hpp"

#include <doctest/doctest.h>

#include <condition_variable>
#include <mutex>

using namespace std::chrono_literals;
using namespace warren;
using warren_test::sup_fixture;
using warren_test::worker_spec;
using strs = std::vector<std::string>;

namespace {

supervisor_flags flags(restart_strategy s, int intensity = 1, caf::timespan period = 5s) {
  supervisor_flags f;
  f.strategy = s;
  f.intensity = intensity;
  f.period = period;
  return f;
}

} // namespace

TEST_CASE_FIXTURE(sup_fixture, "children start in order and stop in reverse order") {
  auto sup = start(flags(restart_strategy::one_for_one),
                   {worker_spec(j, "a"), worker_spec(j, "b"), worker_spec(j, "c")});
  CHECK(j->take() == strs{"start:a", "start:b", "start:c"});
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  run();
  CHECK(j->take() == strs{"exit:c:shutdown", "exit:b:shutdown", "exit:a:shutdown"});
  auto reason = exited(sup);
  REQUIRE(reason);
  CHECK(describe_exit(*reason) == "shutdown");
}

TEST_CASE_FIXTURE(sup_fixture, "one_for_one restarts only the failed child") {
  auto sup = start(flags(restart_strategy::one_for_one),
                   {worker_spec(j, "a"), worker_spec(j, "b"), worker_spec(j, "c")});
  auto a = current("a"), b = current("b"), c = current("c");
  j->take();
  crash("b");
  CHECK(j->take() == strs{"exit:b:exception: boom", "start:b"});
  CHECK(current("a") == a);
  CHECK(current("b") != b);
  CHECK(current("c") == c);
  auto kids = children(sup);
  REQUIRE(kids.size() == 3);
  CHECK(kids[1].id == "b");
  CHECK(kids[1].handle == current("b"));
  CHECK(kids[1].restarts == 1);
  CHECK_FALSE(exited(sup));
}

TEST_CASE_FIXTURE(sup_fixture, "one_for_all stops the others in reverse order, then starts all in order") {
  auto sup = start(flags(restart_strategy::one_for_all),
                   {worker_spec(j, "a"), worker_spec(j, "b"), worker_spec(j, "c")});
  auto a = current("a"), c = current("c");
  j->take();
  crash("b");
  CHECK(j->take() == strs{"exit:b:exception: boom", "exit:c:shutdown", "exit:a:shutdown", "start:a",
                          "start:b", "start:c"});
  CHECK(current("a") != a);
  CHECK(current("c") != c);
  CHECK(counts(sup) == child_counts{3, 3, 0, 3});
}

TEST_CASE_FIXTURE(sup_fixture, "rest_for_one restarts the failed child and the ones started after it") {
  auto sup = start(flags(restart_strategy::rest_for_one),
                   {worker_spec(j, "a"), worker_spec(j, "b"), worker_spec(j, "c"), worker_spec(j, "d")});
  auto a = current("a");
  j->take();
  crash("b");
  CHECK(j->take() == strs{"exit:b:exception: boom", "exit:d:shutdown", "exit:c:shutdown", "start:b",
                          "start:c", "start:d"});
  CHECK(current("a") == a);
}

TEST_CASE_FIXTURE(sup_fixture, "one_for_all restart counts once and removes temporary bystanders") {
  auto sup = start(flags(restart_strategy::one_for_all, 1),
                   {worker_spec(j, "a"), worker_spec(j, "t", restart_type::temporary), worker_spec(j, "c")});
  j->take();
  crash("a");
  CHECK(j->take() ==
        strs{"exit:a:exception: boom", "exit:c:shutdown", "exit:t:shutdown", "start:a", "start:c"});
  auto kids = children(sup);
  REQUIRE(kids.size() == 2);
  CHECK(kids[0].id == "c");
  CHECK(kids[1].id == "a");
  CHECK_FALSE(exited(sup)); // one incident = one restart, within intensity 1
}

TEST_CASE_FIXTURE(sup_fixture, "restart types: transient and temporary") {
  auto sup = start(flags(restart_strategy::one_for_one, 10),
                   {worker_spec(j, "p"), worker_spec(j, "tr", restart_type::transient),
                    worker_spec(j, "tm", restart_type::temporary)});
  j->take();
  SUBCASE("a permanent child exiting normally is restarted") {
    caf::anon_send(current("p"), warren_test::finish_atom::value);
    run();
    CHECK(j->take() == strs{"exit:p:normal", "start:p"});
  }
  SUBCASE("a transient child is not restarted after normal, shutdown or {shutdown, R}") {
    caf::anon_send(current("tr"), warren_test::finish_with_atom::value, std::string{"done"});
    run();
    CHECK(j->take() == strs{"exit:tr:{shutdown, done}"});
    auto kids = children(sup);
    CHECK(kids[1].id == "tr");
    CHECK(kids[1].state == child_info::status::undefined);
    CHECK_FALSE(kids[1].handle);
    CHECK(counts(sup) == child_counts{3, 2, 0, 3});
  }
  SUBCASE("a transient child is restarted after a crash") {
    crash("tr");
    CHECK(j->take() == strs{"exit:tr:exception: boom", "start:tr"});
  }
  SUBCASE("a temporary child is never restarted and its spec is removed") {
    crash("tm");
    CHECK(j->take() == strs{"exit:tm:exception: boom"});
    CHECK(counts(sup) == child_counts{2, 2, 0, 2});
  }
}

TEST_CASE_FIXTURE(sup_fixture, "intensity: at the limit the supervisor lives, one over it gives up") {
  auto sup = start(flags(restart_strategy::one_for_one, 3, 5s), {worker_spec(j, "a"), worker_spec(j, "b")});
  for (int i = 0; i < 3; ++i) {
    crash("a");
    advance(1s);
  }
  CHECK_FALSE(exited(sup));
  j->take();
  crash("a"); // 4 restarts within 5 s: more than 3
  CHECK(j->take() == strs{"exit:a:exception: boom", "exit:b:shutdown"});
  auto reason = exited(sup);
  REQUIRE(reason);
  CHECK(*reason == caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(sup_fixture, "intensity 0 gives up at the first crash") {
  auto sup = start(flags(restart_strategy::one_for_one, 0), {worker_spec(j, "a")});
  crash("a");
  auto reason = exited(sup);
  REQUIRE(reason);
  CHECK(describe_exit(*reason) == "shutdown");
}

TEST_CASE_FIXTURE(sup_fixture, "the period window slides") {
  auto sup = start(flags(restart_strategy::one_for_one, 1, 5s), {worker_spec(j, "a")});
  crash("a");
  advance(5s + 1ms); // the first restart is out of the window now
  crash("a");
  CHECK_FALSE(exited(sup));
  advance(4s); // the second is still inside
  crash("a");
  CHECK(exited(sup));
}

TEST_CASE_FIXTURE(sup_fixture, "invalid flags and specs are rejected with typed errors") {
  auto f = flags(restart_strategy::one_for_one);
  f.intensity = -1;
  CHECK(start_supervisor(sys, f, {}).error() == make_error(sup_errc::invalid_flags));
  f = flags(restart_strategy::one_for_one);
  f.period = 0s;
  CHECK(start_supervisor(sys, f, {}).error() == make_error(sup_errc::invalid_flags));
  auto dup =
      start_supervisor(sys, flags(restart_strategy::one_for_one), {worker_spec(j, "a"), worker_spec(j, "a")});
  CHECK(dup.error() == make_error(sup_errc::invalid_spec));
  auto sig = worker_spec(j, "s", restart_type::permanent);
  sig.significant = true;
  auto f2 = flags(restart_strategy::one_for_one);
  f2.auto_shutdown = auto_shutdown::any_significant;
  CHECK(start_supervisor(sys, f2, {sig}).error() == make_error(sup_errc::invalid_spec));
  auto sofo = flags(restart_strategy::simple_one_for_one);
  CHECK(start_supervisor(sys, sofo, {}).error() == make_error(sup_errc::invalid_spec));
  sofo.auto_shutdown = auto_shutdown::any_significant;
  CHECK(start_supervisor(sys, sofo, {worker_spec(j, "w")}).error() == make_error(sup_errc::invalid_flags));
  run();
  CHECK(j->take().empty());
}

TEST_CASE_FIXTURE(sup_fixture, "a restart that fails is retried, each try counting as a restart") {
  auto sup = start(flags(restart_strategy::one_for_one, 3), {worker_spec(j, "a")});
  j->take();
  SUBCASE("retries succeed within the intensity") {
    j->fail_starts["a"] = 2;
    crash("a");
    CHECK(j->take() == strs{"exit:a:exception: boom", "startfail:a", "startfail:a", "start:a"});
    CHECK_FALSE(exited(sup));
  }
  SUBCASE("a child that never starts stops the supervisor after exactly `intensity` attempts") {
    j->fail_starts["a"] = 100;
    crash("a");
    CHECK(j->take() == strs{"exit:a:exception: boom", "startfail:a", "startfail:a", "startfail:a"});
    CHECK(exited(sup));
  }
}

TEST_CASE_FIXTURE(sup_fixture, "one_for_all retry leaves later children undefined while retrying") {
  auto sup = start(flags(restart_strategy::one_for_all, 5),
                   {worker_spec(j, "a"), worker_spec(j, "b"), worker_spec(j, "c")});
  j->take();
  j->fail_starts["b"] = 1;
  crash("a");
  CHECK(j->take() == strs{"exit:a:exception: boom", "exit:c:shutdown", "exit:b:shutdown", "start:a",
                          "startfail:b", "exit:a:shutdown", "start:a", "start:b", "start:c"});
  CHECK(counts(sup).active == 3);
}

TEST_CASE_FIXTURE(sup_fixture, "shutdown: a child ignoring the request is killed after its timeout") {
  auto stubborn = worker_spec(j, "s", restart_type::permanent, {true});
  stubborn.shutdown = shutdown_spec::timeout(2s);
  auto sup = start(flags(restart_strategy::one_for_one), {worker_spec(j, "a"), stubborn});
  j->take();
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  run();
  CHECK(j->take() == strs{"ignored:s"});
  CHECK_FALSE(exited(sup));
  advance(1s);
  CHECK(j->take().empty());
  advance(1s);
  CHECK(j->take() == strs{"exit:s:killed", "exit:a:shutdown"});
  CHECK(exited(sup));
}

TEST_CASE_FIXTURE(sup_fixture, "shutdown: brutal_kill kills at once; infinity waits") {
  auto brutal = worker_spec(j, "b", restart_type::permanent, {true});
  brutal.shutdown = shutdown_spec::brutal_kill();
  auto patient = worker_spec(j, "p", restart_type::permanent, {true});
  patient.shutdown = shutdown_spec::infinity();
  auto sup = start(flags(restart_strategy::one_for_one), {patient, brutal});
  j->take();
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  run();
  CHECK(j->take() == strs{"exit:b:killed", "ignored:p"});
  advance(1h);
  CHECK_FALSE(exited(sup)); // still waiting for p
  caf::anon_send(current("p"), warren_test::finish_atom::value);
  run();
  CHECK(exited(sup));
}

TEST_CASE_FIXTURE(sup_fixture,
                  "requests that arrive while the supervisor stops a child are served afterwards") {
  auto slow = worker_spec(j, "s", restart_type::permanent, {true});
  slow.shutdown = shutdown_spec::timeout(3s);
  auto sup = start(flags(restart_strategy::one_for_one), {worker_spec(j, "a"), slow});
  j->take();
  auto term = self->request(sup, caf::infinite, terminate_child_atom::value, std::string{"s"});
  auto which = self->request(sup, caf::infinite, which_children_atom::value);
  run();
  CHECK(j->take() == strs{"ignored:s"});
  advance(3s);
  bool terminated = false;
  term.receive([&](caf::ok_atom) { terminated = true; }, [](caf::error&) {});
  CHECK(terminated);
  std::vector<child_info> kids;
  which.receive([&](std::vector<child_info>& xs) { kids = xs; }, [](caf::error&) {});
  REQUIRE(kids.size() == 2);
  CHECK(kids[0].id == "s");
  CHECK(kids[0].state == child_info::status::undefined);
}

TEST_CASE_FIXTURE(sup_fixture, "dynamic API on static strategies follows OTP's error cases") {
  auto sup = start(flags(restart_strategy::one_for_one), {worker_spec(j, "a")});
  auto b = ask<caf::actor>(sup, start_child_atom::value, worker_spec(j, "b"));
  REQUIRE(b);
  CHECK(*b == current("b"));
  auto again = ask<caf::actor>(sup, start_child_atom::value, worker_spec(j, "b"));
  CHECK(again.error() == make_error(sup_errc::already_started));
  auto kids = children(sup);
  REQUIRE(kids.size() == 2);
  CHECK(kids[0].id == "b"); // newest first
  CHECK(kids[1].id == "a");
  CHECK(ask_ok(sup, delete_child_atom::value, std::string{"b"}) == make_error(sup_errc::running));
  CHECK(ask<caf::actor>(sup, restart_child_atom::value, std::string{"b"}).error() ==
        make_error(sup_errc::running));
  CHECK_FALSE(ask_ok(sup, terminate_child_atom::value, std::string{"b"}));
  CHECK_FALSE(ask_ok(sup, terminate_child_atom::value, std::string{"b"})); // ok again when stopped
  CHECK(ask<caf::actor>(sup, start_child_atom::value, worker_spec(j, "b")).error() ==
        make_error(sup_errc::already_present));
  CHECK(counts(sup) == child_counts{2, 1, 0, 2});
  auto restarted = ask<caf::actor>(sup, restart_child_atom::value, std::string{"b"});
  REQUIRE(restarted);
  CHECK(*restarted == current("b"));
  CHECK_FALSE(ask_ok(sup, terminate_child_atom::value, std::string{"b"}));
  CHECK_FALSE(ask_ok(sup, delete_child_atom::value, std::string{"b"}));
  CHECK(ask_ok(sup, delete_child_atom::value, std::string{"b"}) == make_error(sup_errc::not_found));
  CHECK(ask_ok(sup, terminate_child_atom::value, std::string{"x"}) == make_error(sup_errc::not_found));
  CHECK(ask<caf::actor>(sup, restart_child_atom::value, std::string{"x"}).error() ==
        make_error(sup_errc::not_found));
  auto spec = ask<child_spec>(sup, get_childspec_atom::value, std::string{"a"});
  REQUIRE(spec);
  CHECK(spec->id == "a");
  // terminate_child neither restarts nor counts as a restart.
  CHECK_FALSE(exited(sup));
}

TEST_CASE_FIXTURE(sup_fixture, "terminate_child on a temporary child deletes its spec") {
  auto sup = start(flags(restart_strategy::one_for_one), {worker_spec(j, "t", restart_type::temporary)});
  CHECK_FALSE(ask_ok(sup, terminate_child_atom::value, std::string{"t"}));
  CHECK(counts(sup) == child_counts{0, 0, 0, 0});
}

TEST_CASE_FIXTURE(sup_fixture, "simple_one_for_one: dynamic children from a template") {
  child_spec tmpl;
  tmpl.id = "conn";
  tmpl.start = [j = j](const start_context& ctx) -> start_result {
    auto name = ctx.args().get_as<std::string>(0);
    return caf::actor{
        ctx.system().spawn<warren_test::test_worker>(j, name, ctx.parent(), warren_test::worker_options{})};
  };
  auto sup = start(flags(restart_strategy::simple_one_for_one, 5), {tmpl});
  auto w1 = ask<caf::actor>(sup, start_child_atom::value, caf::make_message(std::string{"w1"}));
  auto w2 = ask<caf::actor>(sup, start_child_atom::value, caf::make_message(std::string{"w2"}));
  REQUIRE(w1);
  REQUIRE(w2);
  CHECK(counts(sup) == child_counts{1, 2, 0, 2});
  j->take();
  crash("w1"); // restarted with the arguments it was started with
  CHECK(j->take() == strs{"exit:w1:exception: boom", "start:w1"});
  CHECK(current("w1") != *w1);
  CHECK(ask<caf::actor>(sup, restart_child_atom::value, std::string{"conn"}).error() ==
        make_error(sup_errc::simple_one_for_one));
  CHECK(ask_ok(sup, delete_child_atom::value, std::string{"conn"}) ==
        make_error(sup_errc::simple_one_for_one));
  CHECK(ask_ok(sup, terminate_child_atom::value, std::string{"conn"}) ==
        make_error(sup_errc::simple_one_for_one));
  CHECK_FALSE(ask_ok(sup, terminate_child_atom::value, *w2));
  CHECK(j->take() == strs{"exit:w2:shutdown"});
  CHECK_FALSE(ask_ok(sup, terminate_child_atom::value, *w2)); // a dead pid: ok
  CHECK(ask_ok(sup, terminate_child_atom::value, caf::actor{self}) == make_error(sup_errc::not_found));
  auto kids = children(sup);
  REQUIRE(kids.size() == 1);
  CHECK(kids[0].id.empty());
  CHECK(kids[0].handle == current("w1"));
  // Stopping the supervisor tells all dynamic children at once.
  ask<caf::actor>(sup, start_child_atom::value, caf::make_message(std::string{"w3"}));
  j->take();
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  run();
  auto events = j->take();
  std::sort(events.begin(), events.end());
  CHECK(events == strs{"exit:w1:shutdown", "exit:w3:shutdown"});
  CHECK(exited(sup));
}

TEST_CASE_FIXTURE(sup_fixture,
                  "nested supervisors: a child supervisor that gives up is restarted with a fresh subtree") {
  auto inner = supervisor_child("inner", flags(restart_strategy::one_for_one, 0), {worker_spec(j, "x")});
  auto sup = start(flags(restart_strategy::one_for_one, 1), {worker_spec(j, "a"), inner});
  auto a = current("a");
  j->take();
  crash("x"); // inner gives up (intensity 0) and exits shutdown; outer restarts it
  CHECK(j->take() == strs{"exit:x:exception: boom", "start:x"});
  CHECK(current("a") == a);
  CHECK_FALSE(exited(sup));
  crash("x"); // the second escalation inside 5 s is too much for the outer one too
  CHECK(j->take() == strs{"exit:x:exception: boom", "exit:a:shutdown"});
  auto reason = exited(sup);
  REQUIRE(reason);
  CHECK(*reason == caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(sup_fixture, "a transient child supervisor that gives up is not restarted") {
  auto inner = supervisor_child("inner", flags(restart_strategy::one_for_one, 0), {worker_spec(j, "x")},
                                restart_type::transient);
  auto sup = start(flags(restart_strategy::one_for_one, 1), {inner});
  j->take();
  crash("x");
  CHECK(j->take() == strs{"exit:x:exception: boom"});
  auto kids = children(sup);
  REQUIRE(kids.size() == 1);
  CHECK(kids[0].state == child_info::status::undefined);
}

TEST_CASE_FIXTURE(sup_fixture, "auto_shutdown") {
  auto sig = [&](const std::string& name) {
    auto spec = worker_spec(j, name, restart_type::transient);
    spec.significant = true;
    return spec;
  };
  SUBCASE("any_significant: the first significant exit stops the supervisor") {
    auto f = flags(restart_strategy::one_for_one);
    f.auto_shutdown = auto_shutdown::any_significant;
    auto sup = start(f, {worker_spec(j, "a"), sig("s1"), sig("s2")});
    j->take();
    caf::anon_send(current("s1"), warren_test::finish_atom::value);
    run();
    CHECK(j->take() == strs{"exit:s1:normal", "exit:s2:shutdown", "exit:a:shutdown"});
    CHECK(exited(sup));
  }
  SUBCASE("all_significant: only when the last significant child is gone") {
    auto f = flags(restart_strategy::one_for_one);
    f.auto_shutdown = auto_shutdown::all_significant;
    auto sup = start(f, {worker_spec(j, "a"), sig("s1"), sig("s2")});
    caf::anon_send(current("s1"), warren_test::finish_atom::value);
    run();
    CHECK_FALSE(exited(sup));
    caf::anon_send(current("s2"), warren_test::finish_atom::value);
    run();
    CHECK(exited(sup));
  }
  SUBCASE("terminate_child and a restarted significant child do not trigger it") {
    auto f = flags(restart_strategy::one_for_one, 5);
    f.auto_shutdown = auto_shutdown::any_significant;
    auto sup = start(f, {worker_spec(j, "a"), sig("s1"), sig("s2")});
    CHECK_FALSE(ask_ok(sup, terminate_child_atom::value, std::string{"s1"}));
    crash("s2"); // transient + abnormal: restarted, not an auto_shutdown
    CHECK_FALSE(exited(sup));
  }
}

TEST_CASE_FIXTURE(sup_fixture, "restart delay: fixed and exponential backoff") {
  SUBCASE("fixed delay: the child comes back only after the delay") {
    auto spec = worker_spec(j, "a");
    spec.delay = restart_delay::fixed(2s);
    auto sup = start(flags(restart_strategy::one_for_one, 5), {spec});
    j->take();
    crash("a");
    CHECK(j->take() == strs{"exit:a:exception: boom"});
    CHECK(children(sup)[0].state == child_info::status::restarting);
    CHECK(ask<caf::actor>(sup, restart_child_atom::value, std::string{"a"}).error() ==
          make_error(sup_errc::restarting));
    advance(1999ms);
    CHECK(j->take().empty());
    advance(1ms);
    CHECK(j->take() == strs{"start:a"});
  }
  SUBCASE("exponential: delays double up to the cap") {
    auto spec = worker_spec(j, "a");
    spec.delay = restart_delay::exponential(100ms, 400ms, 2.0, 0.0);
    auto sup = start(flags(restart_strategy::one_for_one, 10, 60s), {spec});
    j->take();
    for (auto expected : {100ms, 200ms, 400ms, 400ms}) {
      crash("a");
      CHECK(j->take() == strs{"exit:a:exception: boom"});
      advance(expected - 1ms);
      CHECK(j->take().empty());
      advance(1ms);
      CHECK(j->take() == strs{"start:a"});
    }
  }
  SUBCASE("delayed restarts still count against the intensity when decided") {
    auto spec = worker_spec(j, "a");
    spec.delay = restart_delay::fixed(1s);
    auto sup = start(flags(restart_strategy::one_for_one, 1, 10s), {spec});
    crash("a");
    advance(1s);
    crash("a");
    CHECK(exited(sup));
  }
  SUBCASE("terminate_child cancels a pending delayed restart") {
    auto spec = worker_spec(j, "a");
    spec.delay = restart_delay::fixed(1s);
    auto sup = start(flags(restart_strategy::one_for_one, 5), {spec});
    crash("a");
    CHECK_FALSE(ask_ok(sup, terminate_child_atom::value, std::string{"a"}));
    j->take();
    advance(2s);
    CHECK(j->take().empty());
    CHECK(children(sup)[0].state == child_info::status::undefined);
  }
}

TEST_CASE_FIXTURE(sup_fixture, "exits from the parent stop the supervisor; exits from others are ignored") {
  caf::scoped_actor parent{sys};
  caf::scoped_actor stranger{sys};
  auto res = start_supervisor(sys, flags(restart_strategy::one_for_one), {worker_spec(j, "a")}, "sup",
                              caf::actor{parent});
  REQUIRE(res);
  auto sup = *res;
  watch(sup);
  stranger->send_exit(sup, caf::exit_reason::user_shutdown);
  run();
  CHECK_FALSE(exited(sup));
  parent->send_exit(sup, shutdown_with("maintenance"));
  run();
  auto reason = exited(sup);
  REQUIRE(reason);
  CHECK(describe_exit(*reason) == "{shutdown, maintenance}");
}

TEST_CASE_FIXTURE(sup_fixture, "tree dump: recursive, as JSON and text") {
  auto inner = supervisor_child("inner", flags(restart_strategy::rest_for_one),
                                {worker_spec(j, "x"), worker_spec(j, "y")});
  auto sup = start(flags(restart_strategy::one_for_all), {worker_spec(j, "a"), inner});
  auto tree = ask<tree_node>(sup, tree_atom::value);
  REQUIRE(tree);
  CHECK(tree->id == "sup");
  CHECK(tree->strategy == "one_for_all");
  REQUIRE(tree->children.size() == 2);
  auto& in = tree->children[0];
  CHECK(in.id == "inner");
  CHECK(in.type == child_type::supervisor);
  CHECK(in.strategy == "rest_for_one");
  REQUIRE(in.children.size() == 2);
  CHECK(in.children[1].id == "x");
  CHECK(in.children[1].actor_id == current("x").id());
  auto json = to_json(*tree);
  CHECK(json.find(R"("id":"inner")") != std::string::npos);
  CHECK(json.find(R"("strategy":"rest_for_one")") != std::string::npos);
  auto text = to_text(*tree);
  CHECK(text.find("sup [supervisor, one_for_all") == 0);
  CHECK(text.find("|   |-- y [worker, permanent, running") != std::string::npos);
}

TEST_CASE_FIXTURE(sup_fixture, "a killed supervisor takes its children with it") {
  auto inner = supervisor_child("inner", flags(restart_strategy::one_for_one), {worker_spec(j, "x")});
  auto sup = start(flags(restart_strategy::one_for_one), {worker_spec(j, "a"), inner});
  j->take();
  caf::anon_send_exit(sup, caf::exit_reason::kill);
  run();
  auto events = j->take();
  std::sort(events.begin(), events.end());
  CHECK(events == strs{"exit:a:killed", "exit:x:killed"});
  auto reason = exited(sup);
  REQUIRE(reason);
  CHECK(*reason == caf::exit_reason::kill);
}

TEST_CASE_FIXTURE(sup_fixture,
                  "without a parent: exits of linked strangers are ignored, an anonymous exit stops") {
  auto sup = start(flags(restart_strategy::one_for_one), {worker_spec(j, "a")});
  j->take();
  // A linked stranger that dies (OTP: an EXIT from a non-child, non-parent is ignored).
  auto stranger =
      sys.spawn([](caf::event_based_actor* s,
                   int) -> caf::behavior { return {[s](const caf::actor& who) { s->link_to(who); }}; },
                0);
  watch(stranger);
  caf::anon_send(stranger, sup);
  run();
  caf::anon_send_exit(stranger, caf::exit_reason::user_shutdown);
  run();
  REQUIRE(exited(stranger));
  // An exit sent by a stranger without a link.
  self->send_exit(sup, caf::exit_reason::user_shutdown);
  run();
  CHECK_FALSE(exited(sup));
  CHECK(j->take().empty());
  // The operator's request stops it: an anonymous exit, or the stop message sup::stop sends.
  caf::anon_send(sup, stop_supervisor_atom::value, shutdown_with("maintenance"));
  run();
  CHECK(j->take() == strs{"exit:a:shutdown"});
  auto reason = exited(sup);
  REQUIRE(reason);
  CHECK(describe_exit(*reason) == "{shutdown, maintenance}");
}

namespace {

// Records exits in order, from any thread; wait_for() waits for a count of them.
struct exit_log {
  std::mutex mtx;
  std::condition_variable cv;
  std::vector<std::string> exits;

  void add(std::string x) {
    std::lock_guard<std::mutex> guard{mtx};
    exits.push_back(std::move(x));
    cv.notify_all();
  }

  std::vector<std::string> wait_for(size_t n) {
    std::unique_lock<std::mutex> guard{mtx};
    cv.wait_for(guard, 30s, [&] { return exits.size() >= n; }); // safety net only
    return exits;
  }
};

child_spec logged_actor(std::shared_ptr<exit_log> log, std::string id) {
  child_spec spec;
  spec.id = id;
  spec.start = [log, id](const start_context& ctx) -> start_result {
    auto a =
        ctx.system().spawn([](caf::event_based_actor*, int) -> caf::behavior { return {[](int) {}}; }, 0);
    caf::actor_cast<caf::abstract_actor*>(a)->attach_functor(
        [log, id](const caf::error& reason) { log->add(id + ":" + describe_exit(reason)); });
    return a;
  };
  return spec;
}

// A server whose terminate records the reason: it runs only for its parent's exit.
struct logged_server {
  using calls = type_list<int>;
  std::shared_ptr<exit_log> log;
  std::string id;
  void init(std::shared_ptr<exit_log> l, std::string i) {
    log = std::move(l);
    id = std::move(i);
  }
  int handle_call(const int& x, caller&) { return x; }
  void terminate(const caf::error& reason) { log->add(id + ":terminate:" + describe_exit(reason)); }
};

} // namespace

TEST_CASE("dropping every handle of a running supervisor stops its tree in order") {
  set_log_level(spdlog::level::off);
  caf::actor_system_config cfg;
  cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{cfg};
  auto log = std::make_shared<exit_log>();
  SUBCASE("plain actors only (this aborted the process: pure virtual method called)") {
    {
      auto sup = start_supervisor(sys, flags(restart_strategy::one_for_one),
                                  {logged_actor(log, "a"), logged_actor(log, "b")});
      REQUIRE(sup);
    }
    CHECK(log->wait_for(2) == strs{"b:shutdown", "a:shutdown"});
  }
  SUBCASE("plain actors, a server and a nested supervisor") {
    {
      auto sup =
          start_supervisor(sys, flags(restart_strategy::one_for_one),
                           {logged_actor(log, "a"), server_child<logged_server>("b", log, std::string{"b"}),
                            supervisor_child("c", flags(restart_strategy::one_for_one),
                                             {logged_actor(log, "c1"), logged_actor(log, "c2")})});
      REQUIRE(sup);
    } // the only handle goes here
    CHECK(log->wait_for(4) == strs{"c2:shutdown", "c1:shutdown", "b:terminate:shutdown", "a:shutdown"});
  }
  SUBCASE("simple_one_for_one") {
    {
      auto sup = start_supervisor(sys, flags(restart_strategy::simple_one_for_one),
                                  {server_child<logged_server>("w", log, std::string{"w"})});
      REQUIRE(sup);
      auto w = sup::start_child(sys, *sup, caf::message{});
      REQUIRE(w);
    }
    CHECK(log->wait_for(1) == strs{"w:terminate:shutdown"});
  }
  // Leaving the scope also checks that nothing is left running: the actor system's
  // destructor waits for every actor.
}

TEST_CASE("a failed start returns once the children it started are gone, with the failure as values") {
  set_log_level(spdlog::level::off);
  caf::actor_system_config cfg;
  cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{cfg};
  auto log = std::make_shared<exit_log>();
  auto named = logged_actor(log, "a");
  named.name = "h12-a";
  auto failing = logged_actor(log, "c");
  failing.start = [](const start_context&) -> start_result {
    return make_error(exit_code::bad_start, "refused c");
  };
  auto res =
      start_supervisor(sys, flags(restart_strategy::one_for_one), {named, logged_actor(log, "b"), failing});
  REQUIRE_FALSE(res);
  // start_link: by now the started children are stopped (reverse order) and the name is free.
  {
    std::lock_guard<std::mutex> guard{log->mtx};
    CHECK(log->exits == strs{"b:shutdown", "a:shutdown"});
  }
  CHECK_FALSE(whereis(sys, "h12-a"));
  CHECK(res.error() == make_error(sup_errc::start_failed));
  auto failure = start_failure_of(res.error());
  REQUIRE(failure);
  CHECK(failure->child == "c");
  CHECK(failure->reason == make_error(exit_code::bad_start));
  CHECK(describe_exit(res.error()) == "{failed_to_start_child, c, bad_start: refused c}");
  // A retry right after cannot collide with the name.
  auto again = start_supervisor(sys, flags(restart_strategy::one_for_one), {named});
  REQUIRE(again);
  auto holder = whereis(sys, "h12-a");
  CHECK(holder);
  // A taken name: already_started with the holder, the start function not called.
  auto other = named;
  other.id = "a2";
  auto dup = sup::start_child(sys, *again, other);
  REQUIRE_FALSE(dup);
  auto running = already_started_of(dup.error());
  REQUIRE(running);
  CHECK(*running == holder);
  CHECK_FALSE(sup::stop(sys, *again) != shutdown());
  // The failed supervisor's own exit reason is the structured {shutdown, {failed_to_start_child, ...}}.
  auto exit_reason = shutdown_with(failed_to_start_child("c", make_error(exit_code::bad_start)));
  CHECK(is_normal_exit(exit_reason));
  REQUIRE(start_failure_of(exit_reason));
  CHECK(start_failure_of(exit_reason)->child == "c");
}
