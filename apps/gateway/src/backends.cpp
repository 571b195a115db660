#include "backends.hpp"
#include "metrics.hpp"

#include <warren/backend/echo.hpp>
#include <warren/backend/local.hpp>

#ifdef WARREN_GATEWAY_HAS_AMQP
#include <warren/amqp/amqp.hpp>
#endif

#include <caf/defaults.hpp>

#include <stdexcept>
#include <string>

namespace warren::gateway {

#ifdef WARREN_GATEWAY_HAS_AMQP
namespace {

/// The amqp backend's counters as Prometheus text: the broker link, what waits for a
/// confirm, what was dead-lettered.
void amqp_metrics(std::string& out, const amqp::counters& c, unsigned consumers) {
  auto ld = [](const auto& x) { return static_cast<uint64_t>(x.load(std::memory_order_relaxed)); };
  prometheus_metric(out, "warren_amqp_connected", "1 while the producer's broker connection is up.",
                    ld(c.producer_connected), "gauge");
  prometheus_metric(out, "warren_amqp_consumers_connected", "Consumers with a live broker connection.",
                    ld(c.consumers_connected), "gauge");
  prometheus_metric(out, "warren_amqp_consumers", "Consumers configured.", consumers, "gauge");
  prometheus_metric(out, "warren_amqp_unconfirmed",
                    "Device messages taken from sessions and not yet confirmed by the broker.",
                    ld(c.buffered), "gauge");
  prometheus_metric(out, "warren_amqp_deferred", "Device messages held back at max_buffered.", ld(c.deferred),
                    "gauge");
  prometheus_metric(out, "warren_amqp_published_total", "basic.publish sent (republishes included).",
                    ld(c.published));
  prometheus_metric(out, "warren_amqp_confirmed_total", "Device messages the broker confirmed.",
                    ld(c.confirmed));
  prometheus_metric(out, "warren_amqp_nacked_total", "Device messages the broker nacked (published again).",
                    ld(c.nacked));
  prometheus_metric(out, "warren_amqp_republished_total",
                    "Unconfirmed device messages published again after a reconnect.", ld(c.republished));
  prometheus_metric(out, "warren_amqp_producer_disconnects_total", "Producer broker connections lost.",
                    ld(c.producer_disconnects));
  prometheus_metric(out, "warren_amqp_deliveries_total", "Deliveries read from the to-device queue.",
                    ld(c.deliveries));
  prometheus_metric(out, "warren_amqp_acked_total", "Deliveries handed to a session and acked.", ld(c.acked));
  prometheus_metric(
      out, "warren_amqp_dead_lettered_total",
      "Deliveries rejected to the dead-letter exchange (no such device, bad headers, too long).",
      ld(c.dead_lettered));
  prometheus_metric(out, "warren_amqp_requeued_total", "Deliveries requeued (session failed or timed out).",
                    ld(c.requeued));
  prometheus_metric(out, "warren_amqp_consumer_disconnects_total", "Consumer broker connections lost.",
                    ld(c.consumer_disconnects));
}

} // namespace
#endif

backend_choice make_backend(const config& cfg, std::shared_ptr<backend::router> routes) {
  const auto& kind = cfg.backend.kind;
  if (kind == "local")
    return {backend::make_local_backend(cfg.backend.local, std::move(routes)), {}};
  if (kind == "echo") {
    // One producer per scheduler thread: the echo is no single-threaded choke point.
    auto threads = cfg.scheduler_threads > 0 ? cfg.scheduler_threads : caf::defaults::scheduler::max_threads;
    return {backend::make_echo_backend(std::move(routes), threads), {}};
  }
  if (kind == "amqp") {
#ifdef WARREN_GATEWAY_HAS_AMQP
    // [backend.amqp]: each key goes to amqp::set_option as text (docs/gateway.md).
    amqp::options opts;
    if (cfg.backend.amqp.contains("url"))
      for (const char* k : {"host", "port", "vhost", "user", "password"})
        if (cfg.backend.amqp.contains(k))
          throw std::runtime_error(std::string{"[backend.amqp] url and "} + k +
                                   " both name the broker: keep one");
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
    auto stats = std::make_shared<amqp::counters>();
    opts.stats = stats;
    backend_health health;
    health.metrics = [stats, n = opts.consumers](std::string& out) { amqp_metrics(out, *stats, n); };
    // Devices get no ACK while the producer has no broker, and backend messages reach
    // no device while no consumer has one: either way, send traffic elsewhere.
    health.not_ready = [stats, n = opts.consumers,
                        where = opts.host + ":" + std::to_string(opts.port)]() -> std::vector<std::string> {
      std::vector<std::string> why;
      if (stats->producer_connected.load(std::memory_order_relaxed) == 0)
        why.push_back("amqp producer: not connected to the broker at " + where);
      if (n > 0 && stats->consumers_connected.load(std::memory_order_relaxed) == 0)
        why.push_back("amqp consumers: none connected to the broker at " + where);
      return why;
    };
    return {amqp::backend(std::move(opts), std::move(routes)), std::move(health)};
#else
    throw std::runtime_error(
        "this warren-gateway was built without the amqp backend (needs librabbitmq-dev)");
#endif
  }
  throw std::runtime_error("unknown backend kind '" + kind + "' (local, echo, amqp)");
}

} // namespace warren::gateway
