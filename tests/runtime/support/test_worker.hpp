// A worker for supervisor tests: it writes its starts and exits into a journal, and
// crashes, exits normally or ignores shutdown on request. Runs on the deterministic
// test coordinator, so the journal needs no locking.
#pragma once

#include "warren/child_spec.hpp"
#include "warren/exit.hpp"

#include <caf/actor_cast.hpp>
#include <caf/atom.hpp>
#include <caf/event_based_actor.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace warren_test {

using crash_atom = caf::atom_constant<caf::atom("crash")>;
using finish_atom = caf::atom_constant<caf::atom("finish")>;
using finish_with_atom = caf::atom_constant<caf::atom("finishwith")>;
using ping_atom = caf::atom_constant<caf::atom("ping")>;

struct journal {
  std::vector<std::string> events;
  std::map<std::string, caf::actor_addr> current; // latest instance of each worker (weak: no cycles)
  std::map<std::string, int> fail_starts;         // start attempts still to fail, per worker
  std::map<std::string, int> starts;              // start attempts, per worker

  std::vector<std::string> take() {
    auto out = std::move(events);
    events.clear();
    return out;
  }
};

struct worker_options {
  bool ignore_shutdown = false; ///< keeps running when its supervisor asks it to stop
};

class test_worker : public caf::event_based_actor {
public:
  test_worker(caf::actor_config& cfg, std::shared_ptr<journal> j, std::string name, caf::actor parent,
              worker_options opts)
    : caf::event_based_actor(cfg), j_(std::move(j)), name_(std::move(name)), parent_(parent.address()),
      opts_(opts) {
    j_->events.push_back("start:" + name_);
    j_->current[name_] = address();
    attach_functor([j = j_, n = name_](const caf::error& reason) {
      j->events.push_back("exit:" + n + ":" + warren::describe_exit(reason));
    });
  }

  caf::behavior make_behavior() override {
    set_exit_handler([this](caf::exit_msg& msg) {
      if (opts_.ignore_shutdown && msg.source == parent_) {
        j_->events.push_back("ignored:" + name_);
        return;
      }
      if (msg.reason)
        quit(msg.reason);
    });
    return {
        [this](crash_atom) { quit(warren::make_error(warren::exit_code::exception, "boom")); },
        [this](finish_atom) { quit(); },
        [this](finish_with_atom, const std::string& why) { quit(warren::shutdown_with(why)); },
        [this](ping_atom) { return name_; },
    };
  }

private:
  std::shared_ptr<journal> j_;
  std::string name_;
  caf::actor_addr parent_; // weak: the supervisor holds us strongly
  worker_options opts_;
};

/// A start function for a test worker. When the journal's fail_starts[name] is
/// positive, the start fails (and the counter goes down).
inline warren::start_fn worker_start(std::shared_ptr<journal> j, std::string name, worker_options opts = {}) {
  return [=](const warren::start_context& ctx) -> warren::start_result {
    ++j->starts[name];
    if (auto i = j->fail_starts.find(name); i != j->fail_starts.end() && i->second > 0) {
      --i->second;
      j->events.push_back("startfail:" + name);
      return warren::make_error(warren::exit_code::bad_start, "refused " + name);
    }
    return caf::actor{ctx.system().spawn<test_worker>(j, name, ctx.parent(), opts)};
  };
}

inline warren::child_spec worker_spec(std::shared_ptr<journal> j, std::string name,
                                      warren::restart_type restart = warren::restart_type::permanent,
                                      worker_options opts = {}) {
  warren::child_spec spec;
  spec.id = name;
  spec.start = worker_start(std::move(j), name, opts);
  spec.restart = restart;
  return spec;
}

} // namespace warren_test
