// The whole gateway with the amqp backend against a real RabbitMQ broker that this
// executable starts on loopback (tests/amqp/support/broker.hpp): devices speaking codec
// frame (TLS and plain TCP), amqp-tools and a raw librabbitmq client as independent
// AMQP clients, and the real warren-gateway binary for the SIGTERM drain.
#include "cluster_support.hpp"

#ifdef WARREN_GATEWAY_HAS_AMQP

#include "amqp_support.hpp"

#include <warren/registry.hpp>
#include <warren/supervisor.hpp>

#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

using namespace gw_test;
using net::codec::frame_type;

namespace {

namespace at = amqp_test;

/// The queue/exchange names of one test case, all under `prefix`.
struct names {
  std::string prefix;
  std::string from_device() const { return prefix + ".from_device"; }
  std::string to_device() const { return prefix + ".to_device"; }
  std::string dead_letter() const { return prefix + ".dead_letter"; }
};

/// [backend.amqp] for `b`, with this case's own exchange and queues.
toml::table amqp_table(const at::broker& b, const names& n, int consumers) {
  toml::table t;
  t.insert_or_assign("host", "127.0.0.1");
  t.insert_or_assign("port", static_cast<int64_t>(b.port()));
  t.insert_or_assign("heartbeat", 5);
  t.insert_or_assign("reconnect_initial", "50ms");
  t.insert_or_assign("reconnect_max", "500ms");
  t.insert_or_assign("exchange", n.from_device());
  t.insert_or_assign("from_device_queue", n.from_device());
  t.insert_or_assign("to_device_queue", n.to_device());
  t.insert_or_assign("dead_letter_exchange", n.dead_letter());
  t.insert_or_assign("dead_letter_queue", n.dead_letter());
  t.insert_or_assign("consumers", consumers);
  return t;
}

/// A gateway with the amqp backend: listener "plain" (and "tls" with the development
/// certificate), codec frame, identify = first_message.
gw::config amqp_config(const at::broker& b, const names& n, int consumers = 2, bool tls = false) {
  auto c = test_config("amqp");
  c.backend.amqp = amqp_table(b, n, consumers);
  c.listeners[0].net.codec = net::codec_kind::frame;
  c.listeners[0].session.identify = gw::identify_mode::first_message;
  if (tls) {
    auto l = c.listeners[0];
    l.name = "tls";
    l.tls = true; // no certificate: the development one in data_dir
    c.listeners.push_back(l);
  }
  return c;
}

std::shared_ptr<asio::ssl::context> trusting(const std::string& ca_file) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->set_verify_mode(asio::ssl::verify_peer);
  ctx->load_verify_file(ca_file);
  return ctx;
}

/// Whether `queue` exists on `b` (a fresh connection: a failed passive declare closes
/// the channel).
bool queue_exists(const at::broker& b, const std::string& queue) {
  try {
    at::client cl{b.port()};
    cl.count(queue);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

/// Waits until the gateway's backend declared this case's queues.
void wait_topology(const at::broker& b, const names& n) {
  REQUIRE_MESSAGE(
      at::eventually([&] { return queue_exists(b, n.from_device()) && queue_exists(b, n.to_device()); }, 60s),
      "the gateway's amqp backend did not declare its queues\n"
          << b.server_log());
}

/// Column `column` of `queue` in rabbitmqctl list_queues (-1 if unknown): "messages"
/// (ready + unacknowledged, one snapshot), "messages_unacknowledged", ...
long queue_stat(const at::broker& b, const std::string& queue, const std::string& column) {
  auto [rc, out] = b.ctl("list_queues --no-table-headers name " + column);
  if (rc != 0)
    return -1;
  std::istringstream in{out};
  std::string name;
  long n = 0;
  while (in >> name >> n)
    if (name == queue)
      return n;
  return -1;
}

long unacked(const at::broker& b, const std::string& queue) {
  return queue_stat(b, queue, "messages_unacknowledged");
}

std::string payload_of(uint64_t id) {
  return "reading " + std::to_string(id);
}

/// A device speaking codec frame: DATA ids 1, 2, 3, ... (1 is the device id, since the
/// gateway identifies by first message), every ACK validated by codec::ack_checker,
/// PUSHes recorded.
class frame_device {
public:
  frame_device(uint16_t port, const std::string& device_id, std::shared_ptr<asio::ssl::context> tls = nullptr)
    : d_(port, tls) {
    if (tls)
      REQUIRE(d_.handshake());
    send_raw(device_id);
  }

  /// Sends `n` DATA frames (payload_of(id)) in one write.
  void send_data(uint64_t n) {
    std::string burst;
    for (uint64_t i = 0; i < n; ++i) {
      auto id = chk_.last_sent() + 1;
      REQUIRE(chk_.sent(id) == net::codec::error_reason::none);
      net::codec::encode_data(burst, id, payload_of(id));
    }
    d_.send(burst);
  }

  /// Handles frames until none came for `quiet` (or the connection is closed).
  void poll(std::chrono::milliseconds quiet) {
    while (auto f = d_.read_frame(quiet))
      handle(*f);
  }

  /// Reads until every DATA sent is ACKed; false if the safety deadline passed.
  bool wait_all_acked(std::chrono::milliseconds deadline = 60000ms) {
    auto until = std::chrono::steady_clock::now() + deadline;
    while (chk_.last_acked() < chk_.last_sent() && std::chrono::steady_clock::now() < until)
      if (auto f = d_.read_frame(1000ms))
        handle(*f);
      else if (closed())
        return false;
    return chk_.last_acked() == chk_.last_sent();
  }

  /// Reads until `n` PUSHes arrived; false if the safety deadline passed.
  bool wait_pushes(std::size_t n, std::chrono::milliseconds deadline = 30000ms) {
    auto until = std::chrono::steady_clock::now() + deadline;
    while (pushes.size() < n && std::chrono::steady_clock::now() < until)
      if (auto f = d_.read_frame(1000ms))
        handle(*f);
      else if (closed())
        return false;
    return pushes.size() >= n;
  }

  bool closed() { return d_.wait_closed(1ms); }
  bool wait_closed(std::chrono::milliseconds t = 30000ms) { return d_.wait_closed(t); }

  uint64_t last_sent() const { return chk_.last_sent(); }
  uint64_t last_acked() const { return chk_.last_acked(); }
  device& raw() { return d_; }

  /// Called for each valid ACK with its id, before it is counted.
  std::function<void(uint64_t)> on_ack;
  std::vector<std::string> ack_errors;
  std::vector<device::frame> pushes;

private:
  void send_raw(const std::string& device_id) {
    REQUIRE(chk_.sent(1) == net::codec::error_reason::none);
    d_.send(data_frame(1, device_id));
  }
  void handle(const device::frame& f) {
    if (f.type == frame_type::push) {
      pushes.push_back(f);
      return;
    }
    if (f.type != frame_type::ack) {
      ack_errors.push_back("unexpected frame type " + std::to_string(static_cast<int>(f.type)));
      return;
    }
    if (on_ack)
      on_ack(f.id);
    net::codec::frame cf{f.type, f.id, f.payload};
    if (auto err = chk_.check(cf); err != net::codec::error_reason::none)
      ack_errors.push_back("ACK " + std::to_string(f.id) + " after " + std::to_string(chk_.last_acked()) +
                           ": " + std::string{net::codec::to_string(err)});
  }

  device d_;
  net::codec::ack_checker chk_;
};

/// amqp-publish (amqp-tools) one persistent message to `queue` with string headers.
void amqp_publish(const at::broker& b, const std::string& queue, const std::string& body,
                  const std::vector<std::string>& headers) {
  std::string cmd = "amqp-publish " + b.cli_args() + " -p -r '" + queue + "' -b '" + body + "'";
  for (auto& h : headers)
    cmd += " -H '" + h + "'";
  auto [rc, out] = at::run(cmd + " 2>&1");
  REQUIRE_MESSAGE(rc == 0, "amqp-publish failed: " << out);
}

/// What a drained from-device queue holds, by message_id header.
struct queue_contents {
  std::vector<at::got_message> msgs;
  std::set<int64_t> ids;
  std::vector<int64_t> dups;
  bool first_seen_in_order = true;

  explicit queue_contents(std::vector<at::got_message> m) : msgs(std::move(m)) {
    int64_t last = 0;
    for (auto& x : msgs) {
      auto id = x.num("message_id").value_or(-1);
      if (!ids.insert(id).second) {
        dups.push_back(id);
        continue;
      }
      if (id < last)
        first_seen_in_order = false;
      last = id;
    }
  }
};

/// The value of metric `name` (no labels) in the gateway's /metrics; -1 if absent.
long metric(running_gateway& g, const std::string& name) {
  auto cli = g.http();
  auto r = cli.Get("/metrics");
  if (!r || r->status != 200)
    return -1;
  std::istringstream in{r->body};
  std::string line;
  while (std::getline(in, line))
    if (line.starts_with(name + " "))
      return std::stol(line.substr(name.size() + 1));
  return -1;
}

/// GET /readyz: status and body (0 when the request failed).
std::pair<int, std::string> readyz(running_gateway& g) {
  auto cli = g.http();
  auto r = cli.Get("/readyz");
  return r ? std::pair{r->status, r->body} : std::pair{0, std::string{}};
}

} // namespace

TEST_CASE("device -> broker over TLS: in order, with headers; ACKs only for messages in the queue") {
  AMQP_TEST_REQUIRE_BROKER();
  auto& b = at::shared_broker();
  b.start();
  names n{"e1"};
  running_gateway g{amqp_config(b, n, 2, true)};
  wait_topology(b, n);
  REQUIRE(!g->dev_cert_file().empty());
  frame_device d{g.port("tls"), "meter-1", trusting(g->dev_cert_file())};

  // Every ACK is checked against the broker when it arrives: the queue (no consumer
  // on it) already holds every message the ACK covers. DATA id 1 is the device id.
  at::client watcher{b.port()};
  std::vector<std::string> early;
  d.on_ack = [&](uint64_t id) {
    auto in_queue = watcher.count(n.from_device());
    if (id > 1 && in_queue < id - 1)
      early.push_back("ACK " + std::to_string(id) + " with only " + std::to_string(in_queue) +
                      " in the queue");
  };
  constexpr uint64_t total = 400;
  for (int burst = 0; burst < 8; ++burst) {
    d.send_data(total / 8);
    d.poll(2ms);
  }
  REQUIRE(d.wait_all_acked());
  CHECK(d.ack_errors.empty());
  for (auto& e : d.ack_errors)
    MESSAGE(e);
  CHECK(early.empty());
  for (auto& e : early)
    MESSAGE(e);
  CHECK(d.last_acked() == total + 1); // the last ACK is the last DATA id

  auto sessions = g.sessions();
  REQUIRE(sessions.size() == 1);
  auto conn_id = sessions[0].connection_id;
  REQUIRE(watcher.count(n.from_device()) == total);

  // amqp-get (amqp-tools) takes the first one, the raw client the rest.
  auto [rc, first] = at::run("amqp-get " + b.cli_args() + " -q " + n.from_device() + " 2>&1");
  CHECK(rc == 0);
  CHECK(first == payload_of(2));
  auto rest = watcher.drain(n.from_device());
  REQUIRE(rest.size() == total - 1);
  for (std::size_t i = 0; i < rest.size(); ++i) {
    auto id = static_cast<int64_t>(i + 3); // DATA ids 3..total+1
    CHECK(rest[i].body == payload_of(static_cast<uint64_t>(id)));
    CHECK(rest[i].str("connection_id") == conn_id);
    CHECK(rest[i].str("device_id") == "meter-1");
    CHECK(rest[i].num("from_device_seq") == id - 1);
    CHECK(rest[i].num("message_id") == id);
    CHECK(rest[i].delivery_mode == 2);
    CHECK(rest[i].routing_key == "meter-1");
  }
}

TEST_CASE("amqp-publish -> device: PUSHes in to_device_seq order; an absent device's message is "
          "dead-lettered") {
  AMQP_TEST_REQUIRE_BROKER();
  auto& b = at::shared_broker();
  b.start();
  names n{"e2"};
  running_gateway g{amqp_config(b, n, 2)};
  wait_topology(b, n);
  frame_device d{g.port(), "dev-2"};
  REQUIRE(eventually([&] { return g->registry()->devices() == 1; }));
  constexpr int m = 12;
  for (int i = 1; i <= m; ++i)
    amqp_publish(b, n.to_device(), "push-" + std::to_string(i),
                 {"device_id: dev-2", "to_device_seq: " + std::to_string(i)});
  REQUIRE(d.wait_pushes(m));
  for (int i = 0; i < m; ++i) {
    CHECK(d.pushes[i].payload == "push-" + std::to_string(i + 1));
    CHECK(d.pushes[i].id == static_cast<uint64_t>(i + 1));
  }
  amqp_publish(b, n.to_device(), "for-nobody", {"device_id: nobody", "to_device_seq: 1"});
  at::client cl{b.port()};
  REQUIRE(at::eventually([&] { return cl.count(n.dead_letter()) == 1; }));
  auto dead = cl.get(n.dead_letter());
  REQUIRE(dead);
  CHECK(dead->body == "for-nobody");
  CHECK(dead->str("device_id") == "nobody");
  CHECK(cl.count(n.to_device()) == 0);
  CHECK(eventually([&] { return unacked(b, n.to_device()) == 0; }, 30000ms));
  // Longer than the device's max_frame: bad_message, dead-lettered at once (requeued,
  // it would come back forever).
  auto too_big = std::string(g->cfg().listeners[0].net.max_frame + 1, 'x');
  cl.publish(n.to_device(), too_big, {{"device_id", std::string{"dev-2"}}});
  REQUIRE(at::eventually([&] { return cl.count(n.dead_letter()) == 1; }));
  auto refused = cl.get(n.dead_letter());
  REQUIRE(refused);
  CHECK(refused->body == too_big);
  CHECK(eventually([&] { return queue_stat(b, n.to_device(), "messages") == 0; }, 30000ms));
  d.poll(50ms);
  CHECK(d.pushes.size() == m); // nothing else reached the device
  CHECK(metric(g, "warren_amqp_dead_lettered_total") == 2);
  CHECK(metric(g, "warren_amqp_acked_total") == m);
}

TEST_CASE("takeover with the amqp backend: the new connection gets the later messages, the old one is "
          "closed") {
  AMQP_TEST_REQUIRE_BROKER();
  auto& b = at::shared_broker();
  b.start();
  names n{"e3"};
  running_gateway g{amqp_config(b, n, 2)};
  wait_topology(b, n);
  frame_device a{g.port(), "dev-3"};
  REQUIRE(eventually([&] { return g->registry()->devices() == 1; }));
  auto old = g->registry()->find(backend::address_kind::device, "dev-3");
  amqp_publish(b, n.to_device(), "t1", {"device_id: dev-3", "to_device_seq: 1"});
  REQUIRE(a.wait_pushes(1));
  CHECK(a.pushes[0].payload == "t1");

  frame_device c{g.port(), "dev-3"};
  CHECK(a.wait_closed());
  REQUIRE(eventually([&] {
    auto s = g->registry()->find(backend::address_kind::device, "dev-3");
    return s && s != old && g.sessions().size() == 1;
  }));
  CHECK(g->metrics()->takeovers.load() == 1);
  for (int i = 2; i <= 4; ++i)
    amqp_publish(b, n.to_device(), "t" + std::to_string(i),
                 {"device_id: dev-3", "to_device_seq: " + std::to_string(i)});
  REQUIRE(c.wait_pushes(3));
  CHECK(c.pushes[0].payload == "t2");
  CHECK(c.pushes[1].payload == "t3");
  CHECK(c.pushes[2].payload == "t4");
  CHECK(a.pushes.size() == 1);
  at::client cl{b.port()};
  CHECK(cl.count(n.dead_letter()) == 0);
  // The new connection's messages flow to the broker as well.
  c.send_data(5);
  REQUIRE(c.wait_all_acked());
  CHECK(c.ack_errors.empty());
  CHECK(cl.count(n.from_device()) == 5);
}

TEST_CASE("broker stopped mid-stream and restarted: no ACK while down, backpressure, no ACKed "
          "message lost, duplicates only of unACKed ones") {
  AMQP_TEST_REQUIRE_BROKER();
  auto& b = at::shared_broker();
  b.start();
  names n{"e4"};
  auto cfg = amqp_config(b, n, 1);
  cfg.listeners[0].session.max_unaccepted = 100;
  running_gateway g{cfg};
  wait_topology(b, n);
  frame_device d{g.port(), "dev-4"};
  constexpr uint64_t total = 3000; // DATA ids 2..total+1

  // Stream until a few hundred are ACKed.
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (d.last_acked() < 300 && std::chrono::steady_clock::now() < deadline) {
    d.send_data(20);
    d.poll(2ms);
  }
  REQUIRE(d.last_acked() >= 300);
  auto sent_at_stop = d.last_sent();
  MESSAGE("stopping the broker at acked=" << d.last_acked() << " sent=" << sent_at_stop);
  b.stop();
  // ACKs still on their way were confirmed before the broker went; nothing sent from
  // now on may be ACKed while it is down.
  d.poll(200ms);
  auto acked_before = d.last_acked();
  CHECK(acked_before <= sent_at_stop);
  for (int i = 0; i < 30; ++i) {
    d.send_data(20);
    d.poll(5ms);
  }
  // Past max_unaccepted the session stops reading: the device feels the backpressure.
  CHECK(eventually([&] { return g->metrics()->reads_held.load() >= 1; }, 30000ms));
  d.poll(500ms);
  CHECK(d.last_acked() == acked_before);
  CHECK(d.last_sent() > sent_at_stop + 500);

  b.start();
  while (d.last_sent() < total + 1) {
    d.send_data(std::min<uint64_t>(20, total + 1 - d.last_sent()));
    d.poll(1ms);
  }
  REQUIRE(d.wait_all_acked(120000ms));
  CHECK(d.ack_errors.empty());
  for (auto& e : d.ack_errors)
    MESSAGE(e);

  at::client cl{b.port()};
  queue_contents q{cl.drain(n.from_device())};
  MESSAGE("queue held " << q.msgs.size() << " messages, " << q.dups.size() << " duplicates; ACKed before the "
                        << "outage: " << acked_before);
  CHECK(q.ids.size() == total);
  CHECK(*q.ids.begin() == 2);
  CHECK(*q.ids.rbegin() == static_cast<int64_t>(total + 1));
  CHECK(q.first_seen_in_order);
  for (auto id : q.dups)
    CHECK_MESSAGE(id > static_cast<int64_t>(acked_before), "message " << id << " ACKed before the outage is "
                                                                      << "duplicated");
  for (auto& m : q.msgs)
    CHECK(m.num("from_device_seq") == m.num("message_id").value_or(0) - 1);
}

TEST_CASE("broker down: /readyz not ready, /metrics shows it; a device's resend on a new connection keeps "
          "its message_id property") {
  AMQP_TEST_REQUIRE_BROKER();
  auto& b = at::shared_broker();
  b.start();
  names n{"e8"};
  running_gateway g{amqp_config(b, n, 1)};
  wait_topology(b, n);
  REQUIRE(eventually([&] { return readyz(g).first == 200; }, 30000ms));
  CHECK(metric(g, "warren_amqp_connected") == 1);

  b.stop();
  REQUIRE(eventually([&] { return readyz(g).first == 503; }, 30000ms));
  auto [status, body] = readyz(g);
  CHECK(status == 503);
  CHECK(body.find("amqp producer: not connected to the broker at 127.0.0.1:" + std::to_string(b.port())) !=
        std::string::npos);
  CHECK(body.find("amqp consumers: none connected") != std::string::npos);
  CHECK(metric(g, "warren_amqp_connected") == 0);
  CHECK(metric(g, "warren_amqp_consumers_connected") == 0);

  // The device sends DATA 2..4, gets no ACK (no broker), loses its connection and
  // sends them again on a new one, then DATA 5.
  {
    frame_device first{g.port(), "dev-8"};
    first.send_data(3);
    REQUIRE(eventually([&] { return metric(g, "warren_amqp_unconfirmed") == 3; }, 30000ms));
    first.poll(50ms);
    CHECK(first.last_acked() == 1); // the id frame only
    first.raw().close();
  }
  REQUIRE(eventually([&] { return g->registry()->connections() == 0; }));
  frame_device again{g.port(), "dev-8"};
  again.send_data(4);
  REQUIRE(eventually([&] { return metric(g, "warren_amqp_unconfirmed") == 7; }, 30000ms));

  b.start();
  REQUIRE(again.wait_all_acked(120000ms));
  CHECK(again.ack_errors.empty());
  REQUIRE(eventually([&] { return readyz(g).first == 200; }, 30000ms));
  CHECK(metric(g, "warren_amqp_connected") == 1);
  CHECK(metric(g, "warren_amqp_unconfirmed") == 0);
  CHECK(metric(g, "warren_amqp_confirmed_total") == 7);

  // Both copies of DATA 2..4 are in the queue, from two connections, under one
  // message_id property each: a consumer dropping repeated message_ids keeps 4.
  at::client cl{b.port()};
  auto msgs = cl.drain(n.from_device());
  REQUIRE(msgs.size() == 7);
  std::map<std::string, std::vector<at::got_message>> by_property;
  for (auto& m : msgs)
    by_property[m.message_id].push_back(m);
  CHECK(by_property.size() == 4);
  for (uint64_t id = 2; id <= 5; ++id) {
    auto& copies = by_property["d/dev-8/" + std::to_string(id)];
    CHECK_MESSAGE(copies.size() == (id < 5 ? 2u : 1u), "DATA " << id);
    for (auto& c : copies) {
      CHECK(c.body == payload_of(id));
      CHECK(c.num("message_id") == static_cast<int64_t>(id));
    }
    if (copies.size() == 2)
      CHECK(copies[0].str("connection_id") != copies[1].str("connection_id"));
  }
}

TEST_CASE("a consumer killed mid-stream is restarted; its unacked deliveries reach the device again") {
  AMQP_TEST_REQUIRE_BROKER();
  auto& b = at::shared_broker();
  b.start();
  names n{"e5"};
  auto cfg = amqp_config(b, n, 1);
  cfg.listeners[0].session.gap_timeout = 200ms;
  running_gateway g{cfg};
  wait_topology(b, n);
  frame_device d{g.port(), "dev-5"};
  REQUIRE(eventually([&] { return g->registry()->devices() == 1; }));
  auto victim = child(g, {"backend", "consumer_0"});
  REQUIRE(victim);

  constexpr int m = 3000;
  {
    at::client pub{b.port()};
    for (int i = 1; i <= m; ++i)
      pub.publish(n.to_device(), "m" + std::to_string(i),
                  {{"device_id", std::string{"dev-5"}}, {"to_device_seq", static_cast<int64_t>(i)}});
  }
  REQUIRE(d.wait_pushes(200));
  caf::anon_send_exit(victim, caf::exit_reason::kill);
  auto at_kill = d.pushes.size();
  MESSAGE("killed consumer_0 after " << at_kill << " PUSHes");
  CHECK(at_kill < m / 2); // mid-stream: its prefetch window was full of unacked deliveries

  // Restarted (a new actor) and every message reaches the device at least once.
  REQUIRE(eventually(
      [&] {
        auto c = child(g, {"backend", "consumer_0"});
        return c && c != victim;
      },
      30000ms));
  std::set<std::string> got;
  auto until = std::chrono::steady_clock::now() + 60s;
  std::size_t seen = 0;
  while (got.size() < m && std::chrono::steady_clock::now() < until) {
    d.wait_pushes(seen + 1, 1000ms);
    for (; seen < d.pushes.size(); ++seen)
      got.insert(d.pushes[seen].payload);
  }
  CHECK(got.size() == m);
  MESSAGE("the device got " << d.pushes.size() << " PUSHes for " << m << " messages");
  at::client cl{b.port()};
  CHECK(at::eventually([&] { return cl.count(n.to_device()) == 0 && unacked(b, n.to_device()) == 0; }));
  CHECK(cl.count(n.dead_letter()) == 0);
  victim = nullptr;
}

TEST_CASE("warren-gateway with the amqp backend: SIGTERM drains, exits 0, every ACKed message is in the "
          "queue") {
  AMQP_TEST_REQUIRE_BROKER();
  auto& b = at::shared_broker();
  b.start();
  names n{"e6"};
  auto dir = temp_dir("amqp-proc");
  auto conf = (dir / "gateway.toml").string();
  auto ports = (dir / "ports.json").string();
  {
    toml::table root;
    root.insert_or_assign("gateway", toml::table{{"data_dir", dir.string()},
                                                 {"drain_timeout", "1s"},
                                                 {"io_threads", 2},
                                                 {"scheduler_threads", 2},
                                                 {"log_level", "warn"}});
    root.insert_or_assign("listener", toml::array{toml::table{{"name", "plain"},
                                                              {"tls", false},
                                                              {"bind", "127.0.0.1"},
                                                              {"port", 0},
                                                              {"codec", "frame"},
                                                              {"identify", "first_message"}}});
    root.insert_or_assign("admin", toml::table{{"enabled", false}});
    toml::table backend_table{{"kind", "amqp"}};
    backend_table.insert_or_assign("amqp", amqp_table(b, n, 1));
    root.insert_or_assign("backend", std::move(backend_table));
    std::ofstream{conf} << root << "\n";
  }
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    execl(WARREN_GATEWAY_BIN, WARREN_GATEWAY_BIN, "-c", conf.c_str(), "--ports-file", ports.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  struct reaper { // kills the gateway if a REQUIRE fails before it exited
    pid_t pid;
    bool done = false;
    ~reaper() {
      if (!done) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
      }
    }
  } guard{pid};
  REQUIRE(eventually([&] { return std::filesystem::exists(ports) && std::filesystem::file_size(ports) > 0; },
                     30000ms));
  wait_topology(b, n);
  nlohmann::json j;
  std::ifstream{ports} >> j;
  uint16_t port = j["listeners"]["plain"];
  REQUIRE(port != 0);

  constexpr int count = 4;
  std::vector<std::unique_ptr<frame_device>> devs;
  for (int i = 0; i < count; ++i)
    devs.push_back(std::make_unique<frame_device>(port, "sig-" + std::to_string(i)));
  auto all_acked_some = [&] {
    for (auto& d : devs)
      if (d->last_acked() < 100)
        return false;
    return true;
  };
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!all_acked_some() && std::chrono::steady_clock::now() < deadline)
    for (auto& d : devs) {
      d->send_data(10);
      d->poll(1ms);
    }
  REQUIRE(all_acked_some());

  // SIGTERM while the devices keep sending: they are closed, the gateway exits 0.
  REQUIRE(kill(pid, SIGTERM) == 0);
  std::vector<bool> closed(count, false);
  deadline = std::chrono::steady_clock::now() + 60s;
  for (int left = count; left > 0 && std::chrono::steady_clock::now() < deadline;)
    for (int i = 0; i < count; ++i) {
      if (closed[i])
        continue;
      devs[i]->send_data(10);
      devs[i]->poll(1ms);
      if (devs[i]->closed()) {
        devs[i]->poll(1ms); // frames read along with the close
        closed[i] = true;
        --left;
      }
    }
  for (int i = 0; i < count; ++i)
    CHECK(closed[i]);
  int status = 0;
  REQUIRE(eventually([&] { return waitpid(pid, &status, WNOHANG) == pid; }, 60000ms));
  guard.done = true;
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);

  at::client cl{b.port()};
  auto msgs = cl.drain(n.from_device());
  std::map<std::string, std::set<int64_t>> by_device;
  for (auto& m : msgs)
    by_device[m.str("device_id")].insert(m.num("message_id").value_or(-1));
  for (int i = 0; i < count; ++i) {
    auto& d = *devs[i];
    auto& ids = by_device["sig-" + std::to_string(i)];
    CHECK(d.ack_errors.empty());
    std::size_t missing = 0;
    for (int64_t id = 2; id <= static_cast<int64_t>(d.last_acked()); ++id)
      missing += ids.count(id) == 0 ? 1 : 0;
    MESSAGE("device sig-" << i << ": sent " << d.last_sent() - 1 << ", ACKed " << d.last_acked() - 1
                          << ", in the queue " << ids.size());
    CHECK(missing == 0);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST_CASE("amqp in a cluster: a message for a device on another node goes over NATS, acked once the owner "
          "wrote it; dead-lettered on no responders; requeued on no answer; never lost") {
  AMQP_TEST_REQUIRE_BROKER();
  auto& b = at::shared_broker();
  b.start();
  names n{"e7"};
  // nats-server's default pings (2 min): a frozen client keeps its subscriptions.
  warren_test::nats_server_options slow_pings;
  slow_pings.ping_interval = "2m";
  warren_test::nats_cluster nats{2, slow_pings};
  // The device's node: a warren-gateway process (so that it can be frozen and killed),
  // no amqp of its own. The consumer's node: the amqp backend, another NATS server.
  gateway_process owner{WARREN_GATEWAY_BIN, "owner", nats.url(0)};
  auto cfg = cluster_node(amqp_config(b, n, 2), nats, "consumer", 1);
  cfg.cluster.nats.request_timeout = 1s; // below the consumer's deliver_timeout (5 s)
  running_gateway g{std::move(cfg)};
  wait_topology(b, n);
  device d{owner.port};
  d.send("far-1\n");
  REQUIRE(post_when_reachable(g, "/v1/devices/far-1/messages", "probe") == 202);
  REQUIRE(d.read_line() == "probe");
  auto& c = g->cluster()->counters();
  auto out_before = c.delivered_out.load();
  auto publish = [&](const std::string& device, uint64_t seq) {
    amqp_publish(b, n.to_device(), "m" + std::to_string(seq),
                 {"device_id: " + device, "to_device_seq: " + std::to_string(seq)});
  };
  at::client cl{b.port()};

  // Across the route, in to_device_seq order, each acked once delivered.
  for (uint64_t seq = 1; seq <= 10; ++seq)
    publish("far-1", seq);
  for (uint64_t seq = 1; seq <= 10; ++seq)
    REQUIRE(d.read_line() == "m" + std::to_string(seq));
  CHECK(eventually([&] { return queue_stat(b, n.to_device(), "messages") == 0; }, 30000ms));
  CHECK(c.delivered_out.load() - out_before == 10);

  // Connected nowhere: no responders, dead-lettered.
  publish("nobody", 1);
  REQUIRE(at::eventually([&] { return cl.count(n.dead_letter()) == 1; }));

  // The owner frozen: no answer, so not acked; requeued after each request_timeout
  // and offered again, never dead-lettered.
  owner.freeze();
  auto timeouts = c.timeouts.load();
  publish("far-1", 11);
  REQUIRE(eventually([&] { return c.timeouts.load() >= timeouts + 2; }, 30000ms)); // offered twice
  CHECK(queue_stat(b, n.to_device(), "messages") == 1);
  CHECK(cl.count(n.dead_letter()) == 1);
  // Thawed: it writes what reached it meanwhile (at-least-once: one or more copies),
  // and an answer in time is acked at last.
  owner.thaw();
  REQUIRE(eventually([&] { return queue_stat(b, n.to_device(), "messages") == 0; }, 30000ms));
  publish("far-1", 12);
  int copies = 0;
  for (;;) {
    auto line = d.read_line();
    REQUIRE(line);
    if (*line == "m12")
      break;
    REQUIRE(*line == "m11");
    ++copies;
  }
  CHECK(copies >= 1);
  // m12's answer may have come late too (then it is offered again): settled first.
  REQUIRE(eventually([&] { return queue_stat(b, n.to_device(), "messages") == 0; }, 30000ms));
  CHECK(cl.count(n.dead_letter()) == 1);

  // The owner dies with a request in flight: requeued (no answer), then dead-lettered
  // (no responders once its connection is gone). Not lost.
  owner.freeze();
  timeouts = c.timeouts.load();
  publish("far-1", 13);
  REQUIRE(eventually([&] { return c.timeouts.load() >= timeouts + 1; }, 30000ms));
  owner.kill9();
  REQUIRE(at::eventually([&] { return cl.count(n.dead_letter()) == 2; }));
  CHECK(eventually([&] { return queue_stat(b, n.to_device(), "messages") == 0; }, 30000ms));
  auto first_dead = cl.get(n.dead_letter());
  REQUIRE(first_dead);
  CHECK(first_dead->body == "m1");
  auto second_dead = cl.get(n.dead_letter());
  REQUIRE(second_dead);
  CHECK(second_dead->body == "m13");
  CHECK(second_dead->str("device_id") == "far-1");
}

#else

TEST_CASE("amqp end to end: skipped") {
  MESSAGE("skipped: warren-gateway was built without the amqp backend (needs librabbitmq-dev)");
}

#endif
