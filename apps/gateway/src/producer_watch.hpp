// The producer watch: notices when a backend producer was replaced (its supervisor
// restarted it, or someone registered another actor under its name) and tells every
// session, so what a quiet device published to the old one and was never accepted
// goes to the new one. One actor checking the names, instead of a timer in every
// session that has something unaccepted.
#pragma once

#include "registry.hpp"

#include <caf/atom.hpp>
#include <caf/behavior.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/timespan.hpp>

#include <memory>
#include <string>
#include <vector>

namespace warren::gateway {

/// Sent to every session when a producer of the pool was replaced.
using producer_changed_atom = caf::atom_constant<caf::atom("gwprodchg")>;

/// Checks the registered `names` every `interval`; a name that now belongs to another
/// actor than at the last check makes it broadcast producer_changed_atom to the
/// sessions in `reg` (a session that publishes meanwhile notices on its own).
caf::behavior producer_watch(caf::event_based_actor* self, std::vector<std::string> names,
                             std::shared_ptr<session_registry> reg, caf::timespan interval);

} // namespace warren::gateway
