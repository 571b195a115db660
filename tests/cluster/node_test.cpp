// cluster::node against real nats-server processes on loopback.
#include <warren/cluster/node.hpp>
#include <warren/log.hpp>
#include <warren_test/nats_cluster.hpp>

#include <caf/all.hpp>
#include <doctest/doctest.h>

#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

using namespace std::chrono_literals;
namespace cl = warren::cluster;

namespace {

struct quiet_config : caf::actor_system_config {
  quiet_config() { set("logger.verbosity", caf::atom("quiet")); }
};

cl::options opts_for(std::string name, std::vector<std::string> urls) {
  cl::options o;
  o.node_name = std::move(name);
  o.urls = std::move(urls);
  o.request_timeout = 2s;
  o.reconnect_wait = 50ms;
  o.reconnect_wait_max = 200ms;
  return o;
}

/// A subscriber that answers every request with "re:" + its data and keeps what came.
struct responder {
  cl::node* node = nullptr;
  std::mutex mtx;
  std::condition_variable cv;
  std::vector<std::string> got;
  cl::sub_target target{&responder::on, this};

  static void on(void* ctx, cl::message m) {
    auto self = static_cast<responder*>(ctx);
    if (!m.reply().empty()) {
      cl::header hs[1] = {{"Warren-Status", "ok"}};
      self->node->publish(std::string{m.reply()}, {}, hs, "re:" + std::string{m.data()});
    }
    std::lock_guard<std::mutex> guard{self->mtx};
    self->got.emplace_back(m.data());
    self->cv.notify_all();
  }
};

bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds deadline = 10000ms) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until)
      return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

/// Sends a request from `n` through slot 0 and waits for its reply in `self`.
/// A request published while the interest is going away may get no answer at all (the
/// server forwarded it to a subscription that is gone): waits `wait` at most.
std::optional<cl::message> request(caf::scoped_actor& self, cl::node& n, const std::string& subject,
                                   const std::string& data, uint64_t token,
                                   std::chrono::milliseconds wait = 10000ms) {
  if (!n.publish(subject, n.inbox(0, token), {}, data))
    return std::nullopt;
  std::optional<cl::message> out;
  auto until = std::chrono::steady_clock::now() + wait;
  bool done = false;
  while (!done && std::chrono::steady_clock::now() < until) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    self->receive(
        [&](cl::reply_atom, uint64_t t, cl::message& m) {
          if (t == token) { // a late reply to an earlier request is skipped
            out = std::move(m);
            done = true;
          }
        },
        caf::after(std::max(left, 1ms)) >> [&] { done = true; });
  }
  return out;
}

} // namespace

TEST_CASE("requests across a route get their replies on the inbox; nobody subscribed is no responders") {
  warren::set_log_level(spdlog::level::critical);
  warren_test::nats_cluster nats{2};
  quiet_config cfg;
  caf::actor_system sys{cfg};
  cl::node a{opts_for("a", {nats.url(0)})};
  cl::node b{opts_for("b", {nats.url(1)})};
  a.start();
  b.start();
  REQUIRE(wait_for([&] { return a.connected() && b.connected(); }));
  responder r;
  r.node = &a;
  auto sub = a.subscribe("warren.test.x", &r.target);
  REQUIRE(sub);
  caf::scoped_actor self{sys};
  b.set_reply_target(0, caf::actor_cast<caf::actor>(self));
  // Interest crosses the route within milliseconds; until then: no responders.
  std::optional<cl::message> reply;
  uint64_t token = 0;
  REQUIRE(wait_for([&] {
    reply = request(self, b, "warren.test.x", "hello", ++token, 500ms);
    return reply && !reply->no_responders();
  }));
  CHECK(reply->data() == "re:hello");
  CHECK(reply->header("Warren-Status") == std::string_view{"ok"});
  auto none = request(self, b, "warren.test.nobody", "x", ++token);
  REQUIRE(none);
  CHECK(none->no_responders());
  // Unsubscribed: no responders again.
  sub.reset();
  REQUIRE(wait_for([&] {
    auto m = request(self, b, "warren.test.x", "again", ++token, 500ms);
    return m && m->no_responders();
  }));
  // No echo: a node's own publish does not reach its own subscription.
  responder own;
  own.node = &b;
  auto own_sub = b.subscribe("warren.test.own", &own.target);
  auto none2 = request(self, b, "warren.test.own", "x", ++token);
  REQUIRE(none2);
  CHECK(none2->no_responders());
  // A reply on an inbox nobody holds is counted, not delivered.
  CHECK(a.publish(b.inbox(7, 1), {}, {}, "stray"));
  CHECK(wait_for([&] { return b.counters().stray_replies.load() == 1; }));
}

TEST_CASE("a server restart: publish refuses while down, subscriptions come back by themselves") {
  warren::set_log_level(spdlog::level::critical);
  warren_test::nats_cluster nats{1};
  quiet_config cfg;
  caf::actor_system sys{cfg};
  cl::node a{opts_for("a", {nats.url(0)})};
  cl::node b{opts_for("b", {nats.url(0)})};
  std::mutex mtx;
  std::vector<cl::link_state> states;
  b.on_state([&](cl::link_state s) {
    std::lock_guard<std::mutex> guard{mtx};
    states.push_back(s);
  });
  a.start();
  b.start();
  REQUIRE(wait_for([&] { return a.connected() && b.connected(); }));
  responder r;
  r.node = &b;
  auto sub = b.subscribe("warren.test.y", &r.target);
  caf::scoped_actor self{sys};
  a.set_reply_target(0, caf::actor_cast<caf::actor>(self));
  uint64_t token = 0;
  REQUIRE(wait_for([&] {
    auto m = request(self, a, "warren.test.y", "1", ++token, 500ms);
    return m && !m->no_responders();
  }));
  nats.kill(0);
  REQUIRE(wait_for([&] { return !a.connected() && !b.connected(); }));
  CHECK(!a.publish("warren.test.y", {}, {}, "lost"));
  CHECK(a.counters().publish_refused.load() >= 1);
  // Made while disconnected: sent once connected again.
  responder r2;
  r2.node = &b;
  auto sub2 = b.subscribe("warren.test.z", &r2.target);
  REQUIRE(sub2);
  nats.restart(0);
  REQUIRE(wait_for([&] { return a.connected() && b.connected(); }, 20000ms));
  for (auto subject : {"warren.test.y", "warren.test.z"}) {
    INFO(subject);
    REQUIRE(wait_for([&] {
      auto m = request(self, a, subject, "after", ++token, 500ms);
      return m && !m->no_responders();
    }));
  }
  CHECK(b.counters().disconnects.load() == 1);
  CHECK(b.counters().reconnects.load() == 1);
  std::lock_guard<std::mutex> guard{mtx};
  CHECK(states == std::vector<cl::link_state>{cl::link_state::connected, cl::link_state::reconnecting,
                                              cl::link_state::connected});
}

TEST_CASE("no server at start: the node keeps trying and connects when one comes") {
  warren::set_log_level(spdlog::level::critical);
  warren_test::nats_cluster nats{1};
  auto url = nats.url(0);
  nats.stop(0);
  cl::node a{opts_for("a", {url})};
  a.start(); // no error: retrying in the background
  CHECK(a.state() == cl::link_state::connecting);
  CHECK(!a.publish("warren.test.q", {}, {}, "x"));
  nats.restart(0);
  CHECK(wait_for([&] { return a.connected(); }, 20000ms));
}

TEST_CASE("gather collects every node's answer within the window") {
  warren::set_log_level(spdlog::level::critical);
  warren_test::nats_cluster nats{2};
  cl::node a{opts_for("a", {nats.url(0)})}, b{opts_for("b", {nats.url(1)})}, c{opts_for("c", {nats.url(1)})};
  a.start();
  b.start();
  c.start();
  REQUIRE(wait_for([&] { return a.connected() && b.connected() && c.connected(); }));
  responder rb, rc;
  rb.node = &b;
  rc.node = &c;
  auto sb = b.subscribe("warren.test.all", &rb.target);
  auto sc = c.subscribe("warren.test.all", &rc.target);
  std::vector<cl::message> got;
  REQUIRE(wait_for([&] {
    got = a.gather("warren.test.all", "q", 2s, 2);
    return got.size() == 2;
  }));
  for (auto& m : got)
    CHECK(m.data() == "re:q");
  CHECK(a.gather("warren.test.none", "q", 2s, 2).empty()); // no responders ends it at once
}

TEST_CASE("options are checked") {
  cl::options o;
  CHECK(!cl::options_problem(o).empty()); // no node name
  o.node_name = "n1";
  CHECK(cl::options_problem(o).empty());
  o.node_name = "bad name";
  CHECK(!cl::options_problem(o).empty());
  o.node_name = "n1";
  o.urls = {"http://x"};
  CHECK(!cl::options_problem(o).empty());
  o.urls = {"tls://127.0.0.1:4222"};
  o.tls.cert_file = "c.pem";
  CHECK(!cl::options_problem(o).empty()); // no key
  CHECK_THROWS_AS(cl::node{cl::options{}}, std::invalid_argument);
}
