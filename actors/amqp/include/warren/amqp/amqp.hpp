// The `amqp` backend: RabbitMQ over AMQP 0-9-1 with librabbitmq (rabbitmq-c).
//
//   producer   (publish_atom, device_batch) from a session -> persistent
//              publishes with publisher confirms; (accepted_atom, highest seq) back to
//              the session once the broker confirmed every message up to that seq.
//   consumers  a pool; each reads the to-device queue on its own connection and
//              routes every delivery through backend::router to its session
//              (deliver_atom); ack once delivered, reject (-> dead-letter queue) when
//              no such device is connected.
//
// librabbitmq is blocking, so every AMQP connection lives on a thread owned by its
// actor; actors and threads talk through a mutex-guarded hand-over queue plus an
// eventfd, and messages back to the actor. actors/amqp/README.md has the guarantees.
#pragma once

#include <warren/backend/messages.hpp>

#include <caf/timespan.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace warren::amqp {

/// Live counters of one amqp backend, shared by its actors and threads (all relaxed
/// atomics; read them from anywhere, e.g. for metrics).
struct counters {
  // producer
  std::atomic<uint64_t> published{0};   ///< basic.publish sent (republishes included)
  std::atomic<uint64_t> confirmed{0};   ///< messages the broker confirmed (basic.ack)
  std::atomic<uint64_t> nacked{0};      ///< messages the broker nacked (republished)
  std::atomic<uint64_t> republished{0}; ///< unconfirmed messages published again after a reconnect
  std::atomic<uint64_t> buffered{0};    ///< accepted from sessions, not yet confirmed (gauge)
  std::atomic<uint64_t> deferred{0};    ///< messages held back because buffered hit max_buffered (gauge)
  std::atomic<uint64_t> producer_connects{0};
  std::atomic<uint64_t> producer_disconnects{0};
  std::atomic<int> producer_connected{0}; ///< 0 or 1 (gauge)
  // consumers
  std::atomic<uint64_t> deliveries{0};    ///< deliveries read from the to-device queue
  std::atomic<uint64_t> acked{0};         ///< delivered to a session and acked
  std::atomic<uint64_t> dead_lettered{0}; ///< rejected without requeue (no such device, bad headers)
  std::atomic<uint64_t> requeued{0};      ///< nacked with requeue (session failed or timed out)
  std::atomic<uint64_t> consumer_connects{0};
  std::atomic<uint64_t> consumer_disconnects{0};
  std::atomic<int> consumers_connected{0}; ///< consumers with a live channel (gauge)
};

struct options {
  // -- connection ----------------------------------------------------------------
  std::string host = "127.0.0.1";
  uint16_t port = 5672;
  std::string vhost = "/";
  std::string user = "guest";
  std::string password = "guest";
  std::chrono::seconds heartbeat{10}; ///< 0 disables AMQP heartbeats
  caf::timespan connect_timeout = std::chrono::seconds(5);
  caf::timespan reconnect_initial = std::chrono::milliseconds(100); ///< first backoff after a failure
  caf::timespan reconnect_max = std::chrono::seconds(10);           ///< backoff cap (doubles up to it)

  // -- device -> backend -------------------------------------------------------------
  std::string exchange = "warren.from_device"; ///< declared durable
  std::string exchange_type = "topic";         ///< topic or direct
  /// Routing key of each publish; "{device_id}" and "{connection_id}" are replaced
  /// (an empty device id becomes "-").
  std::string routing_key = "{device_id}";
  /// Durable queue declared and bound to `exchange` with `from_device_binding`, so
  /// nothing confirmed is unroutable; empty: declare none (bind your own).
  std::string from_device_queue = "warren.from_device";
  std::string from_device_binding = "#";
  /// Messages accepted from sessions and not yet confirmed (in flight or waiting for
  /// the broker). Past it the producer takes no new batches: sessions keep holding
  /// their devices' ACKs (backpressure); nothing already accepted is dropped.
  std::size_t max_buffered = 100'000;
  /// Published-but-unconfirmed window per connection (confirms are pipelined).
  std::size_t max_in_flight = 8192;
  /// Shutdown: how long the producer waits for outstanding confirms.
  caf::timespan flush_timeout = std::chrono::seconds(5);

  // -- backend -> device -------------------------------------------------------------
  std::string to_device_queue = "warren.to_device";             ///< durable, dead-letters to:
  std::string dead_letter_exchange = "warren.dead_letter";      ///< fanout, durable
  std::string dead_letter_queue = "warren.dead_letter";         ///< durable, bound to it
  unsigned consumers = 8;                                       ///< pool size (connections)
  uint16_t prefetch = 64;                                       ///< basic.qos per consumer
  caf::timespan deliver_timeout = std::chrono::seconds(5);      ///< session's delivered_atom
  caf::timespan requeue_delay = std::chrono::milliseconds(200); ///< before nack(requeue)

  // -- tree ------------------------------------------------------------------------
  std::string id = "backend"; ///< the backend supervisor's child id (as local and echo)
  std::string producer_name = "warren.backend.producer"; ///< registered name of the producer
  /// Counters to fill; created by backend() when null.
  std::shared_ptr<counters> stats;
};

/// The amqp backend as a supervisor child (one_for_one): "producer" (registered as
/// producer_name) and "consumer_0".."consumer_<n-1>", each restartable.
backend::backend_spec backend(options opts, std::shared_ptr<backend::router> router);

/// The producer alone, as a child spec (id "producer"; registers opts.producer_name).
child_spec producer_child(const options& opts);

/// One consumer, as a child spec (id "consumer_<index>").
child_spec consumer_child(const options& opts, std::shared_ptr<backend::router> router, unsigned index);

/// Checks options (host, port, exchange type, names, sizes): empty string if fine.
std::string validate(const options& opts);

/// Sets one option from configuration text, by the key docs/gateway.md documents
/// for [backend.amqp] (the field names above; durations as "250ms", "5s", "2m" or
/// plain milliseconds; heartbeat in seconds or as a duration). Returns an error text,
/// or an empty string on success.
std::string set_option(options& opts, std::string_view key, std::string_view value);

/// Every key set_option() accepts.
std::vector<std::string> option_keys();

} // namespace warren::amqp
