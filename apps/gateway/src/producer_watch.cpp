#include "producer_watch.hpp"

#include <warren/log.hpp>
#include <warren/registry.hpp>

#include <caf/all.hpp>

namespace warren::gateway {

namespace {

using watch_tick_atom = caf::atom_constant<caf::atom("gwwtick")>;

} // namespace

caf::behavior producer_watch(caf::event_based_actor* self, std::vector<std::string> names,
                             std::shared_ptr<session_registry> reg, caf::timespan interval) {
  // The producers as of the last check; a null handle while a name is unregistered.
  auto seen = std::make_shared<std::vector<caf::actor>>();
  auto& ns = warren::names(self->system());
  for (auto& n : names)
    seen->push_back(ns.whereis(n));
  self->delayed_send(self, interval, watch_tick_atom::value);
  return {
      [=, &ns](watch_tick_atom) {
        bool changed = false;
        for (std::size_t i = 0; i < names.size(); ++i) {
          auto now = ns.whereis(names[i]);
          if (now == (*seen)[i])
            continue;
          if (now) // gone (null): nothing to publish to yet; the successor's arrival counts
            changed = true;
          (*seen)[i] = std::move(now);
        }
        if (changed) {
          auto n = reg->broadcast(caf::make_message(producer_changed_atom::value));
          log().info("producer watch: a backend producer was replaced; told {} sessions", n);
        }
        self->delayed_send(self, interval, watch_tick_atom::value);
      },
  };
}

} // namespace warren::gateway
