#include "warren/registry.hpp"

#include "warren/exit.hpp"

#include "warren_test/deterministic.hpp"

#include <caf/abstract_actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <optional>
#include <thread>

using namespace std::chrono_literals;

namespace {

using ping_atom = caf::atom_constant<caf::atom("ping")>;
using go_atom = caf::atom_constant<caf::atom("go")>;

struct threaded_config : caf::actor_system_config {
  threaded_config() {
    set("scheduler.max-threads", 2);
    set("logger.verbosity", caf::atom("quiet"));
  }
};

struct threaded {
  threaded_config cfg;
  caf::actor_system sys{cfg};
};

// Test actors take a dummy argument: CAF 0.17 dereferences a null argument tuple
// when a function-based actor takes nothing but `self`, which UBSan reports.
caf::behavior idle(caf::event_based_actor*, int) {
  return {[](ping_atom) {}};
}

// Forwards every message it gets to `sink`, tagged with its own id and the sender.
caf::behavior forwarder(caf::event_based_actor* self, caf::actor sink) {
  return {[=](ping_atom, int round) {
    auto sender = caf::actor_cast<caf::actor>(self->current_sender());
    self->send(sink, self->id(), round, sender ? sender.id() : caf::actor_id{0});
  }};
}

// Waits until `who` has terminated (every exit observer has been told).
void wait_exit(caf::scoped_actor& self, const caf::actor& who, caf::error reason = caf::exit_reason::kill) {
  self->monitor(who);
  self->send_exit(who, std::move(reason));
  bool down = false;
  self->receive([&](const caf::down_msg& msg) { down = msg.source == who.address(); });
  REQUIRE(down);
}

bool contains(const std::vector<std::string>& xs, const std::string& x) {
  return std::find(xs.begin(), xs.end(), x) != xs.end();
}

bool is(const caf::error& err, warren::registry_errc code) {
  return err == warren::make_error(code);
}

} // namespace

TEST_CASE("register_name, whereis and unregister_name") {
  threaded t;
  caf::scoped_actor self{t.sys};
  auto a = t.sys.spawn(idle, 0);
  CHECK(!warren::whereis(t.sys, "a"));
  REQUIRE(!warren::register_name(t.sys, "a", a));
  CHECK(warren::whereis(t.sys, "a") == a);
  CHECK(contains(warren::registered_names(t.sys), "a"));
  CHECK(!warren::unregister_name(t.sys, "a"));
  CHECK(!warren::whereis(t.sys, "a"));
  CHECK(!contains(warren::registered_names(t.sys), "a"));
  CHECK(is(warren::unregister_name(t.sys, "a"), warren::registry_errc::not_registered));
  // After unregistering, the actor may take another name.
  CHECK(!warren::register_name(t.sys, "b", a));
  CHECK(warren::whereis(t.sys, "b") == a);
  wait_exit(self, a);
}

TEST_CASE("a name is taken once and an actor has one name") {
  threaded t;
  caf::scoped_actor self{t.sys};
  auto a = t.sys.spawn(idle, 0);
  auto b = t.sys.spawn(idle, 0);
  REQUIRE(!warren::register_name(t.sys, "x", a));
  auto err = warren::register_name(t.sys, "x", b);
  CHECK(is(err, warren::registry_errc::already_registered));
  CHECK(err.category() == warren::registry_error_category);
  CHECK(is(warren::register_name(t.sys, "x", a), warren::registry_errc::already_registered));
  CHECK(is(warren::register_name(t.sys, "y", a), warren::registry_errc::already_named));
  CHECK(!warren::whereis(t.sys, "y"));
  CHECK(warren::whereis(t.sys, "x") == a);
  CHECK(is(warren::register_name(t.sys, "", b), warren::registry_errc::invalid_argument));
  CHECK(is(warren::register_name(t.sys, "z", caf::actor{}), warren::registry_errc::invalid_argument));
  CHECK(warren::to_string(warren::registry_errc::already_registered) == "already_registered");
  wait_exit(self, a);
  wait_exit(self, b);
}

TEST_CASE("a name is removed when its actor exits") {
  threaded t;
  caf::scoped_actor self{t.sys};
  for (int mode = 0; mode < 3; ++mode) {
    CAPTURE(mode);
    auto a = t.sys.spawn(
        [](caf::event_based_actor* self, int) -> caf::behavior { return {[=](ping_atom) { self->quit(); }}; },
        0);
    REQUIRE(!warren::register_name(t.sys, "worker", a));
    if (mode == 0) { // normal exit of its own
      self->monitor(a);
      self->send(a, ping_atom::value);
      self->receive([&](const caf::down_msg& msg) { CHECK(!msg.reason); });
    } else {
      wait_exit(self, a, mode == 1 ? caf::error{caf::exit_reason::kill} : warren::shutdown());
    }
    CHECK(!warren::whereis(t.sys, "worker"));
    CHECK(!contains(warren::registered_names(t.sys), "worker"));
    // The name is free again at once.
    auto b = t.sys.spawn(idle, 0);
    CHECK(!warren::register_name(t.sys, "worker", b));
    CHECK(warren::whereis(t.sys, "worker") == b);
    wait_exit(self, b);
  }
}

TEST_CASE("the registry does not keep an actor alive") {
  threaded t;
  caf::scoped_actor self{t.sys};
  {
    auto a = t.sys.spawn(idle, 0);
    REQUIRE(!warren::register_name(t.sys, "orphan", a));
    self->monitor(a);
  } // last handle gone: CAF terminates the actor as unreachable
  self->receive([](const caf::down_msg& msg) { CHECK(msg.reason == caf::exit_reason::unreachable); });
  CHECK(!warren::whereis(t.sys, "orphan"));
}

TEST_CASE("an exit never removes a newer registration of the same name") {
  threaded t;
  caf::scoped_actor self{t.sys};
  SUBCASE("the old holder unregistered first") {
    auto a = t.sys.spawn(idle, 0);
    auto b = t.sys.spawn(idle, 0);
    REQUIRE(!warren::register_name(t.sys, "svc", a));
    REQUIRE(!warren::join(t.sys, "keep-a-watched", a));
    REQUIRE(!warren::unregister_name(t.sys, "svc"));
    REQUIRE(!warren::register_name(t.sys, "svc", b));
    wait_exit(self, a);
    CHECK(warren::whereis(t.sys, "svc") == b);
    wait_exit(self, b);
  }
  SUBCASE("the name is taken over while the old holder's exit is in progress") {
    // Exit observers run newest first. Attach, in this order: the test's monitor,
    // the registry's watcher (register_name), then a functor that registers `b`.
    // When `a` exits, the functor takes the name over before the registry's watcher
    // for `a` runs; that watcher must leave b's registration alone.
    auto a = t.sys.spawn(idle, 0);
    auto b = t.sys.spawn(idle, 0);
    self->monitor(a);
    REQUIRE(!warren::register_name(t.sys, "svc", a));
    auto taken = std::make_shared<std::atomic<bool>>(false);
    caf::actor_cast<caf::abstract_actor*>(a)->attach_functor(
        [sys = &t.sys, b, taken](const caf::error&) { *taken = !warren::register_name(*sys, "svc", b); });
    self->send_exit(a, caf::exit_reason::kill);
    self->receive([](const caf::down_msg&) {});
    CHECK(*taken);
    CHECK(warren::whereis(t.sys, "svc") == b);
    CHECK(contains(warren::registered_names(t.sys), "svc"));
    wait_exit(self, b);
    CHECK(!warren::whereis(t.sys, "svc"));
  }
}

TEST_CASE("every actor system has its own registry") {
  threaded t1;
  threaded t2;
  caf::scoped_actor self1{t1.sys};
  caf::scoped_actor self2{t2.sys};
  auto a = t1.sys.spawn(idle, 0);
  auto b = t2.sys.spawn(idle, 0);
  REQUIRE(!warren::register_name(t1.sys, "same", a));
  REQUIRE(!warren::register_name(t2.sys, "same", b));
  CHECK(warren::whereis(t1.sys, "same") == a);
  CHECK(warren::whereis(t2.sys, "same") == b);
  REQUIRE(!warren::join(t1.sys, "g", a));
  CHECK(warren::members(t2.sys, "g").empty());
  CHECK(&warren::names(t1.sys) != &warren::names(t2.sys));
  wait_exit(self1, a);
  CHECK(!warren::whereis(t1.sys, "same"));
  CHECK(warren::whereis(t2.sys, "same") == b);
  wait_exit(self2, b);
}

TEST_CASE("a new actor system starts with an empty registry") {
  for (int i = 0; i < 3; ++i) {
    threaded t;
    CHECK(warren::registered_names(t.sys).empty());
    CHECK(warren::which_groups(t.sys).empty());
    caf::scoped_actor self{t.sys};
    auto a = t.sys.spawn(idle, 0);
    REQUIRE(!warren::register_name(t.sys, "again", a));
    REQUIRE(!warren::join(t.sys, "again", a));
    wait_exit(self, a);
  }
}

TEST_CASE("groups: join, leave, members and which_groups") {
  threaded t;
  caf::scoped_actor self{t.sys};
  auto a = t.sys.spawn(idle, 0);
  auto b = t.sys.spawn(idle, 0);
  CHECK(warren::members(t.sys, "g").empty());
  REQUIRE(!warren::join(t.sys, "g", a));
  REQUIRE(!warren::join(t.sys, "g", b));
  REQUIRE(!warren::join(t.sys, "h", b));
  auto ms = warren::members(t.sys, "g");
  CHECK(ms.size() == 2);
  CHECK(std::count(ms.begin(), ms.end(), a) == 1);
  CHECK(std::count(ms.begin(), ms.end(), b) == 1);
  auto gs = warren::which_groups(t.sys);
  CHECK(gs.size() == 2);
  CHECK(contains(gs, "g"));
  CHECK(contains(gs, "h"));
  CHECK(!warren::leave(t.sys, "g", a));
  CHECK(warren::members(t.sys, "g") == std::vector<caf::actor>{b});
  CHECK(is(warren::leave(t.sys, "g", a), warren::registry_errc::not_joined));
  CHECK(is(warren::leave(t.sys, "nope", a), warren::registry_errc::not_joined));
  CHECK(!warren::leave(t.sys, "h", b));
  CHECK(!contains(warren::which_groups(t.sys), "h"));
  CHECK(is(warren::join(t.sys, "", a), warren::registry_errc::invalid_argument));
  wait_exit(self, a);
  wait_exit(self, b);
}

TEST_CASE("groups count joins as pg does") {
  threaded t;
  caf::scoped_actor self{t.sys};
  auto a = t.sys.spawn(idle, 0);
  REQUIRE(!warren::join(t.sys, "g", a));
  REQUIRE(!warren::join(t.sys, "g", a));
  REQUIRE(!warren::join(t.sys, "g", a));
  CHECK(warren::members(t.sys, "g") == std::vector<caf::actor>{a, a, a});
  CHECK(!warren::leave(t.sys, "g", a));
  CHECK(warren::members(t.sys, "g") == std::vector<caf::actor>{a, a});
  CHECK(!warren::leave(t.sys, "g", a));
  CHECK(!warren::leave(t.sys, "g", a));
  CHECK(warren::members(t.sys, "g").empty());
  CHECK(is(warren::leave(t.sys, "g", a), warren::registry_errc::not_joined));
  CHECK(warren::which_groups(t.sys).empty());
  wait_exit(self, a);
}

TEST_CASE("an exiting actor leaves all its groups") {
  threaded t;
  caf::scoped_actor self{t.sys};
  auto a = t.sys.spawn(idle, 0);
  auto b = t.sys.spawn(idle, 0);
  REQUIRE(!warren::join(t.sys, "g1", a));
  REQUIRE(!warren::join(t.sys, "g2", a));
  REQUIRE(!warren::join(t.sys, "g2", a));
  REQUIRE(!warren::join(t.sys, "g2", b));
  REQUIRE(!warren::register_name(t.sys, "a", a));
  wait_exit(self, a);
  CHECK(warren::members(t.sys, "g1").empty());
  CHECK(warren::members(t.sys, "g2") == std::vector<caf::actor>{b});
  CHECK(warren::which_groups(t.sys) == std::vector<std::string>{"g2"});
  CHECK(!warren::whereis(t.sys, "a"));
  // A join after the exit is forgotten at once.
  CHECK(!warren::join(t.sys, "g1", a));
  CHECK(warren::members(t.sys, "g1").empty());
  wait_exit(self, b);
  CHECK(warren::which_groups(t.sys).empty());
}

TEST_CASE("fan-out reaches every member exactly once") {
  warren_test::deterministic d;
  caf::scoped_actor sink{d.sys};
  constexpr int n = 1000;
  std::vector<caf::actor> workers;
  for (int i = 0; i < n; ++i) {
    workers.push_back(d.sys.spawn(forwarder, caf::actor{sink}));
    REQUIRE(!warren::join(d.sys, "fan", workers.back()));
  }
  // Joined twice: still one delivery per distinct member.
  REQUIRE(!warren::join(d.sys, "fan", workers.front()));
  CHECK(warren::members(d.sys, "fan").size() == n + 1);
  auto outsider = d.sys.spawn(forwarder, caf::actor{sink});
  d.run();

  auto collect = [&](int round, caf::actor_id expected_sender) {
    std::map<caf::actor_id, int> got;
    bool more = true;
    while (more)
      sink->receive(
          [&](caf::actor_id id, int r, caf::actor_id sender) {
            CHECK(r == round);
            CHECK(sender == expected_sender);
            ++got[id];
          },
          caf::after(0s) >> [&] { more = false; });
    CHECK(got.size() == n);
    for (auto& w : workers)
      CHECK(got[w.id()] == 1);
    CHECK(got.count(outsider.id()) == 0);
  };

  SUBCASE("from outside any actor") {
    CHECK(warren::broadcast(d.sys, "fan", ping_atom::value, 1) == n);
    d.run();
    collect(1, 0);
    CHECK(warren::send_group(d.sys, "nobody", caf::make_message(ping_atom::value, 2)) == 0);
  }
  SUBCASE("from inside an actor, with the actor as sender") {
    auto caster = d.sys.spawn(
        [](caf::event_based_actor* self, int) -> caf::behavior {
          return {[=](go_atom) { return warren::broadcast(self, "fan", ping_atom::value, 7); }};
        },
        0);
    caf::anon_send(caster, go_atom::value);
    d.run();
    collect(7, caster.id());
    caf::anon_send_exit(caster, caf::exit_reason::kill);
  }
  SUBCASE("members that left or died get nothing") {
    REQUIRE(!warren::leave(d.sys, "fan", workers[1]));
    caf::anon_send_exit(workers[2], caf::exit_reason::kill);
    d.run();
    CHECK(warren::broadcast(d.sys, "fan", ping_atom::value, 3) == n - 2);
    d.run();
    std::map<caf::actor_id, int> got;
    bool more = true;
    while (more)
      sink->receive([&](caf::actor_id id, int, caf::actor_id) { ++got[id]; },
                    caf::after(0s) >> [&] { more = false; });
    CHECK(got.size() == n - 2);
    CHECK(got.count(workers[1].id()) == 0);
    CHECK(got.count(workers[2].id()) == 0);
  }
  for (auto& w : workers)
    caf::anon_send_exit(w, caf::exit_reason::kill);
  caf::anon_send_exit(outsider, caf::exit_reason::kill);
  d.run();
  CHECK(warren::members(d.sys, "fan").empty());
}

TEST_CASE("concurrent register, lookup, unregister and join stay consistent") {
  threaded t;
  caf::scoped_actor self{t.sys};
  constexpr int threads = 4;
  constexpr int rounds = 2000;
  std::vector<caf::actor> actors;
  for (int i = 0; i < threads; ++i)
    actors.push_back(t.sys.spawn(idle, 0));
  std::atomic<int> failures{0};
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i)
    pool.emplace_back([&, i] {
      auto& me = actors[i];
      auto mine = "own-" + std::to_string(i);
      for (int r = 0; r < rounds; ++r) {
        if (warren::register_name(t.sys, mine, me))
          ++failures;
        if (warren::whereis(t.sys, mine) != me)
          ++failures;
        // Everybody fights over one shared name: exactly its holder finds itself.
        if (!warren::register_name(t.sys, "shared", me)) {
          if (warren::whereis(t.sys, "shared") != me)
            ++failures;
          if (warren::unregister_name(t.sys, "shared"))
            ++failures;
        }
        if (warren::unregister_name(t.sys, mine))
          ++failures;
        if (warren::join(t.sys, "all", me) || warren::leave(t.sys, "all", me))
          ++failures;
      }
    });
  for (auto& th : pool)
    th.join();
  CHECK(failures == 0);
  CHECK(warren::registered_names(t.sys).empty());
  CHECK(warren::members(t.sys, "all").empty());
  for (auto& a : actors)
    wait_exit(self, a);
}
