#include "backends.hpp"

#include <warren/backend/echo.hpp>
#include <warren/backend/local.hpp>

#ifdef WARREN_GATEWAY_HAS_AMQP
#include <warren/amqp/amqp.hpp>
#endif

#include <caf/defaults.hpp>

#include <stdexcept>
#include <string>

namespace warren::gateway {

backend::backend_spec make_backend(const config& cfg, std::shared_ptr<backend::router> routes) {
  const auto& kind = cfg.backend.kind;
  if (kind == "local")
    return backend::make_local_backend(cfg.backend.local, std::move(routes));
  if (kind == "echo") {
    // One producer per scheduler thread: the echo is no single-threaded choke point.
    auto threads = cfg.scheduler_threads > 0 ? cfg.scheduler_threads : caf::defaults::scheduler::max_threads;
    return backend::make_echo_backend(std::move(routes), threads);
  }
  if (kind == "amqp") {
#ifdef WARREN_GATEWAY_HAS_AMQP
    // [backend.amqp]: each key goes to amqp::set_option as text (docs/gateway.md).
    amqp::options opts;
    for (auto&& [key, value] : cfg.backend.amqp) {
      std::string text;
      if (auto s = value.as_string())
        text = s->get();
      else if (auto i = value.as_integer())
        text = std::to_string(i->get());
      else
        throw std::runtime_error("[backend.amqp] " + std::string{key.str()} +
                                 " must be a string or an integer");
      if (auto err = amqp::set_option(opts, key.str(), text); !err.empty())
        throw std::runtime_error("[backend.amqp] " + err);
    }
    if (auto err = amqp::validate(opts); !err.empty())
      throw std::runtime_error("[backend.amqp] " + err);
    return amqp::backend(std::move(opts), std::move(routes));
#else
    throw std::runtime_error(
        "this warren-gateway was built without the amqp backend (needs librabbitmq-dev)");
#endif
  }
  throw std::runtime_error("unknown backend kind '" + kind + "' (local, echo, amqp)");
}

} // namespace warren::gateway
