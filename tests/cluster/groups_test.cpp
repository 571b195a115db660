// cluster::groups against real nats-server processes: three actor systems in one
// process, each with its own cluster::node on its own server of a routed NATS cluster.
#include "embed_support.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <caf/binary_serializer.hpp>

#include <map>
#include <set>

using namespace embed_test;

namespace {

using mark_atom = caf::atom_constant<caf::atom("tmark")>;

/// A group member: reports every broadcast it gets to `collector` as (tag, value, id).
caf::behavior member(caf::event_based_actor* self, caf::actor collector, std::string tag) {
  return {
      [=](tick_atom, add_req& r) { self->send(collector, tick_atom::value, tag, r.amount); },
      [=](mark_atom, int32_t n) { self->send(collector, mark_atom::value, tag, n); },
  };
}

/// The members() view as node -> memberships.
std::map<std::string, size_t> view(cl::groups& g, const std::string& group) {
  std::map<std::string, size_t> out;
  for (auto& n : g.members(group))
    out[n.node] = n.members;
  return out;
}

/// Broadcasts (tick, value) and then (mark, value) from `from`, and collects what the
/// members report until every tag in `expect` has reported its mark: the mark leaves
/// after the tick on the same path, so by then every tick that will come has come.
std::map<std::string, int> ticks_per_member(cl::groups& from, caf::scoped_actor& collector,
                                            const std::vector<std::string>& expect, int32_t value) {
  REQUIRE(!from.broadcast("g", caf::make_message(tick_atom::value, add_req{value, "t"})));
  REQUIRE(!from.broadcast("g", caf::make_message(mark_atom::value, value)));
  std::map<std::string, int> ticks;
  std::set<std::string> marked;
  bool timed_out = false;
  while (!timed_out && marked.size() < expect.size()) {
    collector->receive(
        [&](tick_atom, std::string& tag, int32_t v) {
          if (v == value)
            ++ticks[tag];
        },
        [&](mark_atom, std::string& tag, int32_t v) {
          if (v == value)
            marked.insert(tag);
        },
        caf::after(std::chrono::seconds(15)) >> [&] { timed_out = true; });
  }
  CHECK(!timed_out);
  CHECK(marked == std::set<std::string>(expect.begin(), expect.end()));
  return ticks;
}

} // namespace

TEST_CASE("members on two nodes; a broadcast from a third reaches each exactly once; leave and exit remove") {
  warren::set_log_level(spdlog::level::critical);
  warren_test::nats_cluster nats{3};
  peer a{"a", {nats.url(0)}};
  peer b{"b", {nats.url(1)}};
  peer c{"c", {nats.url(2)}};
  REQUIRE(wait_for([&] { return a.nd.connected() && b.nd.connected() && c.nd.connected(); }));
  caf::scoped_actor collector{c.sys};
  auto to = caf::actor_cast<caf::actor>(collector);
  auto m1 = a.sys.spawn(member, to, std::string{"m1"});
  auto m2 = a.sys.spawn(member, to, std::string{"m2"});
  auto m3 = b.sys.spawn(member, to, std::string{"m3"});
  REQUIRE(!a.groups.join("g", m1));
  REQUIRE(!a.groups.join("g", m1)); // pg counts joins; a broadcast still reaches m1 once
  REQUIRE(!a.groups.join("g", m2));
  REQUIRE(!b.groups.join("g", m3));
  CHECK(a.groups.local_members("g").size() == 3);
  CHECK(a.groups.which_groups() == std::vector<std::string>{"g"});
  CHECK(cl::is(a.groups.join("", m1), cl::cluster_errc::invalid_argument));
  // Ready when C sees both nodes' interest (members() is a scatter-gather on it).
  std::map<std::string, size_t> expected{{"a", 3}, {"b", 1}};
  REQUIRE(wait_for([&] { return view(c.groups, "g") == expected; }));

  auto ticks = ticks_per_member(c.groups, collector, {"m1", "m2", "m3"}, 1);
  CHECK(ticks == std::map<std::string, int>{{"m1", 1}, {"m2", 1}, {"m3", 1}});
  CHECK(a.groups.counters().broadcasts_in.load() == 2);
  CHECK(c.groups.counters().broadcasts_out.load() == 2);

  // From a node with members: its own members in-process, the others over NATS.
  ticks = ticks_per_member(a.groups, collector, {"m1", "m2", "m3"}, 2);
  CHECK(ticks == std::map<std::string, int>{{"m1", 1}, {"m2", 1}, {"m3", 1}});

  // m1 joined twice: one leave keeps it, the second removes it, a third is not_joined.
  REQUIRE(!a.groups.leave("g", m1));
  CHECK(a.groups.local_members("g").size() == 2);
  REQUIRE(!a.groups.leave("g", m1));
  CHECK(cl::is(a.groups.leave("g", m1), cl::cluster_errc::not_joined));
  // m3 exits: B's last member goes, and B's subscription with it.
  caf::anon_send_exit(m3, caf::exit_reason::kill);
  REQUIRE(wait_for([&] { return b.groups.local_members("g").empty(); }));
  CHECK(b.groups.which_groups().empty());
  std::map<std::string, size_t> only_a{{"a", 1}};
  REQUIRE(wait_for([&] { return view(c.groups, "g") == only_a; }));
  ticks = ticks_per_member(c.groups, collector, {"m2"}, 3);
  CHECK(ticks == std::map<std::string, int>{{"m2", 1}});
  caf::anon_send_exit(m1, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(m2, caf::exit_reason::user_shutdown);
}

TEST_CASE("a node whose link closes loses its members; garbage on warren.grp.* is dropped and counted") {
  warren::set_log_level(spdlog::level::critical);
  warren_test::nats_cluster nats{2};
  peer a{"a", {nats.url(0)}};
  peer b{"b", {nats.url(1)}};
  peer raw{"raw", {nats.url(1)}, {}, true};
  REQUIRE(wait_for([&] { return a.nd.connected() && b.nd.connected() && raw.nd.connected(); }));
  caf::scoped_actor collector{a.sys};
  auto to = caf::actor_cast<caf::actor>(collector);
  auto ma = a.sys.spawn(member, to, std::string{"ma"});
  auto mb = b.sys.spawn(member, to, std::string{"mb"});
  REQUIRE(!a.groups.join("g", ma));
  REQUIRE(!b.groups.join("g", mb));
  std::map<std::string, size_t> both{{"a", 1}, {"b", 1}};
  REQUIRE(wait_for([&] { return view(raw.groups, "g") == both; }));

  // Garbage: bad bytes, a type A does not know, a token A cannot have made.
  std::vector<char> unknown;
  {
    caf::binary_serializer sink{raw.sys, unknown};
    auto msg = caf::make_message(secret{7});
    REQUIRE(!sink(msg));
  }
  REQUIRE(raw.nd.publish("warren.grp.g", {}, {}, "\x01\x02garbage"));
  REQUIRE(raw.nd.publish("warren.grp.g", {}, {}, {unknown.data(), unknown.size()}));
  CHECK(wait_for([&] { return a.groups.counters().bad_input.load() >= 2; }));
  auto ticks = ticks_per_member(raw.groups, collector, {"ma", "mb"}, 1);
  CHECK(ticks == std::map<std::string, int>{{"ma", 1}, {"mb", 1}});

  // B's link closes: its members vanish with its subscription. B's own broadcast still
  // reaches B's members, and says the cluster was unavailable.
  b.nd.close();
  std::map<std::string, size_t> only_a{{"a", 1}};
  REQUIRE(wait_for([&] { return view(raw.groups, "g") == only_a; }));
  ticks = ticks_per_member(raw.groups, collector, {"ma"}, 2);
  CHECK(ticks == std::map<std::string, int>{{"ma", 1}});
  auto err = b.groups.broadcast("g", caf::make_message(mark_atom::value, int32_t{9}));
  CHECK(cl::is(err, cl::cluster_errc::cluster_unavailable));
  bool local = false;
  collector->receive([&](mark_atom, std::string& tag, int32_t v) { local = tag == "mb" && v == 9; },
                     caf::after(std::chrono::seconds(15)) >> [] {});
  CHECK(local);
  CHECK(cl::is(b.groups.broadcast("g", caf::make_message(secret{1})), cl::cluster_errc::bad_message));
  caf::anon_send_exit(ma, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(mb, caf::exit_reason::user_shutdown);
}
