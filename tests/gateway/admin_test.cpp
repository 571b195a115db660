// The admin API over real HTTP, TLS devices with the development certificate, and
// openssl s_client as an independent client.
#include "gw_support.hpp"
#include <warren_test/skip.hpp>

#include <nlohmann/json.hpp>

#include <cstdio>

using namespace gw_test;
using json = nlohmann::json;

namespace {

gw::config tls_config(std::string backend_kind = "local") {
  auto cfg = test_config(std::move(backend_kind));
  gw::listener_config l;
  l.name = "tls";
  l.tls = true; // no certificate: the development one in data_dir
  l.net.bind_address = "127.0.0.1";
  l.net.port = 0;
  cfg.listeners.push_back(l);
  return cfg;
}

std::shared_ptr<asio::ssl::context> trusting(const std::string& ca_file) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->set_verify_mode(asio::ssl::verify_peer);
  ctx->load_verify_file(ca_file);
  return ctx;
}

std::string run(const std::string& cmd) {
  std::string out;
  if (auto* p = popen(cmd.c_str(), "r")) {
    char buf[512];
    while (auto n = std::fread(buf, 1, sizeof(buf), p))
      out.append(buf, n);
    pclose(p);
  }
  return out;
}

} // namespace

TEST_CASE("admin API: healthz, connections, tree, metrics, send") {
  running_gateway g{tls_config()};
  collector col{g->hub()};
  // A TLS device that verifies the development certificate.
  REQUIRE(!g->dev_cert_file().empty());
  device d{g.port("tls"), trusting(g->dev_cert_file())};
  REQUIRE(d.handshake());
  d.send("up\n");
  REQUIRE(col.wait_for(1));
  auto cli = g.http();

  auto health = cli.Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(json::parse(health->body)["status"] == "ok");

  auto conns = cli.Get("/v1/connections");
  REQUIRE(conns);
  CHECK(conns->status == 200);
  auto list = json::parse(conns->body);
  REQUIRE(list.size() == 1);
  auto c = list[0];
  CHECK(c["connection_id"] == col.snapshot()[0].connection_id);
  CHECK(c["listener"] == "tls");
  CHECK(c["tls_version"] == "TLSv1.3");
  CHECK(c["seq_in"] == 1);
  CHECK(c["peer"].get<std::string>().starts_with("127.0.0.1:"));
  CHECK(c["connected_since_ms"].get<int64_t>() > 0);

  auto post = cli.Post(("/v1/connections/" + c["connection_id"].get<std::string>() + "/messages").c_str(),
                       "hello device", "text/plain");
  REQUIRE(post);
  CHECK(post->status == 202);
  CHECK(d.read_line() == "hello device");
  auto bad = cli.Post(
      ("/v1/connections/" + c["connection_id"].get<std::string>() + "/messages?to_device_seq=x").c_str(), "x",
      "text/plain");
  REQUIRE(bad);
  CHECK(bad->status == 400);
  auto missing = cli.Post("/v1/devices/none/messages", "x", "text/plain");
  REQUIRE(missing);
  CHECK(missing->status == 404);

  auto tree = cli.Get("/v1/tree");
  REQUIRE(tree);
  CHECK(tree->status == 200);
  auto t = json::parse(tree->body);
  CHECK(t["id"] == "warren-gateway");
  CHECK(t["strategy"] == "rest_for_one");
  std::vector<std::string> ids;
  for (auto& child : t["children"])
    ids.push_back(child["id"]);
  for (auto want : {"backend", "listeners", "admin", "metrics"})
    CHECK(std::find(ids.begin(), ids.end(), want) != ids.end());
  CHECK(tree->body.find("\"producer\"") != std::string::npos);
  CHECK(tree->body.find("\"tls\"") != std::string::npos);
  CHECK(tree->body.find("\"plain\"") != std::string::npos);

  auto metrics = cli.Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->status == 200);
  CHECK(metrics->body.find("warren_gateway_sessions 1\n") != std::string::npos);
  CHECK(metrics->body.find("warren_gateway_messages_in_total 1\n") != std::string::npos);
  CHECK(metrics->body.find("warren_gateway_messages_out_total 1\n") != std::string::npos);
  CHECK(metrics->body.find("warren_gateway_undeliverable_total 1\n") != std::string::npos);
  CHECK(metrics->body.find("warren_listener_accepted_total{listener=\"tls\"} 1\n") != std::string::npos);
}

TEST_CASE("admin API: a message the device's connection cannot carry is 422, and the connection stays") {
  auto cfg = test_config();
  cfg.listeners[0].session.identify = gw::identify_mode::first_message;
  running_gateway g{std::move(cfg)};
  device d{g.port()};
  d.send("line-dev\n");
  REQUIRE(eventually([&] { return g->registry()->devices() == 1; }));
  auto cli = g.http();
  auto max_frame = g->cfg().listeners[0].net.max_frame;
  for (auto& [what, body] : std::vector<std::pair<std::string, std::string>>{
           {"a line with LF", "two\nlines"}, {"over max_frame", std::string(max_frame + 1, 'x')}}) {
    INFO(what);
    auto res = cli.Post("/v1/devices/line-dev/messages", body, "application/octet-stream");
    REQUIRE(res);
    CHECK(res->status == 422);
    CHECK(json::parse(res->body)["error"].get<std::string>().find("cannot be encoded") != std::string::npos);
  }
  // Exactly max_frame still goes, on the same connection.
  auto ok =
      cli.Post("/v1/devices/line-dev/messages", std::string(max_frame, 'y'), "application/octet-stream");
  REQUIRE(ok);
  CHECK(ok->status == 202);
  CHECK(d.read_line() == std::string(max_frame, 'y'));
  CHECK(g->metrics()->undeliverable.load() == 2);
}

TEST_CASE("openssl s_client connects with the development certificate and a message flows") {
  if (std::system("command -v openssl >/dev/null 2>&1") != 0)
    WARREN_TEST_SKIP("no openssl binary on PATH (scripts/setup installs openssl)");
  running_gateway g{tls_config("echo")};
  auto cmd = "(echo hello-from-s_client; sleep 2) | timeout 20 openssl s_client -brief -verify_return_error "
             "-connect 127.0.0.1:" +
             std::to_string(g.port("tls")) + " -CAfile " + g->dev_cert_file() + " 2>&1";
  auto out = run(cmd);
  INFO(out);
  CHECK(out.find("Verification: OK") != std::string::npos);
  CHECK(out.find("\nhello-from-s_client\n") != std::string::npos); // echoed by the gateway
}
