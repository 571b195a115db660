// Device sessions end to end, in process: real sockets, the local and echo backends,
// the admin API over HTTP.
#include "../net/raw_socket.hpp"
#include "gw_support.hpp"

#include <warren/backend/control.hpp>
#include <warren/registry.hpp>

#include <atomic>
#include <cstdio>

using namespace gw_test;

namespace {

using accept_all_atom = caf::atom_constant<caf::atom("taccall")>;

/// What the withholding producer received, checked as it comes.
struct withheld {
  std::atomic<uint64_t> received{0}; ///< device messages
  std::atomic<bool> out_of_order{false};
};

constexpr std::size_t line_len = 100; // with the LF

/// Line `i`: its number in 8 digits, padding, LF.
std::string make_line(uint64_t i) {
  char num[32];
  std::snprintf(num, sizeof num, "%08llu", static_cast<unsigned long long>(i));
  std::string s{num};
  s.append(line_len - s.size() - 1, 'y');
  s += '\n';
  return s;
}

/// A producer that records the batches and accepts nothing until accept_all_atom;
/// then it accepts what it has and every later batch at once. Expects one session.
caf::behavior withholding_producer(caf::event_based_actor* self, std::shared_ptr<withheld> st) {
  struct state {
    caf::actor session;
    uint64_t last = 0;
    bool accepting = false;
  };
  auto s = std::make_shared<state>();
  return {
      [=](backend::publish_atom, const backend::device_batch& batch) {
        for (auto m : batch) {
          auto i = st->received.load();
          if (m.from_device_seq != i + 1 || m.payload != make_line(i).substr(0, line_len - 1))
            st->out_of_order = true;
          st->received = i + 1;
        }
        s->session = caf::actor_cast<caf::actor>(self->current_sender());
        s->last = batch.empty() ? s->last : batch.last_seq();
        if (s->accepting)
          self->send(s->session, backend::accepted_atom::value, s->last);
      },
      [=](accept_all_atom) {
        s->accepting = true;
        if (s->session)
          self->send(s->session, backend::accepted_atom::value, s->last);
      },
      [](backend::flush_atom) { return caf::unit; },
  };
}

/// Numbered lines written through non-blocking writes, in order.
struct flooder {
  uint64_t next = 0; ///< first line not yet taken into `out`
  std::string out;
  std::size_t off = 0;
  std::size_t written = 0; ///< bytes

  uint64_t complete() const { return written / line_len; }

  /// Writes until the socket stays unwritable for `stall` (true), or `limit` lines
  /// were written, or an error (false).
  bool write_until_stalled(net_test::raw_socket& s, uint64_t limit, std::chrono::milliseconds stall) {
    for (;;) {
      if (off == out.size()) {
        if (next >= limit)
          return false;
        out.clear();
        off = 0;
        for (int i = 0; i < 256 && next < limit; ++i)
          out += make_line(next++);
      }
      auto n = s.try_write(std::string_view{out}.substr(off));
      if (n < 0)
        return false;
      if (n == 0) {
        if (!s.wait_writable(stall))
          return true;
        continue;
      }
      off += static_cast<std::size_t>(n);
      written += static_cast<std::size_t>(n);
    }
  }
};

gw::config first_message_config(caf::timespan gap = 1s) {
  auto cfg = test_config();
  cfg.listeners[0].session.identify = gw::identify_mode::first_message;
  cfg.listeners[0].session.gap_timeout = gap;
  return cfg;
}

/// Connects a device whose first line is `first`, no device id: the connection is
/// closed and identify_failures reaches `failures`.
void refuse_first_line(running_gateway& g, const std::string& first, uint64_t failures) {
  INFO("first line: " << first);
  device d{g.port()};
  d.send(first + "\nafter\n");
  CHECK(d.wait_closed());
  CHECK(eventually([&] { return g->metrics()->identify_failures.load() == failures; }));
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

TEST_CASE("identify = first_message: a first line that is no device id closes the connection") {
  running_gateway g{first_message_config()};
  collector col{g->hub()};
  // A terminal escape, a right-to-left override, invalid UTF-8: the same rules as a
  // certificate CN (net/identity.hpp). Nothing of theirs is published. (An empty line
  // is no line for the line codec: the next one would be the id.)
  const std::string bad[] = {"\x1b[2Jdev",
                             "dev-\xe2\x80\xae"
                             "1-ved",
                             "dev-\xff"};
  uint64_t failures = 0;
  for (auto& first : bad)
    refuse_first_line(g, first, ++failures);
  CHECK(eventually([&] { return g.sessions().empty(); }));
  CHECK(g->registry()->devices() == 0);
  // A non-ASCII id is fine.
  device ok{g.port()};
  ok.send("capteur-\xc3\xa9t\xc3\xa9\nhello\n");
  REQUIRE(col.wait_for(1));
  auto got = col.snapshot();
  REQUIRE(got.size() == 1); // the refused connections published nothing
  CHECK(got[0].device_id == "capteur-\xc3\xa9t\xc3\xa9");
  CHECK(got[0].payload == "hello");
  CHECK(g->metrics()->identify_failures.load() == failures);
}

TEST_CASE("identity_profile = strict: only ASCII letters, digits and -_.: are device ids") {
  auto cfg = first_message_config();
  cfg.listeners[0].session.identity_profile = warren::net::identity_profile::strict;
  running_gateway g{cfg};
  collector col{g->hub()};
  // Fine under the unicode profile, refused here: a look-alike (Cyrillic е), a space, a slash.
  const std::string bad[] = {"d\xd0\xb5v-1", "dev 1", "dev/1"};
  uint64_t failures = 0;
  for (auto& first : bad)
    refuse_first_line(g, first, ++failures);
  device ok{g.port()};
  ok.send("Dev-1_a.b:c\nhello\n");
  REQUIRE(col.wait_for(1));
  auto got = col.snapshot();
  REQUIRE(got.size() == 1); // the refused connections published nothing
  CHECK(got[0].device_id == "Dev-1_a.b:c");
  CHECK(g->metrics()->identify_failures.load() == failures);
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

TEST_CASE("to_device_seq: out-of-order messages are held and delivered in order") {
  // A gap_timeout no test run reaches: the order below depends on events only.
  running_gateway g{first_message_config(10min)};
  device d{g.port()};
  d.send("dev-9\n");
  REQUIRE(eventually([&] { return g->registry()->devices() == 1; }));
  auto path = [](int seq) { return "/v1/devices/dev-9/messages?to_device_seq=" + std::to_string(seq); };
  // 3, 2, 1: held until 1 arrives, then delivered in order.
  CHECK(post(g, path(3), "three") == 202);
  CHECK(post(g, path(2), "two") == 202);
  CHECK(eventually([&] { return g->metrics()->reordered.load() == 2; })); // both held
  CHECK(post(g, path(1), "one") == 202);
  CHECK(d.read_line() == "one");
  CHECK(d.read_line() == "two");
  CHECK(d.read_line() == "three");
  CHECK(g->metrics()->gap_skips.load() == 0);
  // Without to_device_seq: at once.
  CHECK(post(g, "/v1/devices/dev-9/messages", "now") == 202);
  CHECK(d.read_line() == "now");
}

TEST_CASE("to_device_seq: a gap is skipped after gap_timeout, then delivery goes on in order") {
  running_gateway g{first_message_config(150ms)};
  device d{g.port()};
  d.send("dev-9\n");
  REQUIRE(eventually([&] { return g->registry()->devices() == 1; }));
  auto path = [](int seq) { return "/v1/devices/dev-9/messages?to_device_seq=" + std::to_string(seq); };
  // In order: nothing waits, however slow the machine.
  CHECK(post(g, path(1), "one") == 202);
  CHECK(post(g, path(2), "two") == 202);
  CHECK(d.read_line() == "one");
  CHECK(d.read_line() == "two");
  // 3 never comes: 4 waits gap_timeout, then goes; 5 follows at once.
  CHECK(post(g, path(4), "four") == 202);
  CHECK(d.read_line() == "four");
  CHECK(g->metrics()->gap_skips.load() == 1);
  CHECK(post(g, path(5), "five") == 202);
  CHECK(d.read_line() == "five");
  CHECK(g->metrics()->gap_skips.load() == 1);
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

TEST_CASE("echo backend: many batches over several connections, both codecs, in order, none lost") {
  // One producer per scheduler thread (4 here); every publish comes back as one batch
  // with its acceptance (codec frame: the ACKs prove the acceptance arrived).
  auto cfg = test_config("echo");
  auto framed = cfg.listeners[0];
  framed.name = "framed";
  framed.net.codec = net::codec_kind::frame;
  cfg.listeners.push_back(framed);
  running_gateway g{cfg};
  for (std::size_t i = 0; i < 4; ++i)
    CHECK(warren::whereis(g->system(), backend::producer_name_at("warren.backend.producer", i)));
  constexpr int conns = 6;   // per codec
  constexpr int bursts = 20; // writes per connection, interleaved over the connections
  constexpr int per_burst = 150;
  constexpr uint64_t per_conn = bursts * per_burst;
  std::vector<std::unique_ptr<device>> lines, frames;
  for (int c = 0; c < conns; ++c) {
    lines.push_back(std::make_unique<device>(g.port("plain")));
    frames.push_back(std::make_unique<device>(g.port("framed")));
  }
  auto payload = [](int c, uint64_t i) { return "c" + std::to_string(c) + "-" + std::to_string(i); };
  std::vector<uint64_t> line_read(conns, 0), push_read(conns, 0), acked(conns, 0);
  // Reads connection c's echoes up to message `upto` (both codecs) and, codec frame,
  // until the ACKs reach `ack_upto`, checking the order.
  auto drain = [&](int c, uint64_t upto, uint64_t ack_upto) {
    auto& l = *lines[c];
    while (line_read[c] < upto) {
      auto got = l.read_line();
      REQUIRE(got);
      REQUIRE(*got == payload(c, line_read[c]));
      ++line_read[c];
    }
    auto& f = *frames[c];
    while (push_read[c] < upto || acked[c] < ack_upto) {
      auto got = f.read_frame();
      REQUIRE(got);
      if (got->type == net::codec::frame_type::ack) {
        CHECK(got->id > acked[c]);
        acked[c] = got->id;
        continue;
      }
      REQUIRE(got->type == net::codec::frame_type::push);
      REQUIRE(got->id == push_read[c] + 1); // PUSH ids: to-device seq, consecutive
      REQUIRE(got->payload == payload(c, push_read[c]));
      ++push_read[c];
    }
  };
  // Every round: a burst on each connection (several reads, so several batches, in
  // flight at once over the connections), then the echoes of all of them.
  for (int b = 0; b < bursts; ++b) {
    for (int c = 0; c < conns; ++c) {
      std::string line_burst, frame_burst;
      for (int k = 0; k < per_burst; ++k) {
        uint64_t i = static_cast<uint64_t>(b) * per_burst + k;
        line_burst += payload(c, i) + "\n";
        frame_burst += data_frame(i + 1, payload(c, i));
      }
      lines[c]->send(line_burst);
      frames[c]->send(frame_burst);
    }
    for (int c = 0; c < conns; ++c)
      drain(c, static_cast<uint64_t>(b + 1) * per_burst, 0);
  }
  for (int c = 0; c < conns; ++c)
    drain(c, per_conn, per_conn);
  for (int c = 0; c < conns; ++c) {
    CHECK(line_read[c] == per_conn);
    CHECK(push_read[c] == per_conn);
    CHECK(acked[c] == per_conn); // the acceptance folded into the batches arrived
  }
  const uint64_t total = 2 * conns * per_conn;
  auto m = g->metrics();
  CHECK(eventually([&] { return m->messages_out.load() == total; }));
  CHECK(m->messages_in.load() == total);
  CHECK(m->backend_accepted.load() == total);
  CHECK(m->undeliverable.load() == 0);
  for (auto& v : g.sessions())
    CHECK(v.seq_out == per_conn);
}

TEST_CASE("a one-way batch delivery keeps to_device_seq order within and across batches") {
  running_gateway g{first_message_config(10min)}; // a gap_timeout no run reaches
  device d{g.port()};
  d.send("dev-b\n");
  REQUIRE(eventually([&] { return g->registry()->devices() == 1; }));
  auto session = g->registry()->find(backend::address_kind::device, "dev-b");
  REQUIRE(session);
  auto msg = [](std::optional<uint64_t> seq, std::string payload) {
    return backend::to_device_message{backend::address_kind::device, {}, seq, std::move(payload)};
  };
  std::vector<backend::to_device_message> first{msg(3, "three"), msg(std::nullopt, "now"), msg(2, "two"),
                                                msg(1, "one"), msg(5, "five")};
  caf::anon_send(session, backend::deliver_atom::value, std::move(first));
  // 3 and 2 wait for 1; "now" has no seq and goes at once; 5 waits for 4.
  CHECK(d.read_line() == "now");
  CHECK(d.read_line() == "one");
  CHECK(d.read_line() == "two");
  CHECK(d.read_line() == "three");
  CHECK(eventually([&] { return g->metrics()->reordered.load() == 3; }));
  std::vector<backend::to_device_message> second{msg(4, "four"), msg(6, "six"), msg(2, "two again")};
  caf::anon_send(session, backend::deliver_atom::value, std::move(second));
  CHECK(d.read_line() == "four");
  CHECK(d.read_line() == "five");
  CHECK(d.read_line() == "six");
  CHECK(d.read_line() == "two again"); // below the expected seq: at once (at least once)
  CHECK(g->metrics()->gap_skips.load() == 0);
  CHECK(eventually([&] { return g->metrics()->messages_out.load() == 8; }));
  CHECK(g.sessions().at(0).seq_out == 8);
  // The request/reply path is unchanged and continues the same order.
  CHECK(post(g, "/v1/devices/dev-b/messages?to_device_seq=7", "seven") == 202);
  CHECK(d.read_line() == "seven");
}

TEST_CASE(
    "a device batch sent back one-way (the echo's form): its payloads in order, outside to_device_seq") {
  running_gateway g{first_message_config(10min)};
  device d{g.port()};
  d.send("dev-e\n");
  REQUIRE(eventually([&] { return g->registry()->devices() == 1; }));
  auto session = g->registry()->find(backend::address_kind::device, "dev-e");
  REQUIRE(session);
  // Any connection id: the session was found already and does not read it.
  backend::device_batch::builder b{"elsewhere", "dev-e", 4};
  b.add(1, std::nullopt, "first")
      .add(2, 7, "")
      .add(3, std::nullopt, "not\na line")
      .add(4, std::nullopt, "last");
  caf::anon_send(session, backend::deliver_atom::value, std::move(b).done());
  CHECK(d.read_line() == "first");
  CHECK(d.read_line() == "");
  CHECK(d.read_line() == "last"); // the line with LF cannot be encoded: refused, counted
  CHECK(eventually([&] { return g->metrics()->undeliverable.load() == 1; }));
  CHECK(eventually([&] { return g->metrics()->messages_out.load() == 3; }));
  // No to_device_seq was taken: the device's first ordered message is still 1.
  CHECK(post(g, "/v1/devices/dev-e/messages?to_device_seq=1", "one") == 202);
  CHECK(d.read_line() == "one");
  CHECK(g->metrics()->reordered.load() == 0);
}

TEST_CASE("a backend that withholds acceptance: the session stops reading past max_unaccepted, "
          "then everything flows in order") {
  auto cfg = test_config();
  cfg.listeners[0].session.max_unaccepted = 200;
  const auto read_buffer = cfg.listeners[0].net.read_buffer;
  running_gateway g{cfg};
  auto& sys = g->system();
  const std::string name = "warren.backend.producer";
  // The test producer takes the producer's name; the real one gets it back at the end.
  auto real = warren::whereis(sys, name);
  REQUIRE(real);
  auto st = std::make_shared<withheld>();
  auto prod = sys.spawn(withholding_producer, st);
  struct restore {
    caf::actor_system& sys;
    const std::string& name;
    caf::actor real, prod;
    ~restore() {
      warren::unregister_name(sys, name);
      warren::register_name(sys, name, real);
      caf::anon_send_exit(prod, caf::exit_reason::user_shutdown);
    }
  } guard{sys, name, real, prod};
  REQUIRE(!warren::unregister_name(sys, name));
  REQUIRE(!warren::register_name(sys, name, prod));

  net_test::raw_socket s;
  REQUIRE(s.connect(g.port()));
  flooder w;
  // The device floods; nothing is accepted: the session reads past max_unaccepted,
  // holds reading, and the device's writes block once the kernel buffers are full.
  // (The limit, far above those buffers, keeps a broken hold from writing forever.)
  REQUIRE(w.write_until_stalled(s, 300'000, 500ms));
  REQUIRE(eventually([&] { return g->metrics()->reads_held.load() >= 1; }));
  REQUIRE(eventually([&] {
    auto xs = g.sessions();
    return xs.size() == 1 && xs[0].seq_in == st->received.load();
  }));
  auto got = st->received.load();
  MESSAGE("device wrote " << w.written << " bytes before blocking; the session published " << got
                          << " messages and held");
  // At most max_unaccepted plus the batch that crossed it (one read buffer of lines).
  CHECK(got > 200);
  CHECK(got <= 200 + read_buffer / line_len + 1);
  CHECK(g->metrics()->backend_accepted.load() == 0);
  CHECK(g->metrics()->reads_held.load() == 1);

  // The producer accepts: the session reads on; everything written, and 5000 more
  // lines, reach the producer in order, none lost.
  caf::anon_send(prod, accept_all_atom::value);
  uint64_t total = w.next + 5000;
  CHECK_FALSE(w.write_until_stalled(s, total, 10s)); // false: all written, no error
  REQUIRE(w.complete() == total);
  CHECK(eventually([&] { return st->received.load() == total; }, 30000ms));
  CHECK(st->received.load() == total);
  CHECK_FALSE(st->out_of_order.load());
  CHECK(eventually([&] { return g->metrics()->backend_accepted.load() == total; }));
  CHECK(g.sessions().at(0).seq_in == total);
}

namespace {

/// Registers `prod` as the backend producer in place of whatever holds the name.
void take_producer_name(caf::actor_system& sys, const caf::actor& prod) {
  const std::string name = "warren.backend.producer";
  warren::unregister_name(sys, name);
  REQUIRE(!warren::register_name(sys, name, prod));
}

/// Runs the gateway's producer-replacement case: producer A takes every batch and
/// accepts none; after `lines` lines it is replaced by B, which accepts; then the
/// device sends `more` lines. B must get every line, in order, once each.
void producer_replaced(gw::config cfg, uint64_t lines, uint64_t more) {
  running_gateway g{cfg};
  auto& sys = g->system();
  auto real = warren::whereis(sys, "warren.backend.producer");
  REQUIRE(real);
  auto a_st = std::make_shared<withheld>();
  auto a = sys.spawn(withholding_producer, a_st);
  auto b_st = std::make_shared<withheld>();
  auto b = sys.spawn(withholding_producer, b_st);
  struct restore {
    caf::actor_system& sys;
    caf::actor real, a, b;
    ~restore() {
      warren::unregister_name(sys, "warren.backend.producer");
      warren::register_name(sys, "warren.backend.producer", real);
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
      caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
    }
  } guard{sys, real, a, b};
  take_producer_name(sys, a);

  net_test::raw_socket s;
  REQUIRE(s.connect(g.port()));
  flooder w;
  CHECK_FALSE(w.write_until_stalled(s, lines, 10s)); // all written
  REQUIRE(eventually([&] { return a_st->received.load() == lines; }));
  CHECK(g->metrics()->backend_accepted.load() == 0);

  // A goes away without accepting anything (as a crashed producer would); B takes its
  // name and accepts everything.
  caf::anon_send(b, accept_all_atom::value);
  caf::anon_send_exit(a, caf::exit_reason::kill);
  take_producer_name(sys, b);
  if (more > 0)
    CHECK_FALSE(w.write_until_stalled(s, lines + more, 10s));
  uint64_t total = lines + more;
  CHECK(eventually([&] { return b_st->received.load() == total; }, 30000ms));
  CHECK(b_st->received.load() == total);
  CHECK_FALSE(b_st->out_of_order.load());
  CHECK(eventually([&] { return g->metrics()->backend_accepted.load() == total; }));
  CHECK(g->metrics()->republished.load() >= 1);
}

} // namespace

TEST_CASE("a replaced producer: a quiet device's unaccepted batches go to the new one (producer watch)") {
  auto cfg = test_config();
  cfg.producer_check = 50ms;
  producer_replaced(cfg, 3000, 0);
}

TEST_CASE("a replaced producer: a device that keeps sending has its unaccepted batches republished first") {
  auto cfg = test_config();
  cfg.producer_check = std::chrono::hours(1); // the watch stays out of it
  producer_replaced(cfg, 3000, 2000);
}
