// Device -> broker: what the producer publishes, when it accepts, how it stops.
#include "amqp_support.hpp"

#include <warren/backend/control.hpp>
#include <warren/registry.hpp>

#include <set>

using namespace amqp_test;
using warren::backend::accepted_atom;
using warren::backend::device_batch;
using warren::backend::publish_atom;

namespace {

device_batch batch(const std::string& conn, const std::string& dev, uint64_t from, uint64_t to,
                   bool with_ids) {
  device_batch::builder b{conn, dev, to - from + 1};
  for (auto seq = from; seq <= to; ++seq)
    b.add(seq, with_ids ? std::optional<uint64_t>{1000 + seq} : std::nullopt,
          dev + "-" + std::to_string(seq) + std::string(seq % 3, '\0') + "x");
  return std::move(b).done();
}

/// Receives accepted_atom on `self` until it reaches `target`, calling `each` per
/// reply. False if it did not get there within the safety timeout.
bool await_accepted(caf::scoped_actor& self, uint64_t target, const std::function<void(uint64_t)>& each,
                    std::chrono::seconds timeout = 60s) {
  uint64_t last = 0;
  bool timed_out = false;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (last < target && !timed_out) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      break;
    self->receive(
        [&](accepted_atom, uint64_t k) {
          CHECK_MESSAGE(k > last, "accepted must grow: " << k << " after " << last);
          last = k;
          each(k);
        },
        caf::after(left) >> [&] { timed_out = true; });
  }
  return last >= target;
}

} // namespace

TEST_CASE("device messages reach the exchange in order with their headers, accepted only once confirmed") {
  AMQP_TEST_REQUIRE_BROKER();
  auto& b = shared_broker();
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto o = test_options(b, "p1");
  o.consumers = 0;
  running_backend top(sys, warren::amqp::backend(o, std::make_shared<fake_router>()));
  auto producer = warren::whereis(sys, o.producer_name);
  REQUIRE(producer);
  REQUIRE(eventually([&] { return o.stats->producer_connected.load() == 1; }));

  client cl{b.port()};
  const auto queue = o.from_device_queue;
  {
    caf::scoped_actor a{sys};
    caf::scoped_actor d{sys};
    a->send(producer, publish_atom::value, batch("conn-a", "dev-a", 1, 3, false));
    d->send(producer, publish_atom::value, batch("conn-d", "dev-d", 1, 4, true));
    a->send(producer, publish_atom::value, batch("conn-a", "dev-a", 4, 5, false));
    a->send(producer, publish_atom::value, batch("conn-a", "dev-a", 6, 10, false));
    // Every accepted seq k is already in the queue: the broker confirmed it (a
    // persistent message in a durable queue is confirmed once it is stored).
    CHECK(await_accepted(a, 10, [&](uint64_t k) {
      CHECK_MESSAGE(cl.count(queue) >= k, "accepted " << k << " before the broker had it");
    }));
    CHECK(await_accepted(d, 4, [&](uint64_t) {}));
  }
  REQUIRE(eventually([&] { return cl.count(queue) == 14; }));

  // Independent cross-check with amqp-tools: the first message is dev-a's first.
  auto [st, body] = run("amqp-get " + b.cli_args() + " -q " + queue);
  CHECK(st == 0);
  CHECK(body == std::string("dev-a-1") + std::string(1, '\0') + "x");

  auto msgs = cl.drain(queue);
  REQUIRE(msgs.size() == 13);
  std::map<std::string, int64_t> last_seq{{"conn-a", 1}, {"conn-d", 0}};
  for (auto& m : msgs) {
    auto conn = m.str("connection_id");
    REQUIRE(last_seq.count(conn) == 1);
    auto seq = m.num("from_device_seq");
    REQUIRE(seq);
    CHECK(*seq == last_seq[conn] + 1); // in order, none missing
    last_seq[conn] = *seq;
    auto dev = conn == "conn-a" ? "dev-a" : "dev-d";
    CHECK(m.str("device_id") == dev);
    CHECK(m.routing_key == dev); // routing key pattern "{device_id}"
    CHECK(m.exchange == o.exchange);
    CHECK(m.delivery_mode == 2); // persistent
    CHECK(m.body == std::string(dev) + "-" + std::to_string(*seq) + std::string(*seq % 3, '\0') + "x");
    // The message_id property: device id + DATA id when there is one (the same for a
    // resend on another connection), else connection id + from_device_seq.
    if (conn == "conn-d") {
      CHECK(m.num("message_id") == 1000 + *seq);
      CHECK(m.message_id == "d/dev-d/" + std::to_string(1000 + *seq));
    } else {
      CHECK(m.headers.count("message_id") == 0);
      CHECK(m.message_id == "c/conn-a/" + std::to_string(*seq));
    }
  }
  CHECK(last_seq["conn-a"] == 10);
  CHECK(last_seq["conn-d"] == 4);
  CHECK(o.stats->confirmed.load() == 14);
  CHECK(o.stats->buffered.load() == 0);
  top.stop();
}

TEST_CASE("a clean shutdown waits for pending confirms and releases the connection") {
  AMQP_TEST_REQUIRE_BROKER();
  auto& b = shared_broker();
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto o = test_options(b, "p2");
  o.consumers = 1;
  o.flush_timeout = std::chrono::seconds(60); // a safety net; the flush ends when confirms are in
  running_backend top(sys, warren::amqp::backend(o, std::make_shared<fake_router>()));
  auto producer = warren::whereis(sys, o.producer_name);
  REQUIRE(producer);
  REQUIRE(eventually(
      [&] { return o.stats->producer_connected.load() == 1 && o.stats->consumers_connected.load() == 1; }));

  constexpr uint64_t total = 3000;
  caf::scoped_actor s{sys};
  for (uint64_t seq = 1; seq <= total; seq += 100)
    s->send(producer, publish_atom::value, batch("conn-s", "dev-s", seq, seq + 99, false));
  // Stop at once: the producer takes what is already in its mailbox, then flushes.
  CHECK(warren::is_shutdown(top.stop()));

  // Everything was confirmed before the producer went, and each session heard of it.
  uint64_t accepted = 0;
  for (bool more = true; more;)
    s->receive([&](accepted_atom, uint64_t k) { accepted = std::max(accepted, k); },
               caf::after(std::chrono::milliseconds(0)) >> [&] { more = false; });
  CHECK(accepted == total);
  CHECK(o.stats->confirmed.load() == total);
  CHECK(o.stats->buffered.load() == 0);
  CHECK(o.stats->producer_connected.load() == 0);
  CHECK(o.stats->consumers_connected.load() == 0);
  client cl{b.port()};
  CHECK(cl.count(o.from_device_queue) == total);
  // The broker agrees that only our cross-check client is still connected.
  CHECK(eventually(
      [&] {
        auto [st, out] = b.ctl("list_connections --no-table-headers user");
        return st == 0 && std::count(out.begin(), out.end(), '\n') == 1;
      },
      60s));
}

TEST_CASE("routing key pattern and an unidentified device") {
  AMQP_TEST_REQUIRE_BROKER();
  auto& b = shared_broker();
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto o = test_options(b, "p3");
  o.consumers = 0;
  o.exchange_type = "direct";
  o.routing_key = "dev.{device_id}.conn.{connection_id}";
  o.from_device_binding = "dev.-.conn.c9"; // direct: only this key reaches the queue
  running_backend top(sys, warren::amqp::backend(o, std::make_shared<fake_router>()));
  auto producer = warren::whereis(sys, o.producer_name);
  REQUIRE(producer);
  caf::scoped_actor s{sys};
  s->send(producer, publish_atom::value, batch("c9", "", 1, 2, false));
  CHECK(await_accepted(s, 2, [](uint64_t) {}));
  client cl{b.port()};
  auto msgs = cl.drain(o.from_device_queue);
  REQUIRE(msgs.size() == 2);
  CHECK(msgs[0].routing_key == "dev.-.conn.c9");
  CHECK(msgs[0].str("device_id") == "");
  top.stop();
}

TEST_CASE("flush_atom answers once everything taken before is confirmed") {
  AMQP_TEST_REQUIRE_BROKER();
  auto& b = shared_broker();
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto o = test_options(b, "p4");
  o.consumers = 0;
  running_backend top(sys, warren::amqp::backend(o, std::make_shared<fake_router>()));
  auto producer = warren::whereis(sys, o.producer_name);
  REQUIRE(producer);
  caf::scoped_actor s{sys};
  bool flushed = false;
  s->request(producer, 60s, warren::backend::flush_atom::value)
      .receive([&] { flushed = true; }, [&](caf::error& err) { FAIL("flush failed: " << to_string(err)); });
  CHECK(flushed); // nothing pending: at once

  constexpr uint64_t total = 2000;
  for (uint64_t seq = 1; seq <= total; seq += 200)
    s->send(producer, publish_atom::value, batch("conn-f", "dev-f", seq, seq + 199, false));
  flushed = false;
  s->request(producer, 60s, warren::backend::flush_atom::value)
      .receive([&] { flushed = true; }, [&](caf::error& err) { FAIL("flush failed: " << to_string(err)); });
  CHECK(flushed);
  CHECK(o.stats->confirmed.load() == total);
  client cl{b.port()};
  CHECK(cl.count(o.from_device_queue) == total);
  uint64_t accepted = 0;
  for (bool more = true; more;)
    s->receive([&](accepted_atom, uint64_t k) { accepted = std::max(accepted, k); },
               caf::after(std::chrono::milliseconds(0)) >> [&] { more = false; });
  CHECK(accepted == total);
  top.stop();
}
