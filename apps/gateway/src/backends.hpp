// Backend selection: the one place that maps `[backend] kind` to a backend.
#pragma once

#include "config.hpp"

#include <warren/backend/messages.hpp>

#include <memory>

namespace warren::gateway {

/// The backend named by cfg.backend.kind ("local", "echo", "amqp"); throws
/// std::runtime_error for an unknown kind. `routes` finds sessions for consumers.
backend::backend_spec make_backend(const config& cfg, std::shared_ptr<backend::router> routes);

} // namespace warren::gateway
