// Replies at close: when the peer's input ends in the same read as good messages (a
// frame error after them, a half-close, TLS without close_notify), the ACKs and
// replies for what a backend accepts afterwards still leave before the close, bounded
// by close_timeout. The "backend" is a protocol timer: it accepts (acks) everything
// 100 ms after it came, long after the endpoint read the end of the input.
#include "net_support.hpp"

#include <warren/net/codec/frame.hpp>

#include <vector>

using namespace net_test;
namespace codec = warren::net::codec;

namespace {

/// auto_ack off: each batch is "published"; `delay` later its messages are acked and
/// answered with "accepted <payload>" (the echo of a backend that accepted them).
class late_backend_protocol : public net::protocol {
public:
  explicit late_backend_protocol(caf::timespan delay) : delay_(delay) {}
  void on_frames(net::connection_context& ctx, std::span<const std::string_view> frames) override {
    for (auto f : frames)
      waiting_.emplace_back(f);
    ctx.start_timer(ctx.frames_in(), delay_);
  }
  void on_timer(net::connection_context& ctx, uint64_t seq) override {
    while (answered_ < seq) {
      ctx.send("accepted " + waiting_[answered_]);
      ++answered_;
    }
    ctx.ack(seq);
  }

private:
  caf::timespan delay_;
  std::vector<std::string> waiting_;
  uint64_t answered_ = 0;
};

net::protocol_factory late_backend(caf::timespan delay = 100ms) {
  return [delay] { return std::make_unique<late_backend_protocol>(delay); };
}

net::listener_options late_opts(net::codec_kind codec) {
  net::listener_options o;
  o.codec = codec;
  o.auto_ack = false;
  return o;
}

std::string data_frame(uint64_t id, std::string_view payload) {
  std::string out;
  codec::encode_data(out, id, payload);
  return out;
}

struct seen {
  std::vector<std::string> pushes;
  uint64_t last_ack = 0;
};

/// codec frame: reads PUSHes and ACKs until the server closes.
seen read_frames_until_closed(client& c) {
  seen s;
  for (;;) {
    auto h = c.read_exact(codec::frame_header_size);
    if (!h)
      break;
    auto* p = reinterpret_cast<const unsigned char*>(h->data());
    auto type = static_cast<codec::frame_type>(p[0]);
    auto id = codec::detail::get_u64be(p + 1);
    auto len = codec::detail::get_u32be(p + 9);
    std::string body;
    if (len > 0) {
      auto b = c.read_exact(len);
      if (!b)
        break;
      body = std::move(*b);
    }
    if (type == codec::frame_type::push)
      s.pushes.push_back(body);
    else if (type == codec::frame_type::ack)
      s.last_ack = id;
  }
  return s;
}

const std::vector<std::string> three = {"accepted a", "accepted b", "accepted c"};

} // namespace

TEST_CASE("a frame error after three DATA frames: their ACK and replies leave before the close") {
  fixture f{late_opts(net::codec_kind::frame), late_backend()};
  client c{f.port};
  std::string burst = data_frame(7, "a") + data_frame(8, "b") + data_frame(9, "c");
  codec::encode_frame(burst, 0x7f, 1, {}); // an unknown frame type, in the same write
  c.send(burst);
  auto s = read_frames_until_closed(c);
  CHECK(s.pushes == three);
  CHECK(s.last_ack == 9);
  CHECK(c.wait_closed());
  auto k = f.counters();
  CHECK(k.frame_errors == 1);
  CHECK(k.close_timeouts == 0);
}

TEST_CASE("a half-close with messages in flight: their ACK and replies leave, then the close") {
  fixture f{late_opts(net::codec_kind::frame), late_backend()};
  client c{f.port};
  c.send(data_frame(1, "a") + data_frame(2, "b") + data_frame(3, "c"));
  c.shutdown_send(); // FIN: the device is done sending and still reads
  auto s = read_frames_until_closed(c);
  CHECK(s.pushes == three);
  CHECK(s.last_ack == 3);
  CHECK(c.wait_closed());
  CHECK(c.close_error() == asio::error::eof);
}

TEST_CASE("TLS without close_notify (a TCP FIN) with lines in flight: the replies leave, then close_notify") {
  auto o = late_opts(net::codec_kind::line);
  o.tls = server_tls();
  fixture f{o, late_backend()};
  client c{f.port, client_tls()};
  REQUIRE(c.handshake());
  c.send("a\nb\nc\n");
  c.shutdown_send(); // truncation: read as the end of the input
  for (auto& want : three)
    CHECK(c.read_line() == want);
  CHECK(c.wait_closed());
  CHECK(c.close_error() == asio::error::eof); // the server's close_notify
}

TEST_CASE("close_timeout bounds the wait for a backend that never accepts") {
  auto o = late_opts(net::codec_kind::line);
  o.close_timeout = 100ms;
  fixture f{o, late_backend(60s)}; // accepts long after the close_timeout
  client c{f.port};
  c.send("a\nb\n");
  c.shutdown_send();
  CHECK(c.wait_closed());
  CHECK_FALSE(c.read_line()); // no reply came before the close
  CHECK(f.eventually([](const auto& k) { return k.close_timeouts == 1 && k.active == 0; }));
}
