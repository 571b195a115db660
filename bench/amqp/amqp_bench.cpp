// warren-bench-amqp: throughput of the amqp backend against a RabbitMQ broker, next
// to a plain librabbitmq client doing the same on the same broker.
//
//   device -> broker  sessions publish batches through the producer (persistent,
//                     publisher confirms); time until every message is accepted.
//   broker -> device  the to-device queue is filled first, then the consumer pool
//                     routes every message to a fake session that answers at once;
//                     time until every delivery is acked.
//   baselines         one raw librabbitmq connection: persistent publishes with
//                     pipelined confirms (what `amqp-publish` does per message, minus
//                     the process start), a basic.consume + ack loop, and the
//                     `amqp-publish` CLI itself in a shell loop.
//
// Usage: warren-bench-amqp [--port N] [--messages N] [--payload BYTES] [--sessions N]
//                          [--batch N] [--consumers N] [--prefetch N]
// Without --port it starts a private broker (tests/amqp/support/broker.hpp).
#include "broker.hpp"

#include <warren/amqp/amqp.hpp>
#include <warren/log.hpp>
#include <warren/registry.hpp>
#include <warren/supervisor.hpp>

#include <caf/all.hpp>

#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace backend = warren::backend;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

namespace {

struct config {
  uint16_t port = 0;
  uint64_t messages = 200'000;
  size_t payload = 64;
  unsigned sessions = 16;
  unsigned batch = 50;
  unsigned consumers = 8;
  uint16_t prefetch = 256;
};

double secs(clk::duration d) {
  return std::chrono::duration<double>(d).count();
}

// -- raw librabbitmq helpers -------------------------------------------------------

amqp_connection_state_t raw_connect(uint16_t port) {
  auto conn = amqp_new_connection();
  auto sock = amqp_tcp_socket_new(conn);
  timeval tv{10, 0};
  if (amqp_socket_open_noblock(sock, "127.0.0.1", port, &tv) != AMQP_STATUS_OK)
    throw std::runtime_error("connect failed");
  if (amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest").reply_type !=
      AMQP_RESPONSE_NORMAL)
    throw std::runtime_error("login failed");
  amqp_channel_open(conn, 1);
  return conn;
}

void raw_close(amqp_connection_state_t conn) {
  amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn);
}

void declare_queue(amqp_connection_state_t conn, const std::string& q, const std::string& dlx = "") {
  amqp_table_entry_t arg;
  amqp_table_t args = amqp_empty_table;
  if (!dlx.empty()) {
    arg.key = amqp_cstring_bytes("x-dead-letter-exchange");
    arg.value.kind = AMQP_FIELD_KIND_UTF8;
    arg.value.value.bytes = amqp_cstring_bytes(dlx.c_str());
    args.num_entries = 1;
    args.entries = &arg;
  }
  amqp_queue_declare(conn, 1, amqp_cstring_bytes(q.c_str()), 0, 1, 0, 0, args);
  amqp_queue_purge(conn, 1, amqp_cstring_bytes(q.c_str()));
}

/// Publishes `n` persistent messages with device headers to `queue` through the
/// default exchange, confirms pipelined with a window; returns the elapsed time.
clk::duration raw_publish(uint16_t port, const std::string& queue, uint64_t n, size_t payload, bool confirms,
                          bool to_device_headers, const std::string& dlx = "") {
  auto conn = raw_connect(port);
  declare_queue(conn, queue, dlx);
  if (confirms)
    amqp_confirm_select(conn, 1);
  std::string body(payload, 'x');
  uint64_t confirmed = 0;
  auto start = clk::now();
  for (uint64_t i = 1; i <= n; ++i) {
    amqp_table_entry_t h[3];
    auto seq = std::to_string(i);
    h[0].key = amqp_cstring_bytes(to_device_headers ? "device_id" : "connection_id");
    h[0].value.kind = AMQP_FIELD_KIND_UTF8;
    h[0].value.value.bytes = amqp_cstring_bytes(to_device_headers ? "dev-0" : "conn-0");
    h[1].key = amqp_cstring_bytes(to_device_headers ? "to_device_seq" : "from_device_seq");
    h[1].value.kind = AMQP_FIELD_KIND_I64;
    h[1].value.value.i64 = static_cast<int64_t>(i);
    h[2].key = amqp_cstring_bytes("device_id");
    h[2].value.kind = AMQP_FIELD_KIND_UTF8;
    h[2].value.value.bytes = amqp_cstring_bytes("dev-0");
    amqp_basic_properties_t props;
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_HEADERS_FLAG;
    props.delivery_mode = 2;
    props.headers.num_entries = to_device_headers ? 2 : 3;
    props.headers.entries = h;
    amqp_bytes_t b{body.size(), body.data()};
    amqp_basic_publish(conn, 1, amqp_empty_bytes, amqp_cstring_bytes(queue.c_str()), 0, 0, &props, b);
    // Keep at most 8192 unconfirmed, as the producer does.
    while (confirms && (i - confirmed > 8192 || (i == n && confirmed < n))) {
      amqp_frame_t f;
      timeval tv{10, 0};
      if (amqp_simple_wait_frame_noblock(conn, &f, &tv) != AMQP_STATUS_OK)
        throw std::runtime_error("confirm wait failed");
      if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
        auto* a = static_cast<amqp_basic_ack_t*>(f.payload.method.decoded);
        confirmed = a->multiple ? a->delivery_tag : confirmed + 1;
      }
      amqp_maybe_release_buffers(conn);
    }
  }
  auto took = clk::now() - start;
  raw_close(conn);
  return took;
}

/// basic.consume + ack each on one connection until `n` messages came.
clk::duration raw_consume(uint16_t port, const std::string& queue, uint64_t n, uint16_t prefetch) {
  auto conn = raw_connect(port);
  amqp_basic_qos(conn, 1, 0, prefetch, 0);
  auto start = clk::now();
  amqp_basic_consume(conn, 1, amqp_cstring_bytes(queue.c_str()), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
  for (uint64_t got = 0; got < n;) {
    amqp_envelope_t env;
    amqp_maybe_release_buffers(conn);
    timeval tv{10, 0};
    auto r = amqp_consume_message(conn, &env, &tv, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
      throw std::runtime_error("consume failed");
    amqp_basic_ack(conn, 1, env.delivery_tag, 0);
    amqp_destroy_envelope(&env);
    ++got;
  }
  auto took = clk::now() - start;
  raw_close(conn);
  return took;
}

// -- through Warren ------------------------------------------------------------------

/// A session: keeps `window` batches outstanding, counts accepted messages.
struct session_state {
  caf::actor producer;
  std::string conn;
  uint64_t total = 0; // messages to send
  unsigned batch = 50;
  size_t payload = 64;
  uint64_t next = 1, accepted = 0;
  std::shared_ptr<std::atomic<uint64_t>> done;
};

caf::behavior bench_session(caf::stateful_actor<session_state>* self, session_state init) {
  self->state = std::move(init);
  auto send_batch = [self] {
    auto& s = self->state;
    if (s.next > s.total)
      return;
    auto last = std::min<uint64_t>(s.total, s.next + s.batch - 1);
    backend::device_batch::builder b{s.conn, "dev-" + s.conn, last - s.next + 1,
                                     (last - s.next + 1) * s.payload};
    std::string payload(s.payload, 'x');
    for (; s.next <= last; ++s.next)
      b.add(s.next, std::nullopt, payload);
    self->send(s.producer, backend::publish_atom::value, std::move(b).done());
  };
  for (int i = 0; i < 8; ++i) // a window of 8 batches, as a session holding ACKs would
    send_batch();
  return {
      [self, send_batch](backend::accepted_atom, uint64_t k) {
        auto& s = self->state;
        s.done->fetch_add(k - s.accepted);
        s.accepted = k;
        while (s.next <= s.total && s.next - 1 - s.accepted < 8ull * s.batch)
          send_batch();
      },
  };
}

class bench_router : public backend::router {
public:
  caf::actor session;
  caf::actor find(backend::address_kind, std::string_view) const override { return session; }
};

caf::behavior instant_session(caf::event_based_actor*) {
  return {[](backend::deliver_atom, backend::to_device_message&) { return backend::delivered_atom::value; }};
}

} // namespace

int main(int argc, char** argv) {
  config cfg;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    auto v = std::stoull(argv[i + 1]);
    if (k == "--port")
      cfg.port = static_cast<uint16_t>(v);
    else if (k == "--messages")
      cfg.messages = v;
    else if (k == "--payload")
      cfg.payload = v;
    else if (k == "--sessions")
      cfg.sessions = static_cast<unsigned>(v);
    else if (k == "--batch")
      cfg.batch = static_cast<unsigned>(v);
    else if (k == "--consumers")
      cfg.consumers = static_cast<unsigned>(v);
    else if (k == "--prefetch")
      cfg.prefetch = static_cast<uint16_t>(v);
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  warren::set_log_level(spdlog::level::warn);
  std::unique_ptr<amqp_test::broker> own;
  if (cfg.port == 0) {
    std::printf("starting a private broker...\n");
    own = std::make_unique<amqp_test::broker>();
    cfg.port = own->port();
  }
  const auto n = cfg.messages;
  std::printf("broker 127.0.0.1:%u, %llu messages of %zu bytes\n", cfg.port,
              static_cast<unsigned long long>(n), cfg.payload);

  // Baselines first (plain librabbitmq, one connection).
  auto t = raw_publish(cfg.port, "bench.raw", n, cfg.payload, true, false);
  std::printf("%-58s %10.0f msg/s\n", "raw librabbitmq publish, persistent, confirms:", n / secs(t));
  t = raw_consume(cfg.port, "bench.raw", n, cfg.prefetch);
  std::printf("%-58s %10.0f msg/s\n", "raw librabbitmq consume + ack:", n / secs(t));

  // The CLI itself: one process, connection and message per amqp-publish call.
  if (std::system("command -v amqp-publish >/dev/null 2>&1") == 0) {
    constexpr int calls = 300;
    std::string cmd = "for i in $(seq " + std::to_string(calls) +
                      "); do amqp-publish --server 127.0.0.1 --port " + std::to_string(cfg.port) +
                      " -p -r bench.cli -b " + std::string(cfg.payload, 'x') + " || exit 1; done";
    auto conn = raw_connect(cfg.port);
    declare_queue(conn, "bench.cli");
    raw_close(conn);
    auto t0 = clk::now();
    if (std::system(cmd.c_str()) == 0)
      std::printf("%-58s %10.0f msg/s\n",
                  "amqp-publish CLI in a shell loop (one process each):", calls / secs(clk::now() - t0));
  }

  caf::actor_system_config ccfg;
  caf::actor_system sys{ccfg};
  auto router = std::make_shared<bench_router>();
  router->session = sys.spawn(instant_session);
  warren::amqp::options o;
  o.port = cfg.port;
  o.exchange = "bench.from_device";
  o.from_device_queue = "bench.from_device";
  o.to_device_queue = "bench.to_device";
  o.consumers = cfg.consumers;
  o.prefetch = cfg.prefetch;
  o.stats = std::make_shared<warren::amqp::counters>();
  {
    auto conn = raw_connect(cfg.port);
    declare_queue(conn, o.from_device_queue);
    raw_close(conn);
  }

  // device -> broker through the producer (consumers idle on an empty queue).
  auto top = warren::start_supervisor(sys, {}, {warren::amqp::backend(o, router).supervisor}, "bench");
  if (!top) {
    std::fprintf(stderr, "backend did not start\n");
    return 1;
  }
  auto producer = warren::whereis(sys, o.producer_name);
  while (o.stats->producer_connected.load() == 0 || o.stats->consumers_connected.load() < int(cfg.consumers))
    std::this_thread::sleep_for(10ms);
  auto done = std::make_shared<std::atomic<uint64_t>>(0);
  auto per = n / cfg.sessions;
  auto start = clk::now();
  for (unsigned i = 0; i < cfg.sessions; ++i) {
    session_state s;
    s.producer = producer;
    s.conn = "conn-" + std::to_string(i);
    s.total = per;
    s.batch = cfg.batch;
    s.payload = cfg.payload;
    s.done = done;
    sys.spawn(bench_session, std::move(s));
  }
  while (done->load() < per * cfg.sessions)
    std::this_thread::sleep_for(1ms);
  t = clk::now() - start;
  std::printf("%-58s %10.0f msg/s\n",
              "warren producer (sessions -> broker, confirmed, accepted):", per * cfg.sessions / secs(t));

  // broker -> device: stop the backend, fill the to-device queue, start it again.
  warren::sup::stop(sys, *top);
  raw_publish(cfg.port, o.to_device_queue, n, cfg.payload, true, true, o.dead_letter_exchange);
  o.stats = std::make_shared<warren::amqp::counters>();
  start = clk::now();
  top = warren::start_supervisor(sys, {}, {warren::amqp::backend(o, router).supervisor}, "bench");
  while (o.stats->acked.load() < n)
    std::this_thread::sleep_for(1ms);
  t = clk::now() - start;
  std::printf("%-58s %10.0f msg/s\n", "warren consumers (queue -> router -> session, acked):", n / secs(t));
  warren::sup::stop(sys, *top);
  return 0;
}
