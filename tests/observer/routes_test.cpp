// The observer's routes over real HTTP on a running tree: the page and its files,
// the event stream (a snapshot, then deltas numbered from its seq), the paged and
// searchable children of a big supervisor, and killing a child.
#include <warren/application.hpp>
#include <warren/log.hpp>
#include <warren/observer/observer.hpp>
#include <warren/registry.hpp>
#include <warren/supervisor.hpp>

#include <caf/all.hpp>
#include <doctest/doctest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <thread>

using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

caf::behavior idle(caf::event_based_actor*) {
  return {[](caf::get_atom) { return caf::unit; }};
}

warren::child_spec worker(std::string id) {
  warren::child_spec spec;
  spec.id = std::move(id);
  spec.start = warren::spawn_fn_of(idle);
  return spec;
}

// top (one_for_one): steady, pool (simple_one_for_one, `pool_size` workers), and two
// observers: one that may kill children, one that may not.
struct observed_tree {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  warren::application app{sys, "observed", false};
  std::shared_ptr<std::atomic<uint16_t>> port = std::make_shared<std::atomic<uint16_t>>(0);
  std::shared_ptr<std::atomic<uint16_t>> ro_port = std::make_shared<std::atomic<uint16_t>>(0);

  explicit observed_tree(int pool_size) {
    warren::set_log_level(spdlog::level::err);
    warren::supervisor_flags pool_flags;
    pool_flags.strategy = warren::restart_strategy::simple_one_for_one;
    auto pool = warren::supervisor_child("pool", pool_flags, {worker("pool-worker")});
    pool.name = "test-pool";
    warren::observer::options view;
    view.title = "routes <test>";
    view.top = [this] { return app.top(); };
    view.allow_kill = true;
    view.page_threshold = 50;
    auto ro = view;
    ro.allow_kill = false;
    auto ro_child = warren::observer::server_child(ro, "127.0.0.1", 0, ro_port);
    ro_child.id = "observer-ro";
    warren::supervisor_flags top;
    top.intensity = 5;
    REQUIRE_FALSE(app.start(
        top, {worker("steady"), pool, warren::observer::server_child(view, "127.0.0.1", 0, port), ro_child}));
    auto p = warren::whereis(sys, "test-pool");
    for (int i = 0; i < pool_size; ++i)
      REQUIRE(warren::sup::start_child(sys, p, caf::make_message()));
  }
  ~observed_tree() { stop(); }
  void stop() {
    if (stopped)
      return;
    stopped = true;
    app.stop();
    app.run();
  }
  bool stopped = false;
  httplib::Client client(bool read_only = false) {
    httplib::Client c{"127.0.0.1", (read_only ? ro_port : port)->load()};
    c.set_read_timeout(10s);
    return c;
  }
};

struct sse_event {
  std::string name;
  std::string id;
  json data;
};

// Splits complete `event:`/`id:`/`data:` blocks off the front of buf.
std::vector<sse_event> take_events(std::string& buf) {
  std::vector<sse_event> out;
  for (auto at = buf.find("\n\n"); at != std::string::npos; at = buf.find("\n\n")) {
    auto block = buf.substr(0, at);
    buf.erase(0, at + 2);
    sse_event ev;
    std::string data;
    std::size_t pos = 0;
    while (pos < block.size()) {
      auto nl = block.find('\n', pos);
      auto line = block.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      pos = nl == std::string::npos ? block.size() : nl + 1;
      if (line.starts_with("event: "))
        ev.name = line.substr(7);
      else if (line.starts_with("id: "))
        ev.id = line.substr(4);
      else if (line.starts_with("data: "))
        data += line.substr(6);
    }
    if (!data.empty())
      ev.data = json::parse(data);
    if (!ev.name.empty())
      out.push_back(std::move(ev));
  }
  return out;
}

const json* child_named(const json& sup, const std::string& id) {
  for (auto& c : sup["children"])
    if (c["id"] == id)
      return &c;
  return nullptr;
}

} // namespace

TEST_CASE("the page and its files are served from the binary") {
  observed_tree t{0};
  auto cli = t.client();
  auto page = cli.Get("/");
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK(page->get_header_value("Content-Type").starts_with("text/html"));
  CHECK(page->body.find("<title>routes  test  · observer</title>") !=
        std::string::npos); // no markup from the title
  CHECK(page->body.find("ui/observer.js") != std::string::npos);
  auto js = cli.Get("/ui/observer.js");
  REQUIRE(js);
  CHECK(js->status == 200);
  CHECK(js->get_header_value("Content-Type").starts_with("text/javascript"));
  CHECK(js->body.find("v1/tree/stream") != std::string::npos);
  auto missing = cli.Get("/ui/nothing.js");
  REQUIRE(missing);
  CHECK(missing->status == 404);
}

TEST_CASE("the stream sends a snapshot, then a killed child's restart as numbered deltas") {
  observed_tree t{3};
  auto cli = t.client();
  auto killer = t.client();
  std::string buf;
  json snapshot;
  std::vector<json> deltas;
  uint64_t killed = 0;
  bool restarted = false;
  auto res = cli.Get("/v1/tree/stream", [&](const char* data, std::size_t n) {
    buf.append(data, n);
    for (auto& ev : take_events(buf)) {
      if (ev.name == "snapshot") {
        REQUIRE(snapshot.is_null()); // one, not a resync
        snapshot = ev.data;
        CHECK(ev.id == std::to_string(snapshot["seq"].get<uint64_t>()));
        auto* steady = child_named(snapshot["tree"], "steady");
        REQUIRE(steady);
        killed = (*steady)["actor_id"];
        auto path =
            std::to_string(snapshot["tree"]["actor_id"].get<uint64_t>()) + "." + std::to_string(killed);
        auto k = killer.Post(("/v1/tree/kill?path=" + path).c_str(), "", "text/plain");
        REQUIRE(k);
        CHECK(k->status == 202);
      } else if (ev.name == "delta") {
        deltas.push_back(ev.data);
        for (auto& e : ev.data["events"])
          if (e["child"] == "steady" && e["kind"] == "started")
            restarted = true;
      }
    }
    return !restarted; // ends the stream
  });
  CHECK_FALSE(res); // canceled by the receiver, not ended by the server
  REQUIRE(restarted);
  auto expect = snapshot["seq"].get<uint64_t>() + 1;
  std::vector<std::string> kinds;
  for (auto& d : deltas)
    for (auto& e : d["events"]) {
      CHECK(e["seq"] == expect++);
      if (e["child"] == "steady")
        kinds.push_back(e["kind"]);
    }
  CHECK(kinds == std::vector<std::string>{"restarting", "started"});
  // The snapshot's tree: supervisor details, and the pool under the threshold in full.
  auto& tree = snapshot["tree"];
  CHECK(tree["strategy"] == "one_for_one");
  CHECK(tree["intensity"] == 5);
  CHECK(snapshot["allow_kill"] == true);
  auto* pool = child_named(tree, "pool");
  REQUIRE(pool);
  CHECK((*pool)["paged"] == false);
  CHECK((*pool)["children"].size() == 3);
  // The restart is in the timeline of a new watcher's snapshot.
  std::string buf2;
  json snap2;
  cli.Get("/v1/tree/stream", [&](const char* data, std::size_t n) {
    buf2.append(data, n);
    for (auto& ev : take_events(buf2))
      if (ev.name == "snapshot")
        snap2 = ev.data;
    return snap2.is_null();
  });
  REQUIRE(snap2.is_object());
  bool in_timeline = false;
  for (auto& e : snap2["timeline"])
    in_timeline |= e["child"] == "steady" && e["kind"] == "restarting" && e["reason"] == "killed";
  CHECK(in_timeline);
}

TEST_CASE("a big supervisor shows counts, and its children a page at a time") {
  observed_tree t{120};
  auto cli = t.client();
  std::string buf;
  json snapshot;
  cli.Get("/v1/tree/stream", [&](const char* data, std::size_t n) {
    buf.append(data, n);
    for (auto& ev : take_events(buf))
      if (ev.name == "snapshot")
        snapshot = ev.data;
    return snapshot.is_null();
  });
  auto* pool = child_named(snapshot["tree"], "pool");
  REQUIRE(pool);
  CHECK((*pool)["paged"] == true);
  CHECK((*pool)["total"] == 120);
  CHECK((*pool)["counts"]["running"] == 120);
  CHECK((*pool)["children"].empty());
  auto path = std::to_string(snapshot["tree"]["actor_id"].get<uint64_t>()) + "." +
              std::to_string((*pool)["actor_id"].get<uint64_t>());
  auto page = cli.Get(("/v1/tree/children?path=" + path + "&offset=100&limit=50").c_str());
  REQUIRE(page);
  REQUIRE(page->status == 200);
  auto p = json::parse(page->body);
  CHECK(p["total"] == 120);
  CHECK(p["matched"] == 120);
  CHECK(p["children"].size() == 20);
  auto some = std::to_string(p["children"][0]["actor_id"].get<uint64_t>());
  auto found = cli.Get(("/v1/tree/children?path=" + path + "&q=" + some).c_str());
  REQUIRE(found);
  auto f = json::parse(found->body);
  REQUIRE(f["matched"].get<int>() >= 1);
  for (auto& c : f["children"])
    CHECK(std::to_string(c["actor_id"].get<uint64_t>()).find(some) != std::string::npos);
  for (auto bad :
       {"/v1/tree/children?path=x", "/v1/tree/children?path=1..2", "/v1/tree/children?path=1&limit=-1"}) {
    auto r = cli.Get(bad);
    REQUIRE(r);
    CHECK(r->status == 400);
  }
  auto none = cli.Get("/v1/tree/children?path=999999");
  REQUIRE(none);
  CHECK(none->status == 404);
}

TEST_CASE("killing is refused unless the observer allows it, and a wrong path is 404") {
  observed_tree t{0};
  auto ro = t.client(true);
  auto top = std::to_string(t.app.top().id());
  auto r = ro.Post(("/v1/tree/kill?path=" + top + ".1").c_str(), "", "text/plain");
  REQUIRE(r);
  CHECK(r->status == 403);
  auto rw = t.client();
  auto missing = rw.Post(("/v1/tree/kill?path=" + top + ".999999").c_str(), "", "text/plain");
  REQUIRE(missing);
  CHECK(missing->status == 404);
  auto bad = rw.Post("/v1/tree/kill?path=", "", "text/plain");
  REQUIRE(bad);
  CHECK(bad->status == 400);
}

TEST_CASE("stopping the tree ends open streams") {
  observed_tree t{0};
  std::atomic<bool> snapshot{false};
  std::thread watcher{[&] {
    auto cli = t.client();
    std::string buf;
    auto res = cli.Get("/v1/tree/stream", [&](const char* data, std::size_t n) {
      buf.append(data, n);
      for (auto& ev : take_events(buf))
        if (ev.name == "snapshot")
          snapshot = true;
      return true; // reads until the server ends the stream
    });
    CHECK(res); // ended by the server
  }};
  while (!snapshot)
    std::this_thread::sleep_for(1ms);
  t.stop(); // returns only once the observer's server has stopped
  watcher.join();
}
