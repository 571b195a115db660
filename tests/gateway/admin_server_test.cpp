// The admin API's HTTP server (admin_server.hpp): limits, framing, slow and idle
// clients, ids, the bearer token, TLS, /readyz. Raw sockets where a well-behaved
// client library would not send what is tested.
#include "devcert.hpp"
#include "gw_support.hpp"

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

using namespace gw_test;
using json = nlohmann::json;

namespace {

/// A raw TCP client of the admin API.
struct raw_client {
  int fd = -1;
  explicit raw_client(uint16_t port) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  }
  ~raw_client() { ::close(fd); }
  void send(const std::string& s) {
    REQUIRE(::send(fd, s.data(), s.size(), MSG_NOSIGNAL) == ssize_t(s.size()));
  }
  /// Everything until the peer closes (or the safety timeout).
  std::string read_all(std::chrono::milliseconds timeout = 10000ms) {
    std::string out;
    auto until = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    while (std::chrono::steady_clock::now() < until) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0)
        continue;
      auto n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0)
        break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
  }
};

int status_of(const std::string& response) {
  if (response.size() < 12 || !response.starts_with("HTTP/1.1 "))
    return -1;
  return std::stoi(response.substr(9, 3));
}

gw::config admin_config() {
  auto cfg = test_config();
  cfg.admin.body_limit = 1024;
  cfg.admin.threads = 2;
  return cfg;
}

} // namespace

TEST_CASE("admin API: a body over body_limit is 413, unread, and the connection closes") {
  running_gateway g{admin_config()};
  {
    raw_client c{g->admin_port()};
    // Announced too large: answered before a byte of the body is sent.
    c.send("POST /v1/devices/x/messages HTTP/1.1\r\nHost: a\r\nContent-Length: 100000000\r\n\r\n");
    auto r = c.read_all(); // ends: the server closed
    CHECK(status_of(r) == 413);
    CHECK(r.find("Connection: close") != std::string::npos);
  }
  {
    // Chunked: 4 chunks of 1000 bytes over a limit of 1024.
    raw_client c{g->admin_port()};
    std::string req = "POST /v1/devices/x/messages HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 4; ++i)
      req += "3e8\r\n" + std::string(1000, 'x') + "\r\n";
    req += "0\r\n\r\n";
    c.send(req);
    CHECK(status_of(c.read_all()) == 413);
  }
  auto cli = g.http();
  auto ok = cli.Post("/v1/devices/nobody/messages", std::string(1000, 'x'), "text/plain");
  REQUIRE(ok);
  CHECK(ok->status == 404); // within the limit: routed
}

TEST_CASE("admin API: compressed bodies are refused, not inflated") {
  running_gateway g{admin_config()};
  raw_client c{g->admin_port()};
  c.send("POST /v1/devices/x/messages HTTP/1.1\r\nHost: a\r\nContent-Encoding: gzip\r\nContent-Length: "
         "10\r\n\r\n"
         "0123456789");
  CHECK(status_of(c.read_all()) == 415);
}

TEST_CASE("admin API: strict Content-Length and Transfer-Encoding") {
  running_gateway g{admin_config()};
  auto one = [&](const std::string& head) {
    raw_client c{g->admin_port()};
    c.send(head);
    return status_of(c.read_all());
  };
  CHECK(one("POST /v1/devices/x/messages HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: "
            "chunked\r\n\r\n"
            "0\r\n\r\n") == 400);
  CHECK(one("POST /v1/devices/x/messages HTTP/1.1\r\nHost: a\r\nContent-Length: 3abc\r\n\r\nabc") == 400);
  CHECK(one("POST /v1/devices/x/messages HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: "
            "4\r\n\r\nabcd") == 400);
  CHECK(one("POST /v1/devices/x/messages HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n") ==
        501);
  CHECK(one("POST /v1/devices/x/messages HTTP/1.1\r\nHost: a\r\n\r\n") == 411);
  CHECK(one("GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(20000, 'x') + "\r\n\r\n") == 431);
  // A body on GET would be parsed as the next request: refused, and the connection closes.
  raw_client c{g->admin_port()};
  c.send("GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 27\r\n\r\nGET /v1/tree HTTP/1.1\r\n\r\n");
  auto r = c.read_all();
  CHECK(status_of(r) == 400);
  CHECK(r.find("HTTP/1.1", 5) == std::string::npos); // one answer only
}

TEST_CASE("admin API: slow-header and idle clients do not starve /healthz and /metrics") {
  auto cfg = admin_config();
  cfg.admin.threads = 2;
  cfg.admin.max_connections = 32; // fewer than the hogs: a new client takes an idle one's place
  running_gateway g{cfg};
  std::vector<std::unique_ptr<raw_client>> hogs;
  for (int i = 0; i < 16; ++i) { // trickling headers, never finished
    hogs.push_back(std::make_unique<raw_client>(g->admin_port()));
    hogs.back()->send("GET /healthz HTTP/1.1\r\nHost: a\r\n");
  }
  for (int i = 0; i < 100; ++i) // connected, silent
    hogs.push_back(std::make_unique<raw_client>(g->admin_port()));
  for (int i = 0; i < 16; ++i) { // one request each, then idle keep-alive
    hogs.push_back(std::make_unique<raw_client>(g->admin_port()));
    hogs.back()->send("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
  }
  auto cli = g.http();
  cli.set_read_timeout(3, 0); // safety net; today's starvation lasts longer
  auto h = cli.Get("/healthz");
  REQUIRE(h);
  CHECK(h->status == 200);
  auto m = cli.Get("/metrics");
  REQUIRE(m);
  CHECK(m->status == 200);
  CHECK(m->body.find("warren_admin_connections_total") != std::string::npos);
  CHECK(m->body.find("warren_admin_evicted_total 0") == std::string::npos);
}

TEST_CASE("admin API: idle_timeout closes idle connections, read_timeout slow heads") {
  auto cfg = admin_config();
  cfg.admin.idle_timeout = 200ms;
  cfg.admin.read_timeout = 300ms;
  running_gateway g{cfg};
  raw_client idle{g->admin_port()};
  raw_client slow{g->admin_port()};
  slow.send("GET /healthz HTTP/1.1\r\nHost: a\r\n");
  // read_all ends when the server closes; the safety timeout is far longer
  CHECK(idle.read_all(20000ms).empty());
  CHECK(slow.read_all(20000ms).empty());
  auto m = g.http().Get("/metrics");
  REQUIRE(m);
  CHECK(m->body.find("warren_admin_idle_closes_total 0") == std::string::npos);
  CHECK(m->body.find("warren_admin_read_timeouts_total 0") == std::string::npos);
}

TEST_CASE("admin API: ids are percent-decoded, '/' included; invalid UTF-8 is 400 without internals") {
  running_gateway g{admin_config()};
  auto cli = g.http();
  auto slash = cli.Post("/v1/devices/site%2F7/messages", "x", "text/plain");
  REQUIRE(slash);
  CHECK(slash->status == 404);
  CHECK(json::parse(slash->body)["device_id"] == "site/7");
  auto bad = cli.Post("/v1/devices/%FF%FE/messages", "x", "text/plain");
  REQUIRE(bad);
  CHECK(bad->status == 400);
  CHECK(!bad->has_header("EXCEPTION_WHAT"));
  CHECK(json::parse(bad->body)["error"].get<std::string>().find("UTF-8") != std::string::npos);
  auto escape = cli.Post("/v1/devices/%zz/messages", "x", "text/plain");
  REQUIRE(escape);
  CHECK(escape->status == 400);
}

TEST_CASE("admin API: the bearer token guards everything but the probes") {
  auto cfg = admin_config();
  cfg.admin.token = "s3cret-token";
  running_gateway g{cfg};
  auto cli = g.http();
  auto h = cli.Get("/healthz");
  REQUIRE(h);
  CHECK(h->status == 200);
  auto r = cli.Get("/readyz");
  REQUIRE(r);
  CHECK(r->status == 200);
  auto m = cli.Get("/metrics");
  REQUIRE(m);
  CHECK(m->status == 401);
  CHECK(m->get_header_value("WWW-Authenticate").starts_with("Bearer"));
  auto wrong = cli.Get("/metrics", {{"Authorization", "Bearer s3cret-tokeX"}});
  REQUIRE(wrong);
  CHECK(wrong->status == 401);
  auto right = cli.Get("/metrics", {{"Authorization", "Bearer s3cret-token"}});
  REQUIRE(right);
  CHECK(right->status == 200);
  CHECK(right->body.find("warren_admin_unauthorized_total 2") != std::string::npos);
}

TEST_CASE("admin API over TLS") {
  auto cfg = admin_config();
  auto dc = gw::ensure_dev_cert(cfg.data_dir);
  cfg.admin.cert_file = dc.cert_file;
  cfg.admin.key_file = (std::filesystem::path{dc.cert_file}.parent_path() / "dev-key.pem").string();
  running_gateway g{cfg};
  httplib::SSLClient cli{"127.0.0.1", g->admin_port()};
  cli.set_ca_cert_path(dc.cert_file.c_str());
  cli.enable_server_certificate_verification(true);
  cli.set_read_timeout(10, 0);
  for (int i = 0; i < 3; ++i) { // keep-alive across parks with the poller
    auto h = cli.Get("/healthz");
    REQUIRE(h);
    CHECK(h->status == 200);
  }
  // Plain HTTP to the TLS port gets no answer.
  httplib::Client plain{"127.0.0.1", g->admin_port()};
  plain.set_read_timeout(3, 0);
  auto p = plain.Get("/healthz");
  CHECK((!p || p->status != 200));
}

TEST_CASE("/readyz: ready when serving, not while draining") {
  auto cfg = admin_config();
  cfg.drain_timeout = 5s;
  running_gateway g{cfg};
  auto cli = g.http();
  auto r = cli.Get("/readyz");
  REQUIRE(r);
  CHECK(r->status == 200);
  device d{g.port()}; // holds the drain open
  d.send("up\n");
  REQUIRE(eventually([&] { return g->registry()->connections() == 1; }));
  std::thread stopper{[&] { g->shutdown(); }};
  bool saw = eventually([&] {
    auto x = cli.Get("/readyz");
    return x && x->status == 503 && json::parse(x->body)["reasons"][0] == "draining";
  });
  CHECK(saw);
  d.close();
  stopper.join();
}
