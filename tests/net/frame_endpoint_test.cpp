// warren::net endpoints speaking codec `frame` on real sockets: DATA -> protocol ->
// PUSH, batched ACKs checked with codec::ack_checker, auto_ack off, PING/PONG,
// PUSH_ACK, protocol errors, and frames over TLS 1.3.
#include "net_support.hpp"

#include <warren/net/codec/frame.hpp>

#include <vector>

using namespace net_test;
namespace codec = warren::net::codec;

namespace {

/// A frame read by the test client (owns its payload).
struct rframe {
  codec::frame_type type{};
  uint64_t id = 0;
  std::string payload;
  codec::frame view() const { return codec::frame{type, id, payload}; }
};

/// The next frame, or nothing on close, error or timeout.
std::optional<rframe> read_frame(client& c, std::chrono::milliseconds timeout = 5000ms) {
  auto h = c.read_exact(codec::frame_header_size, timeout);
  if (!h)
    return std::nullopt;
  auto* p = reinterpret_cast<const unsigned char*>(h->data());
  rframe f;
  f.type = static_cast<codec::frame_type>(p[0]);
  f.id = codec::detail::get_u64be(p + 1);
  auto len = codec::detail::get_u32be(p + 9);
  if (len > 0) {
    auto body = c.read_exact(len, timeout);
    if (!body)
      return std::nullopt;
    f.payload = std::move(*body);
  }
  return f;
}

std::string data_frame(uint64_t id, std::string_view payload) {
  std::string out;
  codec::encode_data(out, id, payload);
  return out;
}

/// What a device sees: PUSHes (checked consecutive from 1), ACKs (checked with
/// ack_checker against the DATA it sent), PONGs.
struct device {
  client& c;
  codec::ack_checker acks;
  std::vector<std::string> pushes;
  std::vector<uint64_t> pongs;
  std::vector<codec::ack_info> ack_frames;
  int violations = 0;

  device(client& cl, uint64_t first_id) : c(cl), acks(first_id) {}

  void send_data(uint64_t id, std::string_view payload) {
    REQUIRE(acks.sent(id) == codec::error_reason::none);
    c.send(data_frame(id, payload));
  }
  /// Several DATA frames in one write.
  void send_burst(uint64_t first, const std::vector<std::string>& payloads) {
    std::string out;
    for (std::size_t i = 0; i < payloads.size(); ++i) {
      REQUIRE(acks.sent(first + i) == codec::error_reason::none);
      codec::encode_data(out, first + i, payloads[i]);
    }
    c.send(out);
  }

  /// Reads one frame and records it; false on close or timeout.
  bool step() {
    auto f = read_frame(c);
    if (!f)
      return false;
    switch (f->type) {
      case codec::frame_type::push:
        if (f->id != pushes.size() + 1)
          ++violations;
        pushes.push_back(f->payload);
        break;
      case codec::frame_type::ack:
        if (acks.check(f->view()) != codec::error_reason::none)
          ++violations;
        ack_frames.push_back({f->id, f->view().ack_skipped()});
        break;
      case codec::frame_type::pong:
        pongs.push_back(f->id);
        break;
      default:
        ++violations;
    }
    return true;
  }

  /// Reads until `done()` holds; false if the connection closed or timed out first.
  template <class P>
  bool until(P done) {
    while (!done())
      if (!step())
        return false;
    return true;
  }

  /// Reads until the server closes (recording everything before).
  bool until_closed() {
    while (step()) {
    }
    return c.wait_closed();
  }
};

net::listener_options frame_opts() {
  net::listener_options o;
  o.codec = net::codec_kind::frame;
  return o;
}

/// Test protocol for codec frame, with auto_ack off:
///   "ack N"    -> ctx.ack(N), then PUSH "acked N"
///   "later"    -> a 20 ms timer, then ctx.ack(frames_in()) and PUSH "timer acked"
///   "register" -> registers the endpoint as "fdev" (a uint64_t N sent to it: ctx.ack(N))
///   "close"    -> ctx.close()
///   anything else -> PUSH "seen <payload> <message_id(seq)>"
/// and on_push_ack -> PUSH "push_acked <seq> <ctx.push_acked()>".
class ack_protocol : public net::protocol {
public:
  void on_frames(net::connection_context& ctx, std::span<const std::string_view> frames) override {
    uint64_t seq = ctx.frames_in() - frames.size();
    for (auto f : frames) {
      ++seq;
      if (f.starts_with("ack ")) {
        auto n = std::stoull(std::string{f.substr(4)});
        ctx.ack(n);
        ctx.send("acked " + std::to_string(n));
      } else if (f == "later") {
        ctx.start_timer(1, 20ms);
      } else if (f == "register") {
        auto self = ctx.self();
        warren::register_name(self->home_system(), "fdev", self);
        ctx.send("registered");
      } else if (f == "close") {
        ctx.close();
      } else {
        ctx.send("seen " + std::string{f} + " " + std::to_string(ctx.message_id(seq)));
      }
    }
  }
  void on_timer(net::connection_context& ctx, uint64_t) override {
    ctx.ack(ctx.frames_in());
    ctx.send("timer acked");
  }
  bool on_message(net::connection_context& ctx, caf::message& msg) override {
    if (!msg.match_elements<uint64_t>())
      return false;
    ctx.ack(msg.get_as<uint64_t>(0));
    return ctx.send("message acked");
  }
  void on_push_ack(net::connection_context& ctx, uint64_t seq) override {
    ctx.send("push_acked " + std::to_string(seq) + " " + std::to_string(ctx.push_acked()));
  }
};

net::protocol_factory ack_factory() {
  return [] { return std::make_unique<ack_protocol>(); };
}

} // namespace

TEST_CASE("frame echo: DATA comes back as PUSH with consecutive ids, ACKs keep the invariant") {
  fixture f{frame_opts(), net::echo_factory()};
  client c{f.port};
  device d{c, 100}; // the first DATA id is the device's choice
  d.send_data(100, "a");
  d.send_data(101, "bb");
  d.send_data(102, "ccc");
  REQUIRE(d.until([&] { return d.pushes.size() == 3 && d.acks.last_acked() == 102; }));
  CHECK(d.pushes == std::vector<std::string>{"a", "bb", "ccc"});
  CHECK(d.violations == 0);
  // A payload larger than a read (16 KiB), split over several writes and reads.
  std::string big(40000, 'z');
  auto frame = data_frame(103, big);
  REQUIRE(d.acks.sent(103) == codec::error_reason::none);
  c.send(frame.substr(0, 5)); // part of a header
  c.send(frame.substr(5, 20000));
  c.send(frame.substr(20005));
  REQUIRE(d.until([&] { return d.pushes.size() == 4 && d.acks.last_acked() == 103; }));
  CHECK(d.pushes.back() == big);
  CHECK(d.violations == 0);
  auto k = f.counters();
  CHECK(k.frames_in == 4);
  CHECK(k.frames_out == 4);
  CHECK(k.acks_out == d.acks.acks());
  CHECK(k.frame_errors == 0);
}

TEST_CASE("ack batching: a burst of DATA gets few ACKs, the last one covering the last id") {
  fixture f{frame_opts(), net::echo_factory()};
  client c{f.port};
  device d{c, 1};
  std::vector<std::string> msgs;
  for (int i = 0; i < 2000; ++i)
    msgs.push_back(std::to_string(i) + "m"); // ("m" + to_string: GCC 12 -Wrestrict false positive)
  d.send_burst(1, msgs);
  REQUIRE(d.until([&] { return d.pushes.size() == 2000 && d.acks.last_acked() == 2000; }));
  CHECK(d.pushes == msgs);
  CHECK(d.violations == 0);
  CHECK(d.ack_frames.back().id == 2000);
  // One ACK per read batch at most (about 30 KiB arrive in a few 16 KiB reads), and
  // never more than one per 5 ms: far fewer ACKs than messages.
  CHECK(d.acks.acks() <= 10);
  CHECK(d.acks.acks() + d.acks.skipped_total() == 2000);
}

TEST_CASE("auto_ack off: no ACK until the protocol acks, from on_frames, a timer or a message") {
  auto o = frame_opts();
  o.auto_ack = false;
  fixture f{o, ack_factory()};
  client c{f.port};
  device d{c, 10};
  d.send_data(10, "a");
  d.send_data(11, "b");
  REQUIRE(d.until([&] { return d.pushes.size() == 2; }));
  CHECK(d.pushes[0] == "seen a 10"); // message_id(seq 1) is the DATA id
  CHECK(d.pushes[1] == "seen b 11");
  // Only seq 1 is acked: had anything acked 11 on its own, the ACK below would be for
  // 11, or a second one would come before "acked 1".
  d.send_data(12, "ack 1");
  REQUIRE(d.until([&] { return d.pushes.size() == 3; }));
  CHECK(d.pushes[2] == "acked 1");
  REQUIRE(d.until([&] { return d.acks.last_acked() == 10; }));
  CHECK(d.ack_frames.size() == 1);
  CHECK(d.ack_frames[0].id == 10);
  CHECK(d.ack_frames[0].skipped == 0);
  // A timer acks everything so far (seq 4 = id 13): skipped 11 and 12.
  d.send_data(13, "later");
  REQUIRE(d.until([&] { return d.acks.last_acked() == 13 && d.pushes.size() == 4; }));
  CHECK(d.pushes[3] == "timer acked");
  CHECK(d.ack_frames.back().id == 13);
  CHECK(d.ack_frames.back().skipped == 2);
  // Another actor (the backend) acks through the endpoint actor.
  d.send_data(14, "register");
  d.send_data(15, "x");
  REQUIRE(d.until([&] { return d.pushes.size() == 6; }));
  CHECK(d.pushes[4] == "registered");
  auto ep = warren::whereis(*f.sys, "fdev");
  REQUIRE(ep);
  caf::anon_send(ep, uint64_t{6}); // seq 6 = id 15
  REQUIRE(d.until([&] { return d.acks.last_acked() == 15 && d.pushes.size() == 7; }));
  CHECK(d.pushes[6] == "message acked");
  CHECK(d.ack_frames.back().skipped == 1);
  // Old or future seqs: ignored / capped at frames_in().
  d.send_data(16, "ack 2");
  REQUIRE(d.until([&] { return d.pushes.size() == 8; }));
  d.send_data(17, "ack 1000"); // acks seq 8 = id 17 (and 16)
  REQUIRE(d.until([&] { return d.acks.last_acked() == 17 && d.pushes.size() == 9; }));
  CHECK(d.violations == 0);
  CHECK(f.counters().acks_out == d.acks.acks());
}

TEST_CASE("PING gets a PONG; PUSH_ACK reaches on_push_ack") {
  auto o = frame_opts();
  o.auto_ack = false;
  fixture f{o, ack_factory()};
  client c{f.port};
  device d{c, 1};
  std::string ping;
  codec::encode_ping(ping, 77);
  c.send(ping);
  REQUIRE(d.until([&] { return d.pongs.size() == 1; }));
  CHECK(d.pongs[0] == 77);
  d.send_data(1, "x");
  d.send_data(2, "y");
  REQUIRE(d.until([&] { return d.pushes.size() == 2; }));
  std::string pa;
  codec::encode_push_ack(pa, 1);
  codec::encode_push_ack(pa, 2); // cumulative: one call for both
  codec::encode_ping(pa, 78);
  c.send(pa);
  REQUIRE(d.until([&] { return d.pushes.size() == 3 && d.pongs.size() == 2; }));
  CHECK(d.pushes[2] == "push_acked 2 2");
  CHECK(d.pongs[1] == 78);
  CHECK(d.violations == 0);
  CHECK(d.ack_frames.empty()); // auto_ack off, nothing acked
  auto k = f.counters();
  CHECK(k.pings_in == 2);
  CHECK(k.pushes_acked == 2);
  CHECK(k.frames_in == 2); // PING/PUSH_ACK are not messages
  // A PUSH_ACK for a PUSH never sent is a protocol error.
  std::string bad;
  codec::encode_push_ack(bad, 99);
  c.send(bad);
  CHECK(d.until_closed());
  CHECK(f.eventually([](const auto& x) { return x.frame_errors == 1 && x.active == 0; }));
}

TEST_CASE("an unknown frame type closes the connection after the earlier frames are answered") {
  fixture f{frame_opts(), net::echo_factory()};
  client c{f.port};
  device d{c, 1};
  std::string out;
  codec::encode_data(out, 1, "a");
  codec::encode_data(out, 2, "b");
  REQUIRE(d.acks.sent(1) == codec::error_reason::none);
  REQUIRE(d.acks.sent(2) == codec::error_reason::none);
  codec::encode_frame(out, 9, 3, "?");
  codec::encode_data(out, 3, "never");
  c.send(out);
  CHECK(d.until_closed());
  CHECK(d.pushes == std::vector<std::string>{"a", "b"});
  CHECK(d.acks.last_acked() == 2); // the last ACK is flushed before the close
  CHECK(d.violations == 0);
  CHECK(f.eventually([](const auto& x) { return x.frame_errors == 1 && x.active == 0; }));
  CHECK(f.counters().frames_in == 2);
}

TEST_CASE("a len over max_frame closes the connection after the earlier frames are answered") {
  auto o = frame_opts();
  o.max_frame = 64;
  fixture f{o, net::echo_factory()};
  client c{f.port};
  device d{c, 5};
  std::string out;
  REQUIRE(d.acks.sent(5) == codec::error_reason::none);
  codec::encode_data(out, 5, std::string(64, 'k')); // at the limit: fine
  codec::encode_data(out, 6, std::string(65, 'k'));
  c.send(out);
  CHECK(d.until_closed());
  CHECK(d.pushes == std::vector<std::string>{std::string(64, 'k')});
  CHECK(d.acks.last_acked() == 5);
  CHECK(d.violations == 0);
  CHECK(f.eventually([](const auto& x) { return x.frame_errors == 1 && x.active == 0; }));
  client e{f.port}; // the listener is fine
  device d2{e, 1};
  d2.send_data(1, "ok");
  CHECK(d2.until([&] { return d2.pushes.size() == 1; }));
}

TEST_CASE("a non-consecutive DATA id closes the connection (id_not_consecutive)") {
  fixture f{frame_opts(), net::echo_factory()};
  client c{f.port};
  device d{c, 7};
  d.send_data(7, "a");
  REQUIRE(d.until([&] { return d.pushes.size() == 1 && d.acks.last_acked() == 7; }));
  d.send_data(8, "b");
  c.send(data_frame(10, "skip")); // 9 is missing
  CHECK(d.until_closed());
  CHECK(d.pushes == std::vector<std::string>{"a", "b"});
  CHECK(d.acks.last_acked() == 8);
  CHECK(d.violations == 0);
  CHECK(f.eventually([](const auto& x) { return x.frame_errors == 1 && x.active == 0; }));
}

TEST_CASE("frames from the gateway's side (ACK, PUSH) sent by a device close the connection") {
  fixture f{frame_opts(), net::echo_factory()};
  client c{f.port};
  device d{c, 1};
  std::string out;
  codec::encode_ack(out, 1, 0);
  c.send(out);
  CHECK(d.until_closed());
  CHECK(f.eventually([](const auto& x) { return x.frame_errors == 1 && x.active == 0; }));
}

TEST_CASE("a closing connection flushes its pending ACK (peer EOF, protocol close, drain)") {
  auto o = frame_opts();
  o.ack_interval = std::chrono::hours(1); // after the first ACK, the next one waits
  SUBCASE("peer EOF") {
    fixture f{o, net::echo_factory()};
    client c{f.port};
    device d{c, 1};
    d.send_data(1, "a");
    REQUIRE(d.until([&] { return d.acks.last_acked() == 1 && d.pushes.size() == 1; }));
    d.send_data(2, "b");
    REQUIRE(d.until([&] { return d.pushes.size() == 2; }));
    c.shutdown_send(); // the server sees EOF and closes gracefully
    CHECK(d.until_closed());
    CHECK(d.acks.last_acked() == 2);
    CHECK(d.violations == 0);
    CHECK(c.close_error() == asio::error::eof);
  }
  SUBCASE("protocol close") {
    o.auto_ack = false;
    fixture f{o, ack_factory()};
    client c{f.port};
    device d{c, 1};
    d.send_data(1, "ack 1");
    REQUIRE(d.until([&] { return d.acks.last_acked() == 1 && d.pushes.size() == 1; }));
    d.send_data(2, "b");
    d.send_data(3, "ack 3");
    REQUIRE(d.until([&] { return d.pushes.size() == 3; }));
    d.send_data(4, "close"); // 4 is not acked: the protocol did not accept it
    CHECK(d.until_closed());
    CHECK(d.acks.last_acked() == 3);
    CHECK(d.violations == 0);
  }
  SUBCASE("drain (the endpoint exits; its loop writes the ACK)") {
    fixture f{o, net::echo_factory()};
    client c{f.port};
    device d{c, 1};
    d.send_data(1, "a");
    REQUIRE(d.until([&] { return d.acks.last_acked() == 1 && d.pushes.size() == 1; }));
    d.send_data(2, "b");
    REQUIRE(d.until([&] { return d.pushes.size() == 2; }));
    auto forced = net::listener::drain(*f.sys, f.id, 0ms);
    REQUIRE(forced);
    CHECK(d.until_closed());
    CHECK(d.acks.last_acked() == 2);
    CHECK(d.violations == 0);
  }
}

TEST_CASE("codec frame over TLS 1.3") {
  auto o = frame_opts();
  o.tls = server_tls();
  fixture f{o, net::echo_factory()};
  client c{f.port, client_tls()};
  REQUIRE(c.handshake());
  device d{c, 1};
  std::vector<std::string> msgs;
  for (int i = 0; i < 200; ++i)
    msgs.push_back(std::string(static_cast<std::size_t>(i) * 7, 'q') + std::to_string(i));
  d.send_burst(1, msgs);
  std::string ping;
  codec::encode_ping(ping, 5);
  c.send(ping);
  REQUIRE(
      d.until([&] { return d.pushes.size() == 200 && d.acks.last_acked() == 200 && d.pongs.size() == 1; }));
  CHECK(d.pushes == msgs);
  CHECK(d.violations == 0);
  CHECK(f.counters().handshake_failures() == 0);
}

TEST_CASE("codec line: ack is a no-op, message_id is the seq, push_acked stays 0") {
  struct line_probe : net::protocol {
    void on_frames(net::connection_context& ctx, std::span<const std::string_view> frames) override {
      uint64_t seq = ctx.frames_in() - frames.size();
      for (std::size_t i = 0; i < frames.size(); ++i) {
        ++seq;
        ctx.ack(seq);
        ctx.send(std::to_string(ctx.message_id(seq)) + " " + std::to_string(ctx.push_acked()) + " " +
                 (ctx.codec() == net::codec_kind::line ? "line" : "frame"));
      }
    }
  };
  fixture f{net::listener_options{}, [] { return std::make_unique<line_probe>(); }};
  client c{f.port};
  c.send("a\nb\n");
  CHECK(c.read_line() == "1 0 line");
  CHECK(c.read_line() == "2 0 line");
  CHECK(f.counters().acks_out == 0);
}
