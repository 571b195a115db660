// Several gateways in one cluster: in-process gateways, each on its own nats-server of
// a 3-server NATS cluster with routes (tests/support/warren_test/nats_cluster.hpp),
// plain TCP devices that name themselves in their first line.
#include "cluster_support.hpp"

#include "cluster_directory.hpp"

#include <warren/cluster/subject.hpp>
#include <warren/registry.hpp>

#include <set>

using namespace gw_test;

namespace {

gw::config node_config(const warren_test::nats_cluster& nats, std::size_t i, std::size_t server) {
  return cluster_node(test_config(), nats, "node-" + std::to_string(i), server);
}

/// Three gateways, node-i on NATS server i.
struct three_nodes {
  warren_test::nats_cluster nats{3};
  std::vector<std::unique_ptr<running_gateway>> g;
  /// `discover`: a node may fail over to the servers it learns from the cluster.
  /// `isolated`: that server is cut off from the others before the gateways start.
  explicit three_nodes(bool discover = true, std::optional<std::size_t> isolated = {}) {
    if (isolated)
      nats.isolate(*isolated);
    for (std::size_t i = 0; i < 3; ++i) {
      auto cfg = node_config(nats, i, i);
      cfg.cluster.nats.discover_servers = discover;
      g.push_back(std::make_unique<running_gateway>(std::move(cfg)));
    }
    for (auto& x : g)
      REQUIRE(eventually([&] { return (*x)->cluster()->node().connected(); }));
  }
  running_gateway& operator[](std::size_t i) { return *g.at(i); }
};

uint64_t devices_named(three_nodes& n, const std::string& id) {
  uint64_t count = 0;
  for (std::size_t i = 0; i < 3; ++i)
    count += n[i]->registry()->find(backend::address_kind::device, id) ? 1 : 0;
  return count;
}

} // namespace

TEST_CASE("a message POSTed on any node reaches the device on another, in to_device_seq order") {
  three_nodes n;
  // Ids that are no NATS token as they are: a dot, wildcards, a space, non-ASCII.
  for (std::string id :
       {std::string{"sensor-1"}, std::string{"a.b *>c"}, std::string{"capteur-\xc3\xa9t\xc3\xa9"}}) {
    INFO("device " << id);
    device d{n[0].port()};
    d.send(id + "\n");
    REQUIRE(post_when_reachable(n[1], msg_path(id, 1), "m1") == 202);
    for (uint64_t seq = 2; seq <= 50; ++seq)
      REQUIRE(post(n[1 + seq % 2], msg_path(id, seq), "m" + std::to_string(seq)) == 202);
    for (uint64_t seq = 1; seq <= 50; ++seq)
      REQUIRE(d.read_line() == "m" + std::to_string(seq));
    // By connection id too, from the third node.
    auto conn = n[0].sessions();
    auto it = std::find_if(conn.begin(), conn.end(), [&](auto& v) { return v.device_id == id; });
    REQUIRE(it != conn.end());
    REQUIRE(post_when_reachable(n[2], "/v1/connections/" + it->connection_id + "/messages", "by-conn") ==
            202);
    CHECK(d.read_line() == "by-conn");
    d.close();
    // Gone: connected nowhere, so 404 on every node.
    CHECK(eventually([&] { return post(n[2], msg_path(id), "late") == 404; }));
  }
  CHECK(n[1]->cluster()->counters().delivered_out.load() + n[2]->cluster()->counters().delivered_out.load() >=
        150);
  CHECK(n[0]->cluster()->counters().requests_in.load() >= 150);
  CHECK(n[2]->cluster()->counters().no_responders.load() >= 3);
  CHECK(post(n[0], msg_path("nobody"), "x") == 404);
}

TEST_CASE("a device that moves to another node takes its to_device_seq along; the old session closes") {
  three_nodes n;
  device a{n[0].port()};
  a.send("mover\n");
  for (uint64_t seq = 1; seq <= 3; ++seq)
    REQUIRE(post_when_reachable(n[2], msg_path("mover", seq), "m" + std::to_string(seq)) == 202);
  for (uint64_t seq = 1; seq <= 3; ++seq)
    REQUIRE(a.read_line() == "m" + std::to_string(seq));
  device b{n[1].port()};
  b.send("mover\n");
  CHECK(a.wait_closed()); // taken over from node-1
  REQUIRE(eventually([&] {
    return !n[0]->registry()->find(backend::address_kind::device, "mover") &&
           n[1]->registry()->find(backend::address_kind::device, "mover");
  }));
  // seq 4 arrives at once: the new session expects it (with next_to_device_seq 1 it
  // would wait 30 s for 1-3). From node-2 (the subscription moves) and node-1 (local).
  REQUIRE(post_when_reachable(n[2], msg_path("mover", 4), "m4") == 202);
  REQUIRE(post(n[1], msg_path("mover", 5), "m5") == 202);
  CHECK(b.read_line(5000ms) == "m4");
  CHECK(b.read_line(5000ms) == "m5");
  CHECK(n[1]->cluster()->counters().takeovers_out.load() == 1);
  CHECK(n[0]->cluster()->counters().takeovers_in.load() == 1);
  CHECK(n[0]->metrics()->takeovers.load() == 1);
}

TEST_CASE("simultaneous claims of one device from two nodes end with exactly one owner") {
  three_nodes n;
  for (int round = 0; round < 5; ++round) {
    auto id = "contested-" + std::to_string(round);
    INFO(id);
    device a{n[0].port()}, b{n[2].port()};
    a.send(id + "\n");
    b.send(id + "\n");
    // One connection closes (takeover); the other owns the device, cluster-wide.
    REQUIRE(eventually([&] { return devices_named(n, id) == 1; }));
    // And it stays so once the claims settled.
    std::this_thread::sleep_for(300ms); // claim_settle is 100 ms: the verification is done
    CHECK(devices_named(n, id) == 1);
    bool a_owns = n[0]->registry()->find(backend::address_kind::device, id) != nullptr;
    auto& loser = a_owns ? b : a;
    auto& winner = a_owns ? a : b;
    CHECK(loser.wait_closed());
    REQUIRE(post_when_reachable(n[1], msg_path(id), "to-the-owner") == 202);
    CHECK(winner.read_line() == "to-the-owner");
  }
}

TEST_CASE("NATS lost: local devices are served, cross-node delivery is refused (503), then all comes back") {
  three_nodes n{false};
  device local{n[0].port()}, remote{n[1].port()};
  local.send("here\n");
  remote.send("there\n");
  REQUIRE(post_when_reachable(n[2], msg_path("here"), "h1") == 202);
  REQUIRE(local.read_line() == "h1");
  REQUIRE(post_when_reachable(n[0], msg_path("there"), "t1") == 202);
  REQUIRE(remote.read_line() == "t1");
  n.nats.kill(0); // node-0's only server (no failover to the servers it learnt)
  REQUIRE(eventually([&] { return !n[0]->cluster()->node().connected(); }));
  CHECK(post(n[0], msg_path("here"), "h2") == 202); // in-process: no NATS hop
  CHECK(local.read_line() == "h2");
  CHECK(post(n[0], msg_path("there"), "t2") == 503);
  CHECK(n[0]->cluster()->counters().unavailable.load() >= 1);
  // node-0's subscriptions went with its connection: "here" is connected nowhere
  // as far as the others can tell.
  CHECK(eventually([&] { return post(n[2], msg_path("here"), "h-lost") == 404; }));
  n.nats.restart(0);
  REQUIRE(eventually([&] { return n[0]->cluster()->node().connected(); }, 20000ms));
  // libnats subscribes again: every live session is reachable again.
  CHECK(post_when_reachable(n[2], msg_path("here"), "h3") == 202);
  CHECK(local.read_line() == "h3");
  CHECK(post_when_reachable(n[0], msg_path("there"), "t3") == 202);
  CHECK(remote.read_line() == "t3");
}

TEST_CASE("a device's cluster agent stopped: its deliveries go through another agent, not to 404") {
  three_nodes n;
  device d{n[0].port()};
  d.send("agentless\n");
  REQUIRE(post_when_reachable(n[1], msg_path("agentless"), "first") == 202);
  REQUIRE(d.read_line() == "first");
  // Stop node-1's agent for this device (terminate_child: it stays stopped).
  auto& dir = *n[1]->cluster();
  auto own = std::hash<std::string_view>{}("agentless") % dir.agents();
  auto cluster_sup = child(n[1], {"cluster"});
  REQUIRE(cluster_sup);
  REQUIRE(!warren::sup::terminate_child(n[1]->system(), cluster_sup, "agent-" + std::to_string(own)));
  CHECK(!warren::whereis(n[1]->system(), gw::cluster_directory::agent_name(own)));
  CHECK(post(n[1], msg_path("agentless"), "second") == 202);
  CHECK(d.read_line() == "second");
}

TEST_CASE("malformed messages on warren subjects are dropped and counted; nothing else changes") {
  three_nodes n;
  device d{n[0].port()};
  d.send("victim\n");
  REQUIRE(post_when_reachable(n[1], msg_path("victim", 1), "ok-1") == 202);
  REQUIRE(d.read_line() == "ok-1");
  // A raw NATS client that speaks no Warren.
  warren::cluster::options o;
  o.node_name = "intruder";
  o.urls = {n.nats.url(2)};
  warren::cluster::node raw{o};
  raw.start();
  REQUIRE(eventually([&] { return raw.connected(); }));
  auto subject = n[0]->cluster()->subject(backend::address_kind::device, "victim");
  using h = warren::cluster::header;
  std::vector<std::vector<h>> bad = {
      {},                                               // no Warren-Op
      {{"Warren-Op", "explode"}},                       // unknown op
      {{"Warren-Op", "deliver"}, {"Warren-Seq", "-1"}}, // bad seq
      {{"Warren-Op", "claim"}},                         // claim without a claim
      {{"Warren-Op", "claim"}, {"Warren-Claim", "x;;"}},
  };
  auto before = n[0]->cluster()->counters().bad_input.load();
  for (auto& hs : bad)
    CHECK(raw.publish(subject, "_INBOX.intruder.1", hs, "payload"));
  CHECK(raw.publish(subject, {}, std::vector<h>{{"Warren-Op", "deliver"}}, "no reply subject"));
  CHECK(raw.publish("warren.dev.bad~ZZtoken", "_INBOX.intruder.2", std::vector<h>{{"Warren-Op", "deliver"}},
                    "x"));
  CHECK(eventually([&] { return n[0]->cluster()->counters().bad_input.load() >= before + 6; }));
  // Oversize for the device (a valid NATS message, over the listener's max_frame): refused
  // by the session, bad_message (422 through the admin API of another node).
  auto undeliverable = n[0]->metrics()->undeliverable.load();
  CHECK(raw.publish(subject, "_INBOX.intruder.3", std::vector<h>{{"Warren-Op", "deliver"}},
                    std::string(512 * 1024, 'x')));
  CHECK(eventually([&] { return n[0]->metrics()->undeliverable.load() == undeliverable + 1; }));
  CHECK(post(n[2], msg_path("victim"), std::string(n[0]->cfg().listeners[0].net.max_frame + 1, 'x')) == 422);
  CHECK(post(n[2], msg_path("victim"), "two\nlines") == 422);
  CHECK(n[2]->cluster()->counters().refused_out.load() == 2);
  // The heartbeat subject too.
  CHECK(raw.publish("warren.nodes.heartbeat", {}, {}, "{not json"));
  CHECK(raw.publish("warren.nodes.heartbeat", {}, {}, R"({"node": 5})"));
  CHECK(eventually([&] { return n[1]->cluster()->counters().bad_input.load() >= 2; }));
  // Another process under node-0's name (an operator's mistake): counted there, not
  // taken for a peer.
  CHECK(raw.publish("warren.nodes.heartbeat", {}, {}, R"({"node": "node-0", "started_us": 1})"));
  CHECK(eventually([&] { return n[0]->cluster()->counters().name_conflicts.load() >= 1; }));
  CHECK(n[0]->cluster()->peers_view().count("node-0") == 0);
  // The device and the cluster work as before.
  REQUIRE(post(n[1], msg_path("victim", 2), "ok-2") == 202);
  CHECK(d.read_line() == "ok-2");
}

TEST_CASE("GET /v1/cluster shows the nodes; /v1/connections?scope=cluster lists every node's sessions") {
  three_nodes n;
  device a{n[0].port()}, b{n[1].port()}, c{n[2].port()};
  a.send("dev-a\n");
  b.send("dev-b\n");
  c.send("dev-c\n");
  REQUIRE(eventually([&] {
    for (std::size_t i = 0; i < 3; ++i)
      if (n[i]->registry()->devices() != 1)
        return false;
    return true;
  }));
  // Every node has heard the two others' heartbeats (a node that started last missed
  // the first ones).
  nlohmann::json view;
  for (std::size_t i = 0; i < 3; ++i)
    REQUIRE(eventually([&] {
      view = get_json(n[i], "/v1/cluster");
      return view["answering"].size() == 2 && view["peers"].size() == 2;
    }));
  view = get_json(n[0], "/v1/cluster");
  CHECK(view["node"]["node"] == "node-0");
  CHECK(view["node"]["nats"]["state"] == "connected");
  std::set<std::string> names;
  for (auto& x : view["answering"])
    names.insert(x["node"].get<std::string>());
  CHECK(names == std::set<std::string>{"node-1", "node-2"});
  auto all = get_json(n[1], "/v1/connections?scope=cluster");
  std::set<std::string> devs;
  for (auto& s : all)
    devs.insert(s["device_id"].get<std::string>() + "@" + s["node"].get<std::string>());
  INFO(all.dump());
  CHECK(devs == std::set<std::string>{"dev-a@node-0", "dev-b@node-1", "dev-c@node-2"});
  CHECK(get_json(n[1], "/v1/connections").size() == 1);
  // Metrics.
  auto cli = n[0].http();
  auto m = cli.Get("/metrics");
  REQUIRE(m);
  CHECK(m->body.find("warren_cluster_nats_connected 1") != std::string::npos);
  CHECK(m->body.find("warren_cluster_deliveries_out_total") != std::string::npos);
}

TEST_CASE("kill -9 of a gateway process: its devices are unreachable on the others; reconnected, reachable") {
  warren_test::nats_cluster nats{2};
  running_gateway a{node_config(nats, 0, 0)};
  REQUIRE(eventually([&] { return a->cluster()->node().connected(); }));
  std::vector<double> ms;
  for (int round = 0; round < 3; ++round) {
    auto id = "victim-" + std::to_string(round);
    gateway_process b{WARREN_GATEWAY_BIN, "proc-b", nats.url(1)};
    device d{b.port};
    d.send(id + "\n");
    REQUIRE(post_when_reachable(a, msg_path(id, 1), "m1") == 202);
    REQUIRE(d.read_line() == "m1");
    auto t0 = std::chrono::steady_clock::now();
    b.kill9();
    int status = 0;
    // Until NATS drops the dead connection's interest a request may go unanswered
    // (504); never is it reported as delivered.
    REQUIRE(eventually([&] {
      status = post(a, msg_path(id), "after the kill");
      CHECK(status != 202);
      return status == 404;
    }));
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    // The device comes back on a survivor, reachable from there.
    device again{a.port()};
    again.send(id + "\n");
    REQUIRE(eventually([&] { return a->registry()->find(backend::address_kind::device, id) != nullptr; }));
    // (The device's to_device_seq state died with its node: a new sequence starts.)
    REQUIRE(post(a, msg_path(id, 1), "m1 again") == 202);
    CHECK(again.read_line() == "m1 again");
  }
  for (auto x : ms)
    MESSAGE("kill -9 to 404 on the survivor: " << x << " ms");
}

namespace {

bool lost_peer(running_gateway& g, const std::string& peer) {
  auto view = g->cluster()->peers_view();
  auto it = view.find(peer);
  return it != view.end() && it->second.lost;
}

/// Every node has heard every other's heartbeat.
bool all_met(three_nodes& n) {
  for (std::size_t i = 0; i < 3; ++i)
    if (n[i]->cluster()->peers_view().size() != 2)
      return false;
  return true;
}

} // namespace

TEST_CASE("a netsplit between NATS servers: a device claimed on both sides has one owner once healed") {
  const std::string id = "split-dev";
  // node-0 stays on server 0 (no failover), on its side of the split:
  // {server 0, node-0} | {servers 1 and 2, node-1, node-2}.
  std::optional<three_nodes> nodes;
  std::optional<device> a;
  SUBCASE("the nodes knew each other before the split: node-0 is lost, then back") {
    nodes.emplace(false);
    auto& n = *nodes;
    REQUIRE(eventually([&] { return all_met(n); }));
    a.emplace(n[0].port());
    a->send(id + "\n");
    REQUIRE(post_when_reachable(n[2], msg_path(id), "before") == 202);
    REQUIRE(a->read_line() == "before");
    n.nats.isolate(0);
    REQUIRE(eventually([&] { return lost_peer(n[1], "node-0") && lost_peer(n[0], "node-1"); }));
  }
  SUBCASE("split from the start: node-0 is heard for the first time at the heal") {
    nodes.emplace(false, std::optional<std::size_t>{0});
    auto& n = *nodes;
    a.emplace(n[0].port());
    a->send(id + "\n");
    REQUIRE(eventually([&] { return n[0]->registry()->find(backend::address_kind::device, id) != nullptr; }));
    CHECK(n[1]->cluster()->peers_view().count("node-0") == 0);
  }
  auto& n = *nodes;
  REQUIRE(eventually([&] { return n.nats.num_routes(1) == 1 && n.nats.num_routes(2) == 1; }));
  REQUIRE(eventually([&] { return n[0]->cluster()->node().connected(); }, 20000ms));
  // The device connects again, on the other side (its old connection lingers on node-0):
  // the majority side sees no owner, so node-1 takes it. Two owners, one per side.
  device b{n[1].port()};
  b.send(id + "\n");
  REQUIRE(eventually([&] { return devices_named(n, id) == 2; }));
  REQUIRE(post_when_reachable(n[2], msg_path(id), "majority side") == 202);
  CHECK(b.read_line() == "majority side");
  CHECK(post(n[0], msg_path(id), "minority side") == 202); // node-0's own session
  CHECK(a->read_line() == "minority side");
  // Heal: the newer claim (node-1's) wins; node-0's session closes.
  n.nats.rejoin(0);
  CHECK(a->wait_closed(20000ms));
  REQUIRE(eventually([&] { return devices_named(n, id) == 1; }, 20000ms));
  CHECK(n[1]->registry()->find(backend::address_kind::device, id) != nullptr);
  CHECK(n[0]->cluster()->counters().claims_lost.load() + n[0]->cluster()->counters().takeovers_in.load() ==
        1);
  // Reachable from every node, at its one owner.
  REQUIRE(post_when_reachable(n[0], msg_path(id), "healed from node-0") == 202);
  CHECK(b.read_line() == "healed from node-0");
  REQUIRE(post_when_reachable(n[2], msg_path(id), "healed from node-2") == 202);
  CHECK(b.read_line() == "healed from node-2");
  a.reset();
  nodes.reset();
}

TEST_CASE("a frozen gateway (SIGSTOP): deliveries to its devices time out (504), never 202; thawed, served "
          "again") {
  warren_test::nats_cluster nats{2};
  running_gateway a{node_config(nats, 0, 0)};
  REQUIRE(eventually([&] { return a->cluster()->node().connected(); }));
  gateway_process b{WARREN_GATEWAY_BIN, "proc-b", nats.url(1)};
  const std::string id = "sleeper";
  device d{b.port};
  d.send(id + "\n");
  REQUIRE(post_when_reachable(a, msg_path(id), "awake") == 202);
  REQUIRE(d.read_line() == "awake");
  b.freeze();
  // Its NATS connection and subscriptions stay (nats-server may drop a silent client
  // after its pings go unanswered; then 404): no answer within request_timeout is 504,
  // reported as not delivered.
  std::set<std::string> sent_frozen;
  auto timeouts = a->cluster()->counters().timeouts.load();
  int first = post(a, msg_path(id), "frozen-0");
  sent_frozen.insert("frozen-0");
  CHECK(first == 504);
  for (int i = 1; i < 3; ++i) {
    auto body = "frozen-" + std::to_string(i);
    sent_frozen.insert(body);
    int status = post(a, msg_path(id), body);
    CHECK((status == 504 || status == 404));
  }
  CHECK(a->cluster()->counters().timeouts.load() >= timeouts + 1);
  b.thaw();
  // Thawed, it reads what reached its socket meanwhile (at-least-once: a 504 may still
  // arrive) and, if the server dropped it, reconnects and subscribes again.
  REQUIRE(post_when_reachable(a, msg_path(id), "thawed") == 202);
  for (;;) {
    auto line = d.read_line();
    REQUIRE(line);
    if (*line == "thawed")
      break;
    INFO("line " << *line);
    REQUIRE(sent_frozen.count(*line) == 1);
  }
}
