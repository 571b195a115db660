// Fixture for supervisor tests on the deterministic coordinator: start trees, send
// requests and read their answers, watch exits, all without threads or sleeps.
#pragma once

#include "test_worker.hpp"
#include "warren/log.hpp"
#include "warren/supervisor.hpp"
#include "warren_test/deterministic.hpp"

#include <caf/scoped_actor.hpp>
#include <doctest/doctest.h>

#include <optional>

namespace warren_test {

struct sup_fixture : deterministic {
  std::shared_ptr<journal> j = std::make_shared<journal>();
  caf::scoped_actor self{sys};
  // Exit reasons seen by the watcher actor, by actor id.
  std::shared_ptr<std::map<caf::actor_id, caf::error>> downs =
      std::make_shared<std::map<caf::actor_id, caf::error>>();
  caf::actor watcher = sys.spawn( // (the int: see child_spec.hpp, spawn_fn_of)
      [d = downs](caf::event_based_actor* w, int) -> caf::behavior {
        w->set_down_handler([d](caf::down_msg& msg) { (*d)[msg.source.id()] = msg.reason; });
        return {[w](const caf::actor& who) { w->monitor(who); }};
      },
      0);

  std::vector<caf::actor> started; // supervisors to take down at the end

  void watch(const caf::actor& who) {
    caf::anon_send(watcher, who);
    run();
  }

  sup_fixture() { warren::set_log_level(spdlog::level::off); }

  caf::actor start(warren::supervisor_flags flags, std::vector<warren::child_spec> specs,
                   std::string id = "sup") {
    auto res = warren::start_supervisor(sys, flags, std::move(specs), std::move(id));
    REQUIRE_MESSAGE(res, "start_supervisor failed: " << caf::to_string(res.error()));
    watch(*res);
    started.push_back(*res);
    return *res;
  }

  /// Sends a request, lets the system run, then returns the answer.
  template <class T, class... Ts>
  caf::expected<T> ask(const caf::actor& dest, Ts&&... xs) {
    auto handle = self->request(dest, caf::infinite, std::forward<Ts>(xs)...);
    run();
    caf::expected<T> out{caf::error{}};
    bool answered = false;
    handle.receive(
        [&](T& x) {
          out = std::move(x);
          answered = true;
        },
        [&](caf::error& err) {
          out = std::move(err);
          answered = true;
        });
    REQUIRE(answered);
    return out;
  }

  template <class... Ts>
  caf::error ask_ok(const caf::actor& dest, Ts&&... xs) {
    auto res = ask<caf::ok_atom>(dest, std::forward<Ts>(xs)...);
    return res ? caf::error{} : res.error();
  }

  std::vector<warren::child_info> children(const caf::actor& sup) {
    auto res = ask<std::vector<warren::child_info>>(sup, warren::which_children_atom::value);
    REQUIRE(res);
    return *res;
  }

  warren::child_counts counts(const caf::actor& sup) {
    auto res = ask<warren::child_counts>(sup, warren::count_children_atom::value);
    REQUIRE(res);
    return *res;
  }

  /// The exit reason of a watched actor, once it has exited.
  std::optional<caf::error> exited(const caf::actor& who) {
    run();
    if (auto i = downs->find(who.id()); i != downs->end())
      return i->second;
    return std::nullopt;
  }

  ~sup_fixture() {
    // Kill what is left: a killed supervisor takes its linked children with it.
    for (auto& sup : started)
      caf::anon_send_exit(sup, caf::exit_reason::kill);
    caf::anon_send_exit(watcher, caf::exit_reason::kill);
    run();
  }

  void crash(const std::string& name) {
    caf::anon_send(current(name), crash_atom::value);
    run();
  }

  caf::actor current(const std::string& name) { return caf::actor_cast<caf::actor>(j->current.at(name)); }
};

} // namespace warren_test
