// cluster::names against real nats-server processes: two or three actor systems in one
// process, each with its own cluster::node on its own server of a routed NATS cluster.
#include "embed_support.hpp"

#include <caf/binary_serializer.hpp>
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <thread>

using namespace embed_test;

namespace {

/// Calls `to` until the answer is no longer no_such_name (interest still crossing a
/// route), for at most `deadline`.
template <class... Ts>
call_result call_settled(caf::actor_system& sys, const caf::actor& to, Ts... xs) {
  call_result r;
  wait_for([&] {
    r = call(sys, to, xs...);
    return !cl::is(r.err, cl::cluster_errc::no_such_name);
  });
  return r;
}

/// Calls `to` until it answers no_such_name; false if it never does.
template <class... Ts>
bool becomes_no_such_name(caf::actor_system& sys, const caf::actor& to, Ts... xs) {
  return wait_for([&] { return cl::is(call(sys, to, xs...).err, cl::cluster_errc::no_such_name); });
}

/// register_name, retried while the previous holder's subscription is going away
/// (its answer may be lost on the way: timeout).
caf::error register_retry(cl::names& n, const std::string& name, const caf::actor& who) {
  caf::error err;
  wait_for([&] {
    err = n.register_name(name, who);
    return !err || !cl::is(err, cl::cluster_errc::timeout);
  });
  return err;
}

} // namespace

TEST_CASE("a name registered on A is called and sent to from B with user types") {
  warren::set_log_level(spdlog::level::critical);
  warren_test::nats_cluster nats{2};
  peer a{"a", {nats.url(0)}};
  peer b{"b", {nats.url(1)}};
  REQUIRE(wait_for([&] { return a.nd.connected() && b.nd.connected(); }));
  auto c = a.sys.spawn(counter, std::string{"a"}, caf::actor{});
  REQUIRE(!a.names.register_name("counter", c));
  CHECK(caf::actor_cast<caf::abstract_actor*>(a.names.whereis("counter")) ==
        caf::actor_cast<caf::abstract_actor*>(c)); // local: the actor itself, no NATS hop
  CHECK(a.names.registered_names() == std::vector<std::string>{"counter"});
  CHECK(b.names.registered_names().empty());

  auto remote = b.names.whereis("counter");
  REQUIRE(remote);
  CHECK(caf::actor_cast<caf::abstract_actor*>(remote) != caf::actor_cast<caf::abstract_actor*>(c));
  auto r = call_settled(b.sys, remote, add_atom::value, add_req{3, "b"});
  REQUIRE_MESSAGE(!r.err, b.sys.render(r.err));
  CHECK(*r.value == total{3, "a"});
  // A cast, then a call: both leave B's names actor in order and arrive in order.
  caf::anon_send(remote, bump_atom::value, int32_t{4});
  r = call(b.sys, remote, get_atom::value);
  REQUIRE(r.value);
  CHECK(r.value->value == 7);
  // The callee's error comes back as that error; so does CAF's for a message it has
  // no handler for.
  r = call(b.sys, remote, fail_atom::value);
  CHECK(r.err == caf::make_error(caf::sec::invalid_argument));
  r = call(b.sys, remote, std::string{"no handler for this"});
  CHECK(r.err == caf::make_error(caf::sec::unexpected_message));
  // A message B cannot serialize never leaves B.
  r = call(b.sys, remote, secret{1});
  CHECK_MESSAGE(cl::is(r.err, cl::cluster_errc::bad_message), b.sys.render(r.err));
  CHECK(b.names.counters().calls_out.load() >= 4);
  CHECK(a.names.counters().calls_in.load() >= 4);
  CHECK(a.names.counters().casts_in.load() == 1);
  caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
}

TEST_CASE("already_registered across nodes; unregister releases the name for another node") {
  warren::set_log_level(spdlog::level::critical);
  warren_test::nats_cluster nats{2};
  peer a{"a", {nats.url(0)}};
  peer b{"b", {nats.url(1)}};
  REQUIRE(wait_for([&] { return a.nd.connected() && b.nd.connected(); }));
  auto ca = a.sys.spawn(counter, std::string{"a"}, caf::actor{});
  auto cb = b.sys.spawn(counter, std::string{"b"}, caf::actor{});
  REQUIRE(!a.names.register_name("x", ca));
  // First registration wins: B finds A's subscription (interest crosses the route in
  // milliseconds, well within claim_settle; retried until B sees it).
  caf::error err;
  REQUIRE(wait_for([&] {
    err = b.names.register_name("x", cb);
    if (!err)
      b.names.unregister_name("x"); // B saw no owner yet; try again
    return cl::is(err, cl::cluster_errc::already_registered);
  }));
  CHECK(cl::is(a.names.register_name("x", cb), cl::cluster_errc::already_registered)); // held here
  CHECK(cl::is(b.names.unregister_name("x"), cl::cluster_errc::not_registered));
  CHECK(cl::is(a.names.register_name("", ca), cl::cluster_errc::invalid_argument));
  REQUIRE(!a.names.unregister_name("x"));
  CHECK(a.names.registered_names().empty());
  REQUIRE(!register_retry(b.names, "x", cb));
  auto r = call_settled(a.sys, a.names.whereis("x"), get_atom::value);
  REQUIRE(r.value);
  CHECK(r.value->node == "b");
  caf::anon_send_exit(ca, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(cb, caf::exit_reason::user_shutdown);
}

TEST_CASE("simultaneous registrations from two nodes end with exactly one owner") {
  warren::set_log_level(spdlog::level::critical);
  warren_test::nats_cluster nats{3};
  peer a{"a", {nats.url(0)}};
  peer b{"b", {nats.url(1)}};
  peer c{"c", {nats.url(2)}};
  REQUIRE(wait_for([&] { return a.nd.connected() && b.nd.connected() && c.nd.connected(); }));
  auto ca = a.sys.spawn(counter, std::string{"a"}, caf::actor{});
  auto cb = b.sys.spawn(counter, std::string{"b"}, caf::actor{});
  for (int round = 0; round < 5; ++round) {
    auto name = "same-" + std::to_string(round);
    std::atomic<int> go{0};
    caf::error ea, eb;
    std::thread ta{[&] {
      ++go;
      while (go.load() < 2) {
      }
      ea = a.names.register_name(name, ca);
    }};
    std::thread tb{[&] {
      ++go;
      while (go.load() < 2) {
      }
      eb = b.names.register_name(name, cb);
    }};
    ta.join();
    tb.join();
    INFO("round ", round, ": a ", a.sys.render(ea), ", b ", b.sys.render(eb));
    // Exactly one owner; the other was told already_registered (at its claim, or at its
    // verification when both claimed before either had subscribed).
    REQUIRE((!ea) != (!eb));
    CHECK(cl::is(ea ? ea : eb, cl::cluster_errc::already_registered));
    auto winner = ea ? "b" : "a";
    auto r = call_settled(c.sys, c.names.whereis(name), get_atom::value);
    REQUIRE(r.value);
    CHECK(r.value->node == winner);
    auto held = [&](peer& p) {
      auto ns = p.names.registered_names();
      return std::find(ns.begin(), ns.end(), name) != ns.end();
    };
    CHECK(held(ea ? b : a));
    CHECK(!held(ea ? a : b));
  }
  caf::anon_send_exit(ca, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(cb, caf::exit_reason::user_shutdown);
}

TEST_CASE("a split that heals: the newer holder loses the name and its actor is told") {
  warren::set_log_level(spdlog::level::critical);
  warren_test::nats_cluster nats{2};
  peer a{"a", {nats.url(0)}};
  cl::names_options quick;
  peer b{"b", {nats.url(1)}, quick};
  REQUIRE(wait_for([&] { return a.nd.connected() && b.nd.connected(); }));
  caf::scoped_actor observer{b.sys};
  auto ca = a.sys.spawn(counter, std::string{"a"}, caf::actor{});
  auto cb = b.sys.spawn(counter, std::string{"b"}, caf::actor_cast<caf::actor>(observer));
  REQUIRE(!a.names.register_name("split", ca));
  // Server 1 loses its routes: B (only on server 1) sees nobody and registers too.
  nats.isolate(1);
  REQUIRE(wait_for([&] { return b.nd.connected(); }));
  auto err = register_retry(b.names, "split", cb);
  REQUIRE_MESSAGE(!err, b.sys.render(err));
  // The routes come back; B's link drops and returns, B verifies its names, A's older
  // claim keeps "split", and B's actor receives name_lost.
  nats.rejoin(1);
  bool told = false;
  observer->receive(
      [&](lost_atom, std::string& name, std::string& node) {
        told = true;
        CHECK(name == "split");
        CHECK(node == "b");
      },
      caf::after(std::chrono::seconds(30)) >> [] {});
  REQUIRE(told);
  CHECK(b.names.registered_names().empty());
  CHECK(b.names.counters().names_lost.load() == 1);
  auto r = call_settled(b.sys, b.names.whereis("split"), get_atom::value);
  REQUIRE(r.value);
  CHECK(r.value->node == "a");
  caf::anon_send_exit(ca, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(cb, caf::exit_reason::user_shutdown);
}

TEST_CASE("the owning actor dies, or its node's link closes: no_such_name") {
  warren::set_log_level(spdlog::level::critical);
  warren_test::nats_cluster nats{2};
  peer a{"a", {nats.url(0)}};
  peer b{"b", {nats.url(1)}};
  REQUIRE(wait_for([&] { return a.nd.connected() && b.nd.connected(); }));
  auto c1 = a.sys.spawn(counter, std::string{"a"}, caf::actor{});
  REQUIRE(!a.names.register_name("mortal", c1));
  auto remote = b.names.whereis("mortal");
  REQUIRE(call_settled(b.sys, remote, get_atom::value).value);
  caf::anon_send_exit(c1, caf::exit_reason::kill);
  CHECK(becomes_no_such_name(b.sys, remote, get_atom::value));
  CHECK(wait_for([&] { return a.names.registered_names().empty(); }));
  // Node down: A's NATS connection closes, its subscriptions go with it.
  auto c2 = a.sys.spawn(counter, std::string{"a"}, caf::actor{});
  REQUIRE(!a.names.register_name("mortal", c2));
  REQUIRE(call_settled(b.sys, remote, get_atom::value).value);
  a.nd.close();
  CHECK(becomes_no_such_name(b.sys, remote, get_atom::value));
  caf::anon_send_exit(c2, caf::exit_reason::user_shutdown);
}

TEST_CASE("no answer in time is a timeout; NATS down is cluster_unavailable, never a hang") {
  warren::set_log_level(spdlog::level::critical);
  warren_test::nats_cluster nats{1};
  cl::names_options quick;
  quick.request_timeout = 500ms;
  peer a{"a", {nats.url(0)}};
  peer b{"b", {nats.url(0)}, quick};
  REQUIRE(wait_for([&] { return a.nd.connected() && b.nd.connected(); }));
  auto c = a.sys.spawn(counter, std::string{"a"}, caf::actor{});
  REQUIRE(!a.names.register_name("slow", c));
  auto remote = b.names.whereis("slow");
  REQUIRE(call_settled(b.sys, remote, get_atom::value).value);
  auto r = call(b.sys, remote, hang_atom::value);
  CHECK(!r.value);
  CHECK(cl::is(r.err, cl::cluster_errc::timeout));
  CHECK(b.names.counters().timeouts.load() >= 1);
  // The callee's node keeps working.
  CHECK(call(b.sys, remote, get_atom::value).value);

  nats.kill(0);
  REQUIRE(wait_for([&] { return !b.nd.connected(); }));
  r = call(b.sys, remote, get_atom::value);
  CHECK(cl::is(r.err, cl::cluster_errc::cluster_unavailable));
  auto other = b.sys.spawn(counter, std::string{"b"}, caf::actor{});
  CHECK(cl::is(b.names.register_name("other", other), cl::cluster_errc::cluster_unavailable));
  caf::anon_send(remote, bump_atom::value, int32_t{1}); // a cast is dropped, counted
  CHECK(wait_for([&] { return b.names.counters().unavailable.load() >= 3; }));
  caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(other, caf::exit_reason::user_shutdown);
}

TEST_CASE("garbage on warren.name.* is dropped and counted") {
  warren::set_log_level(spdlog::level::critical);
  warren_test::nats_cluster nats{1};
  cl::names_options small;
  small.max_message_size = 64 << 10;
  peer a{"a", {nats.url(0)}, small};
  peer raw{"raw", {nats.url(0)}, {}, true}; // knows the type "secret"; A does not
  REQUIRE(wait_for([&] { return a.nd.connected() && raw.nd.connected(); }));
  auto c = a.sys.spawn(counter, std::string{"a"}, caf::actor{});
  REQUIRE(!a.names.register_name("target", c));
  std::vector<char> unknown;
  {
    caf::binary_serializer sink{raw.sys, unknown};
    auto msg = caf::make_message(secret{7});
    REQUIRE(!sink(msg));
  }
  auto inbox = raw.nd.inbox(0, 1);
  cl::header call[1] = {{"Warren-Op", "call"}};
  cl::header bogus_op[1] = {{"Warren-Op", "explode"}};
  cl::header claim_bad[2] = {{"Warren-Op", "claim"}, {"Warren-Claim", "not;a"}};
  REQUIRE(raw.nd.publish("warren.name.target", inbox, call, "\x01\x02garbage")); // bad bytes
  REQUIRE(
      raw.nd.publish("warren.name.target", inbox, call, {unknown.data(), unknown.size()})); // unknown type
  REQUIRE(raw.nd.publish("warren.name.target", {}, call, ""));         // call without reply
  REQUIRE(raw.nd.publish("warren.name.target", inbox, {}, "x"));       // no Warren-Op
  REQUIRE(raw.nd.publish("warren.name.target", inbox, bogus_op, "x")); // unknown op
  REQUIRE(raw.nd.publish("warren.name.target", inbox, claim_bad, "")); // bad claim
  REQUIRE(raw.nd.publish("warren.name.target", inbox, call, std::string(100 << 10, 'x'))); // oversize
  REQUIRE(raw.nd.publish("warren.name.a~zz", inbox, call, "x")); // not a token A made: nobody subscribes
  CHECK(wait_for([&] { return a.names.counters().bad_input.load() >= 7; }));
  // Still serving.
  auto r = call_settled(raw.sys, raw.names.whereis("target"), add_atom::value, add_req{2, "raw"});
  REQUIRE(r.value);
  CHECK(r.value->value == 2);
  caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
}
