#include "warren/child_spec.hpp"

#include <algorithm>
#include <cmath>

namespace warren {

std::string to_string(restart_type x) {
  switch (x) {
    case restart_type::permanent:
      return "permanent";
    case restart_type::transient:
      return "transient";
    case restart_type::temporary:
      return "temporary";
  }
  return "unknown";
}

std::string to_string(child_type x) {
  return x == child_type::worker ? "worker" : "supervisor";
}

std::string to_string(const shutdown_spec& x) {
  switch (x.how) {
    case shutdown_spec::kind::brutal_kill:
      return "brutal_kill";
    case shutdown_spec::kind::infinity:
      return "infinity";
    case shutdown_spec::kind::timeout:
      break;
  }
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(x.time).count()) + "ms";
}

caf::timespan restart_delay::delay_for(unsigned attempt, double unit) const {
  if (!enabled())
    return caf::timespan{0};
  // initial * factor^attempt, capped; computed in double to avoid overflow.
  double ns = static_cast<double>(initial.count()) * std::pow(std::max(factor, 1.0), attempt);
  if (max.count() > 0)
    ns = std::min(ns, static_cast<double>(max.count()));
  double j = std::clamp(jitter, 0.0, 1.0);
  ns *= 1.0 + j * (2.0 * unit - 1.0);
  if (max.count() > 0)
    ns = std::min(ns, static_cast<double>(max.count()));
  return caf::timespan{static_cast<caf::timespan::rep>(std::max(ns, 0.0))};
}

} // namespace warren
