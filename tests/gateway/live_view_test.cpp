// The live view on the gateway's admin API (admin.cpp, admin_server carry): the page
// without the token, everything else with it, and event streams written by the
// stream writer, so watchers beyond the worker pool leave /healthz and /metrics
// answering.
#include "gw_support.hpp"

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

using namespace gw_test;
using json = nlohmann::json;

namespace {

/// A raw HTTP client that keeps reading a streamed response.
struct stream_client {
  int fd = -1;
  std::string got;

  stream_client(uint16_t port, const std::string& request) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == ssize_t(request.size()));
  }
  ~stream_client() { close(); }
  void close() {
    if (fd >= 0)
      ::close(fd);
    fd = -1;
  }
  /// Reads until `text` has arrived (true) or the peer closed / the safety timeout.
  bool read_until(const std::string& text, std::chrono::milliseconds timeout = 10000ms) {
    auto until = std::chrono::steady_clock::now() + timeout;
    char buf[8192];
    while (got.find(text) == std::string::npos) {
      if (std::chrono::steady_clock::now() > until)
        return false;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0)
        continue;
      auto n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0)
        return false;
      got.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }
};

/// True once a delta on `s` holds an event of `kind` for `child` (reads on meanwhile).
bool saw_event(stream_client& s, const std::string& child, const std::string& kind) {
  auto until = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    for (auto at = s.got.find("event: delta\n"); at != std::string::npos;
         at = s.got.find("event: delta\n", at + 1)) {
      auto data = s.got.find("data: ", at);
      auto end = s.got.find("\n\n", data);
      if (data == std::string::npos || end == std::string::npos)
        break;
      auto delta = json::parse(s.got.substr(data + 6, end - data - 6));
      for (auto& ev : delta["events"])
        if (ev.value("child", "") == child && ev["kind"] == kind)
          return true;
    }
    if (std::chrono::steady_clock::now() > until)
      return false;
    auto size = s.got.size();
    s.read_until(std::string(1, '\0'), 100ms); // whatever arrives within 100 ms
    if (s.got.size() == size && s.fd < 0)
      return false;
  }
}

std::string stream_request(const std::string& token) {
  return "GET /v1/tree/stream HTTP/1.1\r\nHost: a\r\nAccept: text/event-stream\r\n" +
         (token.empty() ? std::string{} : "Authorization: Bearer " + token + "\r\n") + "\r\n";
}

/// The first `event: snapshot` block's data.
json first_snapshot(const std::string& got) {
  auto at = got.find("event: snapshot\n");
  REQUIRE(at != std::string::npos);
  auto data = got.find("data: ", at);
  auto end = got.find("\n\n", data);
  REQUIRE(end != std::string::npos);
  return json::parse(got.substr(data + 6, end - data - 6));
}

gw::config live_config() {
  auto cfg = test_config();
  cfg.admin.threads = 2; // fewer workers than the watchers below
  cfg.admin.token = "s3cret";
  cfg.admin.allow_kill = true;
  return cfg;
}

} // namespace

TEST_CASE("live view: the page loads without the token, the stream and the API need it") {
  running_gateway g{live_config()};
  auto cli = g.http();
  auto page = cli.Get("/");
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK(page->get_header_value("Content-Type").starts_with("text/html"));
  CHECK(page->body.find("ui/observer.js") != std::string::npos);
  auto js = cli.Get("/ui/observer.js");
  REQUIRE(js);
  CHECK(js->status == 200);
  CHECK(js->body.find("Authorization") != std::string::npos); // the page sends the token itself
  for (auto path : {"/v1/tree/stream", "/v1/tree/children?path=1", "/v1/stats"}) {
    auto r = cli.Get(path);
    REQUIRE(r);
    CHECK_MESSAGE(r->status == 401, path);
  }
  auto kill = cli.Post("/v1/tree/kill?path=1.2", "", "text/plain");
  REQUIRE(kill);
  CHECK(kill->status == 401);
  stream_client wrong{g->admin_port(), stream_request("nope")};
  CHECK(wrong.read_until("\r\n\r\n"));
  CHECK(wrong.got.starts_with("HTTP/1.1 401"));
}

TEST_CASE("live view: streams beyond the worker pool leave the probes answering, and carry restarts") {
  running_gateway g{live_config()};
  constexpr int watchers = 6; // three times the workers
  std::vector<std::unique_ptr<stream_client>> streams;
  for (int i = 0; i < watchers; ++i) {
    streams.push_back(std::make_unique<stream_client>(g->admin_port(), stream_request("s3cret")));
    REQUIRE(streams.back()->read_until("event: snapshot\n"));
    REQUIRE(streams.back()->read_until("\n\n", 5000ms));
  }
  CHECK(streams[0]->got.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(streams[0]->got.find("Content-Type: text/event-stream\r\n") != std::string::npos);

  // Every worker would be held by a stream if streams ran on them: these would time out.
  httplib::Client cli{"127.0.0.1", g->admin_port()};
  cli.set_read_timeout(5, 0);
  cli.set_bearer_token_auth("s3cret");
  for (int i = 0; i < 3; ++i) {
    auto h = cli.Get("/healthz");
    REQUIRE(h);
    CHECK(h->status == 200);
    auto m = cli.Get("/metrics");
    REQUIRE(m);
    CHECK(m->status == 200);
    CHECK(m->body.find("warren_admin_streams_open " + std::to_string(watchers) + "\n") != std::string::npos);
  }

  // A child killed through the API: every watcher sees its restart as deltas.
  auto snap = first_snapshot(streams[0]->got);
  CHECK(snap["allow_kill"] == true);
  uint64_t metrics_actor = 0;
  for (auto& c : snap["tree"]["children"])
    if (c["id"] == "metrics")
      metrics_actor = c["actor_id"];
  REQUIRE(metrics_actor != 0);
  auto path = std::to_string(snap["tree"]["actor_id"].get<uint64_t>()) + "." + std::to_string(metrics_actor);
  auto k = cli.Post(("/v1/tree/kill?path=" + path).c_str(), "", "text/plain");
  REQUIRE(k);
  CHECK(k->status == 202);
  for (auto& s : streams) {
    CHECK(saw_event(*s, "metrics", "restarting"));
    CHECK(saw_event(*s, "metrics", "started"));
  }

  // Watchers that leave are closed and no longer counted.
  for (int i = 0; i < watchers / 2; ++i)
    streams[static_cast<std::size_t>(i)]->close();
  CHECK(eventually([&] {
    auto m = cli.Get("/metrics");
    return m && m->body.find("warren_admin_streams_open " + std::to_string(watchers / 2) + "\n") !=
                    std::string::npos;
  }));
}

TEST_CASE("live view: more watchers than max_watchers are refused with 503") {
  auto cfg = live_config();
  cfg.admin.max_watchers = 2;
  running_gateway g{cfg};
  stream_client a{g->admin_port(), stream_request("s3cret")}, b{g->admin_port(), stream_request("s3cret")};
  REQUIRE(a.read_until("event: snapshot\n"));
  REQUIRE(b.read_until("event: snapshot\n"));
  stream_client c{g->admin_port(), stream_request("s3cret")};
  REQUIRE(c.read_until("\r\n\r\n"));
  CHECK(c.got.starts_with("HTTP/1.1 503"));
}

TEST_CASE("live view: /v1/stats and the session search behind the panels") {
  running_gateway g{live_config()};
  httplib::Client cli{"127.0.0.1", g->admin_port()};
  cli.set_read_timeout(5, 0);
  cli.set_bearer_token_auth("s3cret");
  device d1{g.port()}, d2{g.port()};
  REQUIRE(eventually([&] { return g.sessions().size() == 2; }));
  auto r = cli.Get("/v1/stats");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  auto s = json::parse(r->body);
  REQUIRE(s["listeners"].size() == 1);
  CHECK(s["listeners"][0]["id"] == "plain");
  CHECK(s["listeners"][0]["accepted"] == 2);
  CHECK(s["listeners"][0]["active"] == 2);
  CHECK(s["listeners"][0]["handshake"].contains("not_tls"));
  CHECK(s["sessions"]["connections"] == 2);
  CHECK(s["backend"]["kind"] == "local");
  CHECK(s["backend"]["ready"] == true);
  CHECK(s["cluster"].is_null());
  auto one = g.sessions()[0].connection_id;
  auto found = cli.Get(("/v1/connections?q=" + one).c_str());
  REQUIRE(found);
  auto list = json::parse(found->body);
  REQUIRE(list.size() >= 1);
  for (auto& v : list)
    CHECK(v["connection_id"].get<std::string>().find(one) != std::string::npos);
  auto limited = cli.Get("/v1/connections?limit=1");
  REQUIRE(limited);
  CHECK(json::parse(limited->body).size() == 1);
  auto bad = cli.Get("/v1/connections?limit=x");
  REQUIRE(bad);
  CHECK(bad->status == 400);
  auto js = cli.Get("/ui/gateway.js"); // the panels, loaded by the page
  REQUIRE(js);
  CHECK(js->status == 200);
  auto page = cli.Get("/");
  REQUIRE(page);
  CHECK(page->body.find("<script src=\"ui/gateway.js\"></script>") != std::string::npos);
}
