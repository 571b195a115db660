// Embedding Warren: a supervised pipeline. A source produces numbers, a transform
// stage squares them and crashes on every multiple of 7 ("poison"), a sink sums what
// arrives. The stages find each other by registered name, so a restarted transform is
// picked up without anyone holding its old handle. When the sink has seen the
// source's end marker it prints a summary and the supervision tree, and stops the
// application; the exit code says whether the tree was stopped or died.
#include <warren/application.hpp>
#include <warren/exit.hpp>
#include <warren/log.hpp>
#include <warren/registry.hpp>
#include <warren/supervisor.hpp>

#include <caf/all.hpp>

#include <iostream>

using namespace std::chrono_literals;

namespace {

using item_atom = caf::atom_constant<caf::atom("item")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using end_atom = caf::atom_constant<caf::atom("end")>;

constexpr int item_count = 100;

// Sends 1..item_count to the transform stage, one per millisecond, then an end marker.
// While the transform stage is restarting (no name registered) the item waits.
caf::behavior source(caf::event_based_actor* self) {
  self->send(self, tick_atom::value, 1);
  return {[self](tick_atom, int n) {
    if (auto next = warren::whereis(self->system(), "transform")) {
      if (n > item_count) {
        // Straight to the sink: a marker sent through a crashing stage could be lost.
        if (auto sink = warren::whereis(self->system(), "sink"))
          self->send(sink, end_atom::value);
        return;
      }
      self->send(next, item_atom::value, n);
      ++n;
    }
    self->delayed_send(self, 1ms, tick_atom::value, n);
  }};
}

// Squares items; a multiple of 7 makes it crash (the item is lost, as in any
// at-most-once pipeline).
caf::behavior transform(caf::event_based_actor* self) {
  // An exception ends the actor with an abnormal reason naming the exception.
  self->set_exception_handler([](std::exception_ptr& eptr) { return warren::exception_to_exit(eptr); });
  return {
      [self](item_atom, int n) {
        if (n % 7 == 0)
          throw std::runtime_error("poison item " + std::to_string(n));
        if (auto next = warren::whereis(self->system(), "sink"))
          self->send(next, item_atom::value, n * n);
      },
  };
}

struct sink_state {
  long sum = 0;
  int received = 0;
};

caf::behavior sink(caf::stateful_actor<sink_state>* self, warren::application* app) {
  return {
      [self](item_atom, int square) {
        self->state.sum += square;
        ++self->state.received;
      },
      [self, app](end_atom) {
        auto tree = warren::sup::tree(self->system(), app->top());
        std::cout << "pipeline: received " << self->state.received << " of " << item_count << " items, sum "
                  << self->state.sum << "\n";
        if (tree) {
          for (auto& child : tree->children)
            if (child.id == "transform")
              std::cout << "pipeline: transform restarted " << child.restarts << " times\n";
          std::cout << warren::to_text(*tree);
        }
        app->stop();
      },
  };
}

warren::child_spec stage(std::string id, warren::start_fn start) {
  warren::child_spec spec;
  spec.id = id;
  spec.name = id; // registered under its id while it runs
  spec.start = std::move(start);
  return spec;
}

} // namespace

int main() {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  warren::application app{sys, "pipeline"};

  warren::supervisor_flags flags;
  flags.strategy = warren::restart_strategy::one_for_one;
  flags.intensity = 50; // the transform stage is expected to crash 14 times
  flags.period = 10s;

  // sink first, so everything downstream exists before the source produces.
  auto err = app.start(flags, {
                                  stage("sink", warren::spawn_fn_of(sink, &app)),
                                  stage("transform", warren::spawn_fn_of(transform)),
                                  stage("source", warren::spawn_fn_of(source)),
                              });
  if (err)
    return warren::application::exit_start_failed;
  return app.run();
}
