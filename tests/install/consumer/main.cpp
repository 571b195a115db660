// Starts a supervisor with one worker from an installed Warren, crashes the worker,
// waits for its successor to announce itself, and stops the tree.
#include <warren/supervisor.hpp>

#include <caf/all.hpp>

#include <iostream>

using hello_atom = caf::atom_constant<caf::atom("hello")>;

int main() {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  warren::child_spec spec;
  spec.id = "worker";
  spec.start = [observer = caf::actor{self}](const warren::start_context& ctx) -> warren::start_result {
    // (The unused int works around CAF 0.17's null dereference for argument-less spawns.)
    return caf::actor{ctx.system().spawn(
        [observer](caf::event_based_actor* worker, int) -> caf::behavior {
          worker->send(observer, hello_atom::value, caf::actor_cast<caf::actor>(worker));
          return {[worker](int) { worker->quit(caf::sec::runtime_error); }};
        },
        0)};
  };
  auto sup = warren::start_supervisor(sys, {}, {spec}, "consumer");
  if (!sup)
    return 1;
  caf::actor first, second;
  self->receive([&](hello_atom, caf::actor& a) { first = a; });
  self->send(first, 1); // crash it
  self->receive([&](hello_atom, caf::actor& a) { second = a; });
  auto kids = warren::sup::which_children(sys, *sup);
  warren::sup::stop(sys, *sup);
  bool restarted = kids && kids->front().restarts == 1 && kids->front().handle == second && second != first;
  std::cout << (restarted ? "consumer: restarted" : "consumer: NOT restarted") << "\n";
  return restarted ? 0 : 1;
}
