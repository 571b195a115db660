#include "backends.hpp"

#include <warren/backend/echo.hpp>
#include <warren/backend/local.hpp>

#include <stdexcept>

namespace warren::gateway {

backend::backend_spec make_backend(const config& cfg, std::shared_ptr<backend::router> routes) {
  const auto& kind = cfg.backend.kind;
  if (kind == "local")
    return backend::make_local_backend(cfg.backend.local, std::move(routes));
  if (kind == "echo")
    return backend::make_echo_backend(std::move(routes));
  // "amqp": cfg.backend.amqp holds [backend.amqp] as an opaque toml::table.
  throw std::runtime_error("unknown backend kind '" + kind + "' (local, echo)");
}

} // namespace warren::gateway
