// Device sessions end to end, in process: real sockets, the local and echo backends,
// the admin API over HTTP.
#include "gw_support.hpp"

#include <warren/registry.hpp>

using namespace gw_test;

namespace {

gw::config first_message_config(caf::timespan gap = 1s) {
  auto cfg = test_config();
  cfg.listeners[0].session.identify = gw::identify_mode::first_message;
  cfg.listeners[0].session.gap_timeout = gap;
  return cfg;
}

int post(running_gateway& g, const std::string& path, const std::string& body) {
  auto cli = g.http();
  auto res = cli.Post(path.c_str(), body, "application/octet-stream");
  return res ? res->status : -1;
}

} // namespace

TEST_CASE("device messages reach local subscribers in order, with their headers") {
  running_gateway g{test_config()};
  collector col{g->hub()};
  device d{g.port()};
  std::string burst;
  for (int i = 1; i <= 200; ++i)
    burst += "m" + std::to_string(i) + "\n";
  d.send(burst);
  REQUIRE(col.wait_for(200));
  auto got = col.snapshot();
  auto sessions = g.sessions();
  REQUIRE(sessions.size() == 1);
  auto conn_id = sessions[0].connection_id;
  CHECK(conn_id.size() == 36);
  CHECK(conn_id[14] == '4'); // UUID version 4
  for (std::size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i].connection_id == conn_id);
    CHECK(got[i].device_id.empty()); // identify = cert, plain TCP: no device id
    CHECK(got[i].from_device_seq == i + 1);
    CHECK(!got[i].message_id);
    CHECK(got[i].payload == "m" + std::to_string(i + 1));
  }
  CHECK(eventually([&] { return g->metrics()->backend_accepted.load() == 200; }));
  CHECK(eventually([&] { return g.sessions().at(0).seq_in == 200; }));
}

TEST_CASE("backend messages reach the device in order, by connection and by device id") {
  running_gateway g{first_message_config()};
  collector col{g->hub()};
  device d{g.port()};
  d.send("sensor-7\nhello\n");
  REQUIRE(col.wait_for(1));
  auto m = col.snapshot().at(0);
  CHECK(m.device_id == "sensor-7");
  CHECK(m.from_device_seq == 1); // the id line is not a message
  CHECK(m.payload == "hello");
  for (int i = 1; i <= 20; ++i)
    REQUIRE(post(g, "/v1/devices/sensor-7/messages?to_device_seq=" + std::to_string(i),
                 "d" + std::to_string(i)) == 202);
  for (int i = 1; i <= 20; ++i)
    REQUIRE(d.read_line() == "d" + std::to_string(i));
  CHECK(post(g, "/v1/connections/" + m.connection_id + "/messages", "by-conn") == 202);
  CHECK(d.read_line() == "by-conn");
  CHECK(g.sessions().at(0).seq_out == 21);
  CHECK(g->metrics()->messages_out.load() == 21);
}

TEST_CASE("a reconnecting device takes over its device id; the stale session is closed") {
  running_gateway g{first_message_config()};
  device a{g.port()};
  a.send("dev-1\n");
  REQUIRE(eventually([&] { return g->registry()->find(backend::address_kind::device, "dev-1") != nullptr; }));
  auto old = g->registry()->find(backend::address_kind::device, "dev-1");
  device b{g.port()};
  b.send("dev-1\n");
  CHECK(a.wait_closed());
  REQUIRE(eventually([&] {
    auto s = g->registry()->find(backend::address_kind::device, "dev-1");
    return s && s != old && g.sessions().size() == 1;
  }));
  CHECK(post(g, "/v1/devices/dev-1/messages", "to the new one") == 202);
  CHECK(b.read_line() == "to the new one");
  CHECK(g->metrics()->takeovers.load() == 1);
  CHECK(g->registry()->devices() == 1);
}

TEST_CASE("a message for an absent device is refused (404) and counted") {
  running_gateway g{first_message_config()};
  CHECK(post(g, "/v1/devices/nobody/messages", "x") == 404);
  CHECK(post(g, "/v1/connections/00000000-0000-4000-8000-000000000000/messages", "x") == 404);
  CHECK(g->metrics()->undeliverable.load() == 2);
  // Gone after a disconnect, too.
  {
    device d{g.port()};
    d.send("ghost\n");
    REQUIRE(eventually([&] { return g->registry()->devices() == 1; }));
    d.close();
  }
  REQUIRE(eventually([&] { return g->registry()->devices() == 0 && g.sessions().empty(); }));
  CHECK(post(g, "/v1/devices/ghost/messages", "x") == 404);
  CHECK(g->metrics()->undeliverable.load() == 3);
}

TEST_CASE("to_device_seq: out-of-order messages are reordered; a gap is skipped after gap_timeout") {
  running_gateway g{first_message_config(150ms)};
  device d{g.port()};
  d.send("dev-9\n");
  REQUIRE(eventually([&] { return g->registry()->devices() == 1; }));
  auto path = [](int seq) { return "/v1/devices/dev-9/messages?to_device_seq=" + std::to_string(seq); };
  // 3, 2, 1: held until 1 arrives, then delivered in order.
  CHECK(post(g, path(3), "three") == 202);
  CHECK(post(g, path(2), "two") == 202);
  CHECK(post(g, path(1), "one") == 202);
  CHECK(d.read_line() == "one");
  CHECK(d.read_line() == "two");
  CHECK(d.read_line() == "three");
  CHECK(g->metrics()->gap_skips.load() == 0);
  // 4 never comes: 5 waits gap_timeout, then goes.
  CHECK(post(g, path(5), "five") == 202);
  CHECK(d.read_line() == "five");
  CHECK(g->metrics()->gap_skips.load() == 1);
  CHECK(post(g, path(6), "six") == 202);
  CHECK(d.read_line() == "six");
  // Without to_device_seq: at once.
  CHECK(post(g, "/v1/devices/dev-9/messages", "now") == 202);
  CHECK(d.read_line() == "now");
}

TEST_CASE("an endpoint killed mid-stream leaves the others untouched; its entries are gone") {
  running_gateway g{first_message_config()};
  g->cfg();
  device a{g.port()};
  device b{g.port()};
  a.send("dev-a\n");
  b.send("dev-b\n");
  REQUIRE(eventually([&] { return g->registry()->devices() == 2; }));
  for (int i = 0; i < 50; ++i) {
    REQUIRE(post(g, "/v1/devices/dev-a/messages", "a" + std::to_string(i)) == 202);
    REQUIRE(post(g, "/v1/devices/dev-b/messages", "b" + std::to_string(i)) == 202);
  }
  auto victim = g->registry()->find(backend::address_kind::device, "dev-a");
  REQUIRE(victim);
  caf::anon_send_exit(victim, caf::exit_reason::kill);
  victim = nullptr;
  CHECK(a.wait_closed());
  REQUIRE(eventually([&] { return g->registry()->devices() == 1 && g.sessions().size() == 1; }));
  CHECK(g->registry()->find(backend::address_kind::device, "dev-a") == nullptr);
  for (int i = 0; i < 50; ++i)
    REQUIRE(b.read_line() == "b" + std::to_string(i));
  CHECK(post(g, "/v1/devices/dev-b/messages", "still here") == 202);
  CHECK(b.read_line() == "still here");
  CHECK(post(g, "/v1/devices/dev-a/messages", "x") == 404);
}

TEST_CASE("echo backend: device messages come back through the registry") {
  running_gateway g{test_config("echo")};
  device d{g.port()};
  std::string burst;
  for (int i = 0; i < 1000; ++i)
    burst += "e" + std::to_string(i) + "\n";
  d.send(burst);
  for (int i = 0; i < 1000; ++i)
    REQUIRE(d.read_line() == "e" + std::to_string(i));
}
