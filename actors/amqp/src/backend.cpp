#include "actors.hpp"

#include <warren/amqp/amqp.hpp>
#include <warren/supervisor.hpp>

#include <stdexcept>

namespace warren::amqp {

std::string validate(const options& opts) {
  if (opts.host.empty())
    return "amqp: host is empty";
  if (opts.port == 0)
    return "amqp: port is 0";
  if (opts.exchange_type != "topic" && opts.exchange_type != "direct")
    return "amqp: exchange_type must be topic or direct, not '" + opts.exchange_type + "'";
  if (opts.exchange.empty())
    return "amqp: exchange is empty (the default exchange cannot be declared)";
  if (opts.to_device_queue.empty())
    return "amqp: to_device_queue is empty";
  if (opts.dead_letter_exchange.empty() || opts.dead_letter_queue.empty())
    return "amqp: dead_letter_exchange and dead_letter_queue must be set";
  if (opts.max_buffered == 0 || opts.max_in_flight == 0)
    return "amqp: max_buffered and max_in_flight must be positive";
  if (opts.prefetch == 0)
    return "amqp: prefetch must be positive (0 would mean unlimited)";
  if (opts.heartbeat.count() < 0 || opts.heartbeat.count() > 65535)
    return "amqp: heartbeat must be 0..65535 seconds";
  if (opts.reconnect_initial.count() <= 0 || opts.reconnect_max < opts.reconnect_initial)
    return "amqp: reconnect backoff must be positive with max >= initial";
  return {};
}

namespace {

options with_stats(options opts) {
  if (!opts.stats)
    opts.stats = std::make_shared<counters>();
  return opts;
}

} // namespace

child_spec producer_child(const options& in) {
  auto opts = with_stats(in);
  child_spec c;
  c.id = "producer";
  c.start = [opts](const start_context& ctx) -> start_result {
    return detail::spawn_producer(ctx.system(), opts);
  };
  c.restart = restart_type::permanent;
  c.shutdown = shutdown_spec::timeout(opts.flush_timeout + std::chrono::seconds(3));
  c.delay = restart_delay::exponential(std::chrono::milliseconds(100), std::chrono::seconds(5));
  c.name = opts.producer_name;
  return c;
}

child_spec consumer_child(const options& in, std::shared_ptr<backend::router> router, unsigned index) {
  auto opts = with_stats(in);
  child_spec c;
  c.id = "consumer-" + std::to_string(index);
  c.start = [opts, router, index](const start_context& ctx) -> start_result {
    return detail::spawn_consumer(ctx.system(), opts, router, index);
  };
  c.restart = restart_type::permanent;
  c.shutdown = shutdown_spec::timeout(opts.connect_timeout + std::chrono::seconds(3));
  c.delay = restart_delay::exponential(std::chrono::milliseconds(100), std::chrono::seconds(5));
  return c;
}

backend::backend_spec backend(options in, std::shared_ptr<backend::router> router) {
  if (auto err = validate(in); !err.empty())
    throw std::invalid_argument(err);
  auto opts = with_stats(std::move(in));
  std::vector<child_spec> children;
  children.push_back(producer_child(opts));
  for (unsigned i = 0; i < opts.consumers; ++i)
    children.push_back(consumer_child(opts, router, i));
  supervisor_flags flags;
  flags.strategy = restart_strategy::one_for_one;
  flags.intensity = 10;
  flags.period = std::chrono::seconds(10);
  backend::backend_spec spec;
  spec.kind = "amqp";
  spec.producer_name = opts.producer_name;
  spec.supervisor = supervisor_child(opts.id, flags, std::move(children));
  return spec;
}

} // namespace warren::amqp
