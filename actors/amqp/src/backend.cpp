#include "actors.hpp"

#include <warren/amqp/amqp.hpp>
#include <warren/duration.hpp>
#include <warren/supervisor.hpp>

#include <amqp.h>

#include <charconv>
#include <functional>
#include <map>
#include <optional>
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

std::optional<uint64_t> parse_uint(std::string_view v) {
  uint64_t x = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc{} || p != v.data() + v.size() || v.empty())
    return std::nullopt;
  return x;
}

using setter = std::function<std::string(options&, std::string_view)>;

setter text(std::string options::*field) {
  return [field](options& o, std::string_view v) {
    o.*field = std::string{v};
    return std::string{};
  };
}

template <class T>
setter number(T options::*field, uint64_t lo, uint64_t hi) {
  return [field, lo, hi](options& o, std::string_view v) -> std::string {
    auto n = parse_uint(v);
    if (!n || *n < lo || *n > hi)
      return "must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi);
    o.*field = static_cast<T>(*n);
    return {};
  };
}

setter duration(caf::timespan options::*field) {
  return [field](options& o, std::string_view v) -> std::string {
    auto d = warren::parse_duration(v);
    if (!d)
      return "must be a duration (\"250ms\", \"1.5s\", \"2m\") or milliseconds";
    o.*field = *d;
    return {};
  };
}

const std::map<std::string, setter, std::less<>>& setters() {
  static const std::map<std::string, setter, std::less<>> m{
      {"url",
       [](options& o, std::string_view v) -> std::string {
         // librabbitmq's parser: amqp://user:password@host:port/vhost, percent-encoded.
         std::string buf{v};
         amqp_connection_info ci;
         amqp_default_connection_info(&ci);
         if (amqp_parse_url(buf.data(), &ci) != AMQP_STATUS_OK)
           return "must be an AMQP URL, amqp://user:password@host:port/vhost";
         if (ci.ssl)
           return "amqps:// (TLS to the broker) is not supported";
         o.host = ci.host;
         o.port = static_cast<uint16_t>(ci.port);
         o.vhost = ci.vhost;
         o.user = ci.user;
         o.password = ci.password;
         return {};
       }},
      {"host", text(&options::host)},
      {"port", number(&options::port, 1, 65535)},
      {"vhost", text(&options::vhost)},
      {"user", text(&options::user)},
      {"password", text(&options::password)},
      {"heartbeat",
       [](options& o, std::string_view v) -> std::string {
         if (auto n = parse_uint(v); n && *n <= 65535) {
           o.heartbeat = std::chrono::seconds(*n);
           return {};
         }
         if (auto d = warren::parse_duration(v); d && d->count() >= 0) {
           o.heartbeat = std::chrono::duration_cast<std::chrono::seconds>(*d);
           return {};
         }
         return "must be seconds (0 disables) or a duration such as \"10s\"";
       }},
      {"connect_timeout", duration(&options::connect_timeout)},
      {"reconnect_initial", duration(&options::reconnect_initial)},
      {"reconnect_max", duration(&options::reconnect_max)},
      {"exchange", text(&options::exchange)},
      {"exchange_type", text(&options::exchange_type)},
      {"routing_key", text(&options::routing_key)},
      {"from_device_queue", text(&options::from_device_queue)},
      {"from_device_binding", text(&options::from_device_binding)},
      {"max_buffered", number(&options::max_buffered, 1, 1'000'000'000)},
      {"max_in_flight", number(&options::max_in_flight, 1, 1'000'000)},
      {"flush_timeout", duration(&options::flush_timeout)},
      {"to_device_queue", text(&options::to_device_queue)},
      {"dead_letter_exchange", text(&options::dead_letter_exchange)},
      {"dead_letter_queue", text(&options::dead_letter_queue)},
      {"consumers", number(&options::consumers, 0, 1024)},
      {"prefetch", number(&options::prefetch, 1, 65535)},
      {"deliver_timeout", duration(&options::deliver_timeout)},
      {"requeue_delay", duration(&options::requeue_delay)},
  };
  return m;
}

options with_stats(options opts) {
  if (!opts.stats)
    opts.stats = std::make_shared<counters>();
  return opts;
}

} // namespace

std::string set_option(options& opts, std::string_view key, std::string_view value) {
  auto i = setters().find(key);
  if (i == setters().end())
    return "unknown key '" + std::string{key} + "'";
  if (auto err = i->second(opts, value); !err.empty())
    return std::string{key} + " " + err;
  return {};
}

std::vector<std::string> option_keys() {
  std::vector<std::string> out;
  for (auto& [k, _] : setters())
    out.push_back(k);
  return out;
}

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
  c.id = "consumer_" + std::to_string(index);
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
