// warren::net listener over plain TCP: echo, framing limits, max_connections,
// crashes, acceptor restarts, suspend/resume and drain. Real sockets on 127.0.0.1.
#include "net_support.hpp"

using namespace net_test;

TEST_CASE("plain echo round trip, pipelined lines, counters") {
  net::listener_options opts;
  fixture f{opts};
  client c{f.port};
  c.send("hello\n");
  CHECK(c.read_line() == "hello");
  // Many lines in one write: delivered in batches (active-once), echoed in order.
  std::string burst;
  for (int i = 0; i < 500; ++i)
    burst += "line " + std::to_string(i) + "\r\n";
  c.send(burst);
  for (int i = 0; i < 500; ++i)
    REQUIRE(c.read_line() == "line " + std::to_string(i));
  c.send("seq\n"); // sequence number: frames received so far, this one included
  CHECK(c.read_line() == "502");
  c.close();
  CHECK(f.eventually([](const auto& x) { return x.closed == 1 && x.active == 0; }));
  auto k = f.counters();
  CHECK(k.accepted == 1);
  CHECK(k.frames_in == 502);
  CHECK(k.frames_out == 502);
  CHECK(k.bytes_in == 6 + burst.size() + 4);
  CHECK(k.bytes_out > 0);
}

TEST_CASE("protocol timers fire on the connection") {
  net::listener_options opts;
  fixture f{opts};
  client c{f.port};
  c.send("tick\nnow\n");
  CHECK(c.read_line() == "now");
  CHECK(c.read_line() == "tock 7");
}

TEST_CASE("other actors push to the device through the endpoint actor") {
  net::listener_options opts;
  fixture f{opts};
  client c{f.port};
  c.send("register\n");
  REQUIRE(c.read_line() == "registered");
  auto ep = warren::whereis(*f.sys, "device");
  REQUIRE(ep);
  caf::anon_send(ep, std::string{"hello"});
  CHECK(c.read_line() == "push hello");
  c.send("after\n"); // reading goes on
  CHECK(c.read_line() == "after");
}

namespace {

/// Registers its endpoint as "replier". Requests (strings): "now" is answered at
/// once through ctx.make_response_promise(); "ask" keeps its promise until the
/// asynchronous message "answer" delivers "answered <a> <b>" (a: whether a second
/// promise for "ask" was pending, b: whether one for "answer" was). A line from the
/// device gets "outside <pending>" (a promise taken in on_frames).
class promise_protocol : public net::protocol {
public:
  void on_connect(net::connection_context& ctx) override {
    auto self = ctx.self();
    warren::register_name(self->home_system(), "replier", self);
  }
  void on_frames(net::connection_context& ctx, std::span<const std::string_view> frames) override {
    for (std::size_t i = 0; i < frames.size(); ++i)
      ctx.send("outside " + std::to_string(ctx.make_response_promise().pending()));
  }
  bool on_message(net::connection_context& ctx, caf::message& msg) override {
    if (!msg.match_elements<std::string>())
      return false;
    const auto& what = msg.get_as<std::string>(0);
    if (what == "now") {
      auto rp = ctx.make_response_promise();
      rp.deliver(std::string{"now"});
    } else if (what == "ask") {
      rp_ = ctx.make_response_promise();
      second_ = ctx.make_response_promise().pending();
    } else if (what == "answer") {
      bool async = ctx.make_response_promise().pending();
      rp_.deliver("answered " + std::to_string(second_) + " " + std::to_string(async));
    } else {
      return false;
    }
    return true;
  }

private:
  caf::response_promise rp_;
  bool second_ = false;
};

} // namespace

TEST_CASE("make_response_promise: a protocol answers a request at once or later, once") {
  fixture f{net::listener_options{}, [] { return std::make_unique<promise_protocol>(); }};
  client c{f.port};
  c.send("x\n");
  CHECK(c.read_line() == "outside 0"); // not in on_message: no promise
  auto ep = warren::whereis(*f.sys, "replier");
  REQUIRE(ep);
  caf::scoped_actor self{*f.sys};
  auto ask = [&](auto&& handle) {
    std::string got;
    handle.receive([&](std::string& s) { got = std::move(s); },
                   [&](caf::error& e) { got = "error: " + f.sys->render(e); });
    return got;
  };
  CHECK(ask(self->request(ep, 10s, std::string{"now"})) == "now");
  // The promise outlives on_message; the endpoint sent no reply of its own meanwhile
  // (an empty one would not match the string handler).
  auto later = self->request(ep, 10s, std::string{"ask"});
  caf::anon_send(ep, std::string{"answer"});
  CHECK(ask(later) == "answered 0 0");
  // Unknown requests are still refused.
  CHECK(ask(self->request(ep, 10s, std::string{"what"})).starts_with("error"));
}

TEST_CASE("overflow policy pause_reading: nothing lost, the connection lives") {
  net::listener_options opts;
  opts.high_watermark = 64 * 1024;
  opts.low_watermark = 16 * 1024;
  opts.on_overflow = net::overflow_policy::pause_reading;
  fixture f{opts};
  client c{f.port};
  c.send("flood\n");
  c.send("after\n"); // read only once the queue drained below low_watermark
  for (int i = 0; i < 1000; ++i)
    REQUIRE(c.read_line() == std::string(1024, 'x'));
  CHECK(c.read_line() == "after");
  CHECK(f.counters().overflow_closes == 0);
}

TEST_CASE("a line over max_frame closes the connection after the earlier lines") {
  net::listener_options opts;
  opts.max_frame = 16;
  fixture f{opts};
  client c{f.port};
  c.send("short\n" + std::string(40, 'a') + "\nnever\n");
  CHECK(c.read_line() == "short");
  CHECK(c.wait_closed());
  CHECK(f.eventually([](const auto& x) { return x.frame_errors == 1 && x.active == 0; }));
  client d{f.port}; // the listener is fine
  d.send("ok\n");
  CHECK(d.read_line() == "ok");
}

TEST_CASE("idle connections are closed after idle_timeout") {
  net::listener_options opts;
  opts.idle_timeout = 200ms;
  fixture f{opts};
  client c{f.port};
  c.send("x\n");
  CHECK(c.read_line() == "x");
  auto t0 = std::chrono::steady_clock::now();
  CHECK(c.wait_closed());
  CHECK(std::chrono::steady_clock::now() - t0 >= 150ms);
  CHECK(f.eventually([](const auto& x) { return x.idle_closes == 1; }));
}

TEST_CASE("outbound overflow closes with reason overflow") {
  net::listener_options opts;
  opts.high_watermark = 64 * 1024;
  opts.low_watermark = 16 * 1024;
  fixture f{opts};
  client c{f.port};
  c.send("flood\n"); // 1 MiB queued in one handler: over the high watermark
  CHECK(c.wait_closed());
  CHECK(f.eventually([](const auto& x) { return x.overflow_closes == 1 && x.active == 0; }));
}

TEST_CASE("max_connections: the next client is refused (closed, counted), not left waiting") {
  net::listener_options opts;
  opts.max_connections = 2; // of the whole listener, over every acceptor
  fixture f{opts};
  client a{f.port}, b{f.port};
  a.send("a\n");
  b.send("b\n");
  CHECK(a.read_line() == "a");
  CHECK(b.read_line() == "b");
  client c{f.port}; // the kernel completes the connect; the listener closes it at once
  CHECK(c.wait_closed());
  auto k = f.counters();
  CHECK(k.refused == 1);
  CHECK(k.accepted == 2);
  a.close();
  REQUIRE(f.eventually([](const auto& x) { return x.active == 1; }));
  client d{f.port};
  d.send("d\n");
  CHECK(d.read_line() == "d");
  b.send("still\n");
  CHECK(b.read_line() == "still");
  CHECK(f.counters().refused == 1);
}

TEST_CASE("an endpoint crash leaves the other connections working") {
  net::listener_options opts;
  fixture f{opts};
  client a{f.port}, b{f.port};
  a.send("a\n");
  b.send("b\n");
  CHECK(a.read_line() == "a");
  CHECK(b.read_line() == "b");
  a.send("crash\n");
  CHECK(a.wait_closed());
  b.send("b2\n");
  CHECK(b.read_line() == "b2");
  client c{f.port};
  c.send("c\n");
  CHECK(c.read_line() == "c");
  CHECK(f.eventually([](const auto& x) { return x.active == 2 && x.closed == 1; }));
}

TEST_CASE("a killed acceptor is restarted and accepting resumes") {
  net::listener_options opts;
  opts.num_acceptors = 1;
  fixture f{opts};
  auto lsup = f.child(f.top, "L");
  REQUIRE(lsup);
  auto accs = f.child(lsup, "acceptors");
  REQUIRE(accs);
  auto a0 = f.child(accs, "acceptor_0");
  REQUIRE(a0);
  client before{f.port};
  before.send("x\n");
  CHECK(before.read_line() == "x");
  caf::anon_send_exit(a0, caf::exit_reason::kill);
  caf::actor a1;
  auto until = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < until) {
    a1 = f.child(accs, "acceptor_0");
    if (a1 && a1 != a0)
      break;
    std::this_thread::sleep_for(2ms);
  }
  REQUIRE(a1);
  CHECK(a1 != a0);
  client after{f.port};
  after.send("y\n");
  CHECK(after.read_line() == "y");
  before.send("z\n"); // connections survive an acceptor restart
  CHECK(before.read_line() == "z");
  auto tree = warren::sup::tree(*f.sys, lsup);
  REQUIRE(tree);
  CHECK(tree->children.size() == 3); // ctl, conns_0, acceptors
}

TEST_CASE("suspend, resume and drain") {
  net::listener_options opts;
  fixture f{opts};
  client a{f.port};
  a.send("a\n");
  CHECK(a.read_line() == "a");
  REQUIRE_FALSE(net::listener::suspend(*f.sys, f.id));
  // Suspended: the listen socket is closed (Ranch's suspend), so a new connect is
  // refused instead of waiting in a queue nobody accepts from.
  CHECK_THROWS_AS(client{f.port}, std::system_error);
  a.send("a2\n"); // accepted connections stay
  CHECK(a.read_line() == "a2");
  REQUIRE_FALSE(net::listener::resume(*f.sys, f.id)); // reopened on the same port
  client b{f.port};
  b.send("b\n");
  CHECK(b.read_line() == "b");
  // Drain: stop accepting, wait 200 ms for a and b to go, then close them.
  auto forced = net::listener::drain(*f.sys, f.id, 200ms);
  REQUIRE(forced);
  CHECK(*forced == 2);
  CHECK(a.wait_closed());
  CHECK(b.wait_closed());
  CHECK(f.eventually([](const auto& x) { return x.active == 0; }));
  CHECK_THROWS_AS(client{f.port}, std::system_error); // still suspended after a drain
}

TEST_CASE("a killed ctl restarts the listener on the same port (rest_for_one)") {
  net::listener_options opts;
  fixture f{opts};
  auto lsup = f.child(f.top, "L");
  REQUIRE(lsup);
  auto ctl = f.child(lsup, "ctl");
  auto conns = f.child(lsup, "conns_0");
  auto accs0 = f.child(lsup, "acceptors");
  REQUIRE(ctl);
  client a{f.port};
  a.send("a\n");
  CHECK(a.read_line() == "a");
  caf::anon_send_exit(ctl, caf::exit_reason::kill);
  CHECK(a.wait_closed()); // its connection supervisor was restarted after the ctl
  auto until = std::chrono::steady_clock::now() + 5s;
  caf::actor acc;
  while (std::chrono::steady_clock::now() < until) {
    auto accs = f.child(lsup, "acceptors");
    auto c2 = f.child(lsup, "conns_0");
    if (accs && accs != accs0 && c2 && c2 != conns && f.child(lsup, "ctl") != ctl) {
      acc = accs;
      break;
    }
    std::this_thread::sleep_for(2ms);
  }
  REQUIRE(acc);
  auto p = net::listener::port(*f.sys, f.id);
  REQUIRE(p);
  CHECK(*p == f.port);
  client b{f.port};
  b.send("b\n");
  CHECK(b.read_line() == "b");
}

TEST_CASE("stopping the listener closes its connections and its listen sockets") {
  net::listener_options opts;
  fixture f{opts};
  client a{f.port}, b{f.port};
  a.send("a\n");
  b.send("b\n");
  CHECK(a.read_line() == "a");
  CHECK(b.read_line() == "b");
  REQUIRE_FALSE(warren::sup::terminate_child(*f.sys, f.top, "L"));
  CHECK(a.wait_closed());
  CHECK(b.wait_closed());
  // The sockets are closed on their loops just after the ctl exits: wait for a refusal.
  bool refused = false;
  auto until = std::chrono::steady_clock::now() + 5s;
  while (!refused && std::chrono::steady_clock::now() < until) {
    try {
      client c{f.port};
      std::this_thread::sleep_for(2ms);
    } catch (const std::system_error&) {
      refused = true;
    }
  }
  CHECK(refused);
  CHECK_FALSE(net::listener::port(*f.sys, f.id)); // ctl unregistered
}
