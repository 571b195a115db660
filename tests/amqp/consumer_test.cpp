// Broker -> device: routing through the router, acks, dead-lettering, redelivery.
#include "amqp_support.hpp"

#include <set>

using namespace amqp_test;
using warren::backend::address_kind;

namespace {

struct fixture {
  std::shared_ptr<fake_router> router = std::make_shared<fake_router>();
  std::shared_ptr<recorder> rec = std::make_shared<recorder>();
  std::shared_ptr<session_ctl> ctl = std::make_shared<session_ctl>();

  caf::actor session(caf::actor_system& sys, address_kind kind, const std::string& id) {
    auto a = sys.spawn(fake_session, id, rec, ctl);
    router->add(kind, id, a);
    return a;
  }
};

std::string publish_cli(const broker& b, const std::string& queue, const std::string& body,
                        const std::vector<std::string>& headers) {
  std::string cmd = "amqp-publish " + b.cli_args() + " -p -r " + queue + " -b '" + body + "'";
  for (auto& h : headers)
    cmd += " -H '" + h + "'";
  auto [st, out] = run(cmd + " 2>&1");
  return st == 0 ? std::string{} : "amqp-publish failed: " + out;
}

} // namespace

TEST_CASE("to-device messages are routed by device id and by connection id, then acked") {
  AMQP_TEST_REQUIRE_BROKER();
  auto& b = shared_broker();
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  fixture f;
  f.session(sys, address_kind::device, "dev1");
  f.session(sys, address_kind::connection, "conn-abc");
  auto o = test_options(b, "c1");
  o.consumers = 2;
  running_backend top(sys, warren::amqp::backend(o, f.router));
  REQUIRE(eventually([&] { return o.stats->consumers_connected.load() == 2; }));

  // amqp-tools' amqp-publish sends headers as strings; our own client as long long.
  CHECK(publish_cli(b, o.to_device_queue, "hello-cli", {"device_id: dev1", "to_device_seq: 1"}) == "");
  {
    client cl{b.port()};
    cl.publish(o.to_device_queue, "raw-2", {{"device_id", "dev1"}, {"to_device_seq", int64_t{2}}});
    cl.publish(o.to_device_queue, "to-conn", {{"connection_id", "conn-abc"}, {"to_device_seq", int64_t{7}}});
    cl.publish(o.to_device_queue, "no-seq", {{"connection_id", "conn-abc"}});
  }
  REQUIRE(eventually([&] { return f.rec->size() == 4 && o.stats->acked.load() == 4; }));
  std::map<std::string, recorder::entry> by_payload;
  for (auto& e : f.rec->snapshot())
    by_payload[e.msg.payload] = e;
  REQUIRE(by_payload.size() == 4);
  CHECK(by_payload["hello-cli"].session == "dev1");
  CHECK(by_payload["hello-cli"].msg.kind == address_kind::device);
  CHECK(by_payload["hello-cli"].msg.target == "dev1");
  CHECK(by_payload["hello-cli"].msg.to_device_seq == 1u);
  CHECK(by_payload["raw-2"].session == "dev1");
  CHECK(by_payload["raw-2"].msg.to_device_seq == 2u);
  CHECK(by_payload["to-conn"].session == "conn-abc");
  CHECK(by_payload["to-conn"].msg.kind == address_kind::connection);
  CHECK(by_payload["to-conn"].msg.to_device_seq == 7u);
  CHECK(!by_payload["no-seq"].msg.to_device_seq);
  CHECK(o.stats->dead_lettered.load() == 0);

  // Acked for real: after the consumers are gone nothing comes back to the queue.
  top.stop();
  client cl{b.port()};
  CHECK(cl.count(o.to_device_queue) == 0);
  CHECK(cl.count(o.dead_letter_queue) == 0);
}

TEST_CASE("a message for an absent device or without a target is dead-lettered") {
  AMQP_TEST_REQUIRE_BROKER();
  auto& b = shared_broker();
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  fixture f;
  f.session(sys, address_kind::device, "present");
  auto o = test_options(b, "c2");
  running_backend top(sys, warren::amqp::backend(o, f.router));
  REQUIRE(eventually([&] { return o.stats->consumers_connected.load() == 2; }));

  CHECK(publish_cli(b, o.to_device_queue, "for-nobody", {"device_id: nobody"}) == "");
  REQUIRE(eventually([&] { return o.stats->dead_lettered.load() == 1; }));
  {
    client cl{b.port()};
    cl.publish(o.to_device_queue, "no-target", {{"to_device_seq", int64_t{3}}});
    cl.publish(o.to_device_queue, "bad-seq", {{"device_id", "present"}, {"to_device_seq", "soon"}});
  }
  REQUIRE(eventually([&] { return o.stats->dead_lettered.load() == 3; }));
  CHECK(f.rec->size() == 0);

  // amqp-get (independent) finds the first one in the dead-letter queue.
  REQUIRE(eventually([&] { return client{b.port()}.count(o.dead_letter_queue) == 3; }));
  auto [st, body] = run("amqp-get " + b.cli_args() + " -q " + o.dead_letter_queue);
  CHECK(st == 0);
  CHECK(body == "for-nobody");
  client cl{b.port()};
  auto rest = cl.drain(o.dead_letter_queue);
  REQUIRE(rest.size() == 2);
  // Two consumers: the two may be rejected in either order.
  std::set<std::string> bodies{rest[0].body, rest[1].body};
  CHECK(bodies == std::set<std::string>{"no-target", "bad-seq"});
  CHECK(cl.count(o.to_device_queue) == 0);
  top.stop();
}

TEST_CASE("a delivery the session fails is requeued, and dead-lettered once the session is gone") {
  AMQP_TEST_REQUIRE_BROKER();
  auto& b = shared_broker();
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  fixture f;
  f.session(sys, address_kind::device, "flaky");
  f.ctl->mode = session_mode::fail;
  auto o = test_options(b, "c3");
  o.consumers = 1;
  o.requeue_delay = std::chrono::milliseconds(50);
  running_backend top(sys, warren::amqp::backend(o, f.router));
  REQUIRE(eventually([&] { return o.stats->consumers_connected.load() == 1; }));
  client cl{b.port()};
  cl.publish(o.to_device_queue, "retry-me", {{"device_id", "flaky"}});
  // Failed twice, requeued each time (never dropped) ...
  REQUIRE(eventually([&] { return o.stats->requeued.load() >= 2; }));
  // ... then the session takes it.
  f.ctl->mode = session_mode::deliver;
  REQUIRE(eventually([&] { return o.stats->acked.load() == 1; }));
  auto got = f.rec->snapshot();
  CHECK(got.size() >= 3);
  for (auto& e : got)
    CHECK(e.msg.payload == "retry-me");

  // A failing session that then leaves: the next failure dead-letters the message.
  f.ctl->mode = session_mode::fail;
  f.router->remove(address_kind::device, "flaky");
  cl.publish(o.to_device_queue, "gone", {{"device_id", "flaky"}});
  REQUIRE(eventually([&] { return o.stats->dead_lettered.load() == 1; }));
  REQUIRE(eventually([&] { return cl.count(o.dead_letter_queue) == 1; }));
  CHECK(cl.get(o.dead_letter_queue)->body == "gone");
  top.stop();
}

TEST_CASE("a consumer killed mid-stream is restarted and its unacked deliveries come back") {
  AMQP_TEST_REQUIRE_BROKER();
  auto& b = shared_broker();
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  fixture f;
  f.session(sys, address_kind::device, "slow");
  f.ctl->mode = session_mode::hold; // takes deliveries, never answers
  auto o = test_options(b, "c4");
  o.consumers = 1;
  o.prefetch = 10;
  o.deliver_timeout = std::chrono::seconds(120); // no timeout-driven requeue in this test
  running_backend top(sys, warren::amqp::backend(o, f.router));
  REQUIRE(eventually([&] { return o.stats->consumers_connected.load() == 1; }));
  client cl{b.port()};
  constexpr int n = 25;
  for (int i = 0; i < n; ++i)
    cl.publish(o.to_device_queue, "m" + std::to_string(i),
               {{"device_id", "slow"}, {"to_device_seq", int64_t{i}}});
  // The consumer holds `prefetch` deliveries, unacked.
  REQUIRE(eventually([&] { return f.rec->size() == 10; }));
  auto consumer = child_of(sys, top, {o.id, "consumer_0"});
  REQUIRE(consumer);
  f.ctl->mode = session_mode::deliver;
  caf::anon_send_exit(consumer, caf::exit_reason::kill);
  // Restarted by its supervisor; the broker redelivers the 10 and the rest follows.
  REQUIRE(eventually([&] { return o.stats->acked.load() == n; }, 60s));
  auto restarted = child_of(sys, top, {o.id, "consumer_0"});
  CHECK(restarted);
  CHECK(restarted != consumer);
  std::map<std::string, int> seen;
  for (auto& e : f.rec->snapshot())
    ++seen[e.msg.payload];
  CHECK(seen.size() == n);
  int twice = 0;
  for (auto& [payload, times] : seen)
    if (times == 2)
      ++twice;
  CHECK(twice == 10); // exactly the held ones came back
  CHECK(o.stats->consumer_connects.load() == 2);
  top.stop();
  CHECK(cl.count(o.to_device_queue) == 0);
}

TEST_CASE("idle connections stay up: heartbeats go both ways") {
  AMQP_TEST_REQUIRE_BROKER();
  auto& b = shared_broker();
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  fixture f;
  f.session(sys, address_kind::device, "quiet");
  auto o = test_options(b, "c5");
  o.consumers = 1;
  o.heartbeat = std::chrono::seconds(1); // the broker closes a connection after 2 missed heartbeats
  running_backend top(sys, warren::amqp::backend(o, f.router));
  REQUIRE(eventually(
      [&] { return o.stats->producer_connected.load() == 1 && o.stats->consumers_connected.load() == 1; }));
  std::this_thread::sleep_for(4s); // idle for four heartbeat intervals
  CHECK(o.stats->producer_disconnects.load() == 0);
  CHECK(o.stats->consumer_disconnects.load() == 0);
  // ... and still working.
  client cl{b.port()};
  cl.publish(o.to_device_queue, "still-here", {{"device_id", "quiet"}});
  REQUIRE(eventually([&] { return o.stats->acked.load() == 1; }));
  CHECK(o.stats->consumer_connects.load() == 1);
  CHECK(o.stats->producer_connects.load() == 1);
}
