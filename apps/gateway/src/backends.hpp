// Backend selection: the one place that maps `[backend] kind` to a backend, and what
// the gateway reads from that backend besides its tree (metrics, readiness).
#pragma once

#include "config.hpp"

#include <warren/backend/messages.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace warren::gateway {

/// A backend's own state for /metrics and /readyz (both callable from any thread).
struct backend_health {
  /// Appends the backend's metrics in Prometheus text; unset: it has none.
  std::function<void(std::string&)> metrics;
  /// Why the backend cannot carry traffic now (empty: it can); unset: always can.
  std::function<std::vector<std::string>()> not_ready;
};

struct backend_choice {
  backend::backend_spec spec;
  backend_health health;
};

/// The backend named by cfg.backend.kind ("local", "echo", "amqp"); throws
/// std::runtime_error for an unknown kind. `routes` finds sessions for consumers.
backend_choice make_backend(const config& cfg, std::shared_ptr<backend::router> routes);

} // namespace warren::gateway
