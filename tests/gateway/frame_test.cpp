// codec frame: DATA ids travel as message_id, ACKs follow the backend's acceptance,
// backend messages go out as PUSH frames.
#include "gw_support.hpp"

using namespace gw_test;
using net::codec::frame_type;

namespace {

/// codec frame, and the first DATA is the device id.
gw::config frame_first_message_config() {
  auto cfg = test_config();
  cfg.listeners[0].net.codec = net::codec_kind::frame;
  cfg.listeners[0].session.identify = gw::identify_mode::first_message;
  return cfg;
}

} // namespace

TEST_CASE("codec frame: message ids, ACK after acceptance, PUSH out") {
  running_gateway g{frame_first_message_config()};
  collector col{g->hub()};
  device d{g.port()};
  std::string burst = data_frame(100, "meter-3");
  for (uint64_t id = 101; id <= 110; ++id)
    burst += data_frame(id, "reading " + std::to_string(id));
  d.send(burst);
  REQUIRE(col.wait_for(10));
  auto got = col.snapshot();
  for (std::size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i].device_id == "meter-3");
    CHECK(got[i].from_device_seq == i + 1);
    REQUIRE(got[i].message_id);
    CHECK(*got[i].message_id == 101 + i);
  }
  // ACKs are cumulative: wait until the last DATA id is acknowledged.
  uint64_t acked = 0;
  while (acked < 110) {
    auto f = d.read_frame();
    REQUIRE(f);
    REQUIRE(f->type == frame_type::ack);
    CHECK(f->id > acked);
    acked = f->id;
  }
  auto cli = g.http();
  auto res =
      cli.Post("/v1/devices/meter-3/messages", std::string{"\x01\x02\n\x03", 4}, "application/octet-stream");
  REQUIRE(res);
  CHECK(res->status == 202);
  auto push = d.read_frame();
  REQUIRE(push);
  CHECK(push->type == frame_type::push);
  CHECK(push->id == 1);
  CHECK(push->payload == std::string{"\x01\x02\n\x03", 4});
}

TEST_CASE("codec frame, identify = first_message: an empty or binary first DATA is no device id") {
  running_gateway g{frame_first_message_config()};
  collector col{g->hub()};
  const std::string bad[] = {std::string{}, std::string{"dev\0-1", 6}, std::string{"\xc2\x85"}};
  uint64_t failures = 0;
  for (auto& first : bad) {
    device d{g.port()};
    d.send(data_frame(1, first) + data_frame(2, "reading"));
    CHECK(d.wait_closed());
    ++failures;
    CHECK(eventually([&] { return g->metrics()->identify_failures.load() == failures; }));
  }
  CHECK(eventually([&] { return g.sessions().empty(); }));
  CHECK(col.snapshot().empty());
}
