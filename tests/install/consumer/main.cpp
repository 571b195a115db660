// Starts a supervisor with one worker from an installed Warren, crashes the worker,
// checks it was restarted, and stops the tree.
#include <warren/supervisor.hpp>

#include <caf/all.hpp>

#include <iostream>

int main() {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  warren::child_spec spec;
  spec.id = "worker";
  spec.start = warren::spawn_fn_of([](caf::event_based_actor* self) -> caf::behavior {
    return {[self](int) { self->quit(caf::sec::runtime_error); }};
  });
  auto sup = warren::start_supervisor(sys, {}, {spec}, "consumer");
  if (!sup)
    return 1;
  auto before = warren::sup::which_children(sys, *sup);
  caf::scoped_actor self{sys};
  self->monitor(before->front().handle);
  caf::anon_send(before->front().handle, 1);
  self->receive([](caf::down_msg&) {});
  // The supervisor saw the same down message; ask after it has acted on it.
  auto after = warren::sup::which_children(sys, *sup);
  warren::sup::stop(sys, *sup);
  bool restarted = after && after->front().restarts == 1 && after->front().handle != before->front().handle;
  std::cout << (restarted ? "consumer: restarted" : "consumer: NOT restarted") << "\n";
  return restarted ? 0 : 1;
}
