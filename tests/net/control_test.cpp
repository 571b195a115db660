// warren::net listener control API: event-driven drain (answered when the last
// connection ends, concurrent drains, a listener stopped mid-drain) and
// max_connections changed at run time. Real sockets on 127.0.0.1.
#include "net_support.hpp"

#include <optional>

using namespace net_test;

namespace {

/// The answer to one drain request: a count, an error, or nothing yet.
struct drain_answer {
  std::optional<uint64_t> count;
  caf::error err;
};

/// Waits for the answer of a drain request; the request's own timeout is a safety net.
template <class Handle>
drain_answer await(Handle& h) {
  drain_answer r;
  h.receive([&](uint64_t n) { r.count = n; }, [&](caf::error& e) { r.err = std::move(e); });
  return r;
}

caf::actor ctl_of(fixture& f) {
  auto ctl = warren::whereis(*f.sys, net::listener_name(f.id));
  REQUIRE(ctl);
  return ctl;
}

constexpr auto safety = std::chrono::seconds(30); // a request that never gets an answer fails here
constexpr caf::timespan long_deadline = std::chrono::hours(1);

} // namespace

TEST_CASE("drain with no connection answers 0 at once") {
  net::listener_options opts;
  fixture f{opts};
  caf::scoped_actor self{*f.sys};
  auto h = self->request(ctl_of(f), safety, net::drain_atom::value, long_deadline);
  auto r = await(h);
  REQUIRE(r.count);
  CHECK(*r.count == 0);
}

TEST_CASE("drain answers when the last connection ends, long before its deadline") {
  net::listener_options opts;
  fixture f{opts};
  client a{f.port}, b{f.port};
  a.send("a\n");
  b.send("b\n");
  REQUIRE(a.read_line() == "a");
  REQUIRE(b.read_line() == "b");
  caf::scoped_actor self{*f.sys};
  auto h = self->request(ctl_of(f), safety, net::drain_atom::value, long_deadline);
  a.close();
  REQUIRE(f.eventually([](const auto& x) { return x.closed == 1 && x.active == 1; }));
  // One connection is left: no answer yet (bounded check for absence).
  std::this_thread::sleep_for(100ms);
  CHECK(self->mailbox().empty());
  b.send("still served\n"); // draining stops accepting, not serving
  CHECK(b.read_line() == "still served");
  b.close();
  auto r = await(h); // the last close answers it: the deadline is an hour away
  REQUIRE(r.count);
  CHECK(*r.count == 0);
  CHECK(f.counters().active == 0);
  CHECK_THROWS_AS(client{f.port}, std::system_error); // suspended after the drain: socket closed
}

TEST_CASE("concurrent drains: the first deadline closes the rest, every drain is answered") {
  net::listener_options opts;
  fixture f{opts};
  client a{f.port}, b{f.port};
  a.send("a\n");
  b.send("b\n");
  REQUIRE(a.read_line() == "a");
  REQUIRE(b.read_line() == "b");
  caf::scoped_actor self{*f.sys};
  auto ctl = ctl_of(f);
  auto h1 = self->request(ctl, safety, net::drain_atom::value, long_deadline);
  auto h2 = self->request(ctl, safety, net::drain_atom::value, caf::timespan{std::chrono::milliseconds(100)});
  auto h3 = self->request(ctl, safety, net::drain_atom::value, long_deadline);
  auto r2 = await(h2);
  REQUIRE(r2.count);
  CHECK(*r2.count == 2); // its deadline passed with a and b still open
  CHECK(a.wait_closed());
  CHECK(b.wait_closed());
  auto r1 = await(h1);
  auto r3 = await(h3);
  REQUIRE(r1.count);
  REQUIRE(r3.count);
  CHECK(*r1.count == 0); // answered when the forced closes ended the last connection
  CHECK(*r3.count == 0);
  CHECK(f.counters().active == 0);
}

TEST_CASE("two drains past their deadlines each get their own count") {
  net::listener_options opts;
  fixture f{opts};
  client a{f.port};
  a.send("a\n");
  REQUIRE(a.read_line() == "a");
  caf::scoped_actor self{*f.sys};
  auto ctl = ctl_of(f);
  auto h1 = self->request(ctl, safety, net::drain_atom::value, caf::timespan{0});
  auto h2 = self->request(ctl, safety, net::drain_atom::value, caf::timespan{0});
  auto r1 = await(h1);
  auto r2 = await(h2);
  REQUIRE(r1.count);
  REQUIRE(r2.count);
  // Both deadlines fire before the close completes: each one closes what it finds.
  // The connection is closed once; whichever came second finds 1 or 0 left.
  CHECK(*r1.count + *r2.count >= 1);
  CHECK(a.wait_closed());
  CHECK(f.eventually([](const auto& x) { return x.active == 0 && x.closed == 1; }));
}

TEST_CASE("a listener stopped during a drain answers it, no hang") {
  net::listener_options opts;
  fixture f{opts};
  client a{f.port};
  a.send("a\n");
  REQUIRE(a.read_line() == "a");
  caf::scoped_actor self{*f.sys};
  auto h = self->request(ctl_of(f), safety, net::drain_atom::value, long_deadline);
  // The listener supervisor stops its children in reverse: connections, then the ctl.
  REQUIRE_FALSE(warren::sup::terminate_child(*f.sys, f.top, "L"));
  auto r = await(h);
  // The last connection's end answers 0, or the stopping ctl answers noproc: never
  // the request's own timeout.
  if (r.count)
    CHECK(*r.count == 0);
  else
    CHECK(r.err == warren::sup_errc::noproc);
  CHECK(a.wait_closed());
  CHECK_FALSE(net::listener::drain(*f.sys, f.id, long_deadline)); // no listener: fails at once
}

TEST_CASE("a ctl killed during a drain answers it with an error") {
  net::listener_options opts;
  fixture f{opts};
  client a{f.port};
  a.send("a\n");
  REQUIRE(a.read_line() == "a");
  caf::scoped_actor self{*f.sys};
  auto ctl = ctl_of(f);
  auto h = self->request(ctl, safety, net::drain_atom::value, long_deadline);
  // A counters round trip: the drain is queued before it, so it is pending now.
  auto k = self->request(ctl, safety, net::counters_atom::value);
  k.receive([](const net::listener_counters& x) { CHECK(x.active == 1); },
            [](caf::error&) { FAIL("counters"); });
  caf::anon_send_exit(ctl, caf::exit_reason::kill); // untrappable: only on_exit runs
  auto r = await(h);
  CHECK_FALSE(r.count.has_value());
  CHECK(r.err == warren::sup_errc::noproc); // the ctl's answer, not the request timeout
  CHECK(a.wait_closed());                   // rest_for_one restarted the connection supervisor
}

TEST_CASE("max_connections changes at run time") {
  net::listener_options opts;
  opts.max_connections = 1;
  fixture f{opts};
  client a{f.port};
  a.send("a\n");
  REQUIRE(a.read_line() == "a");
  client b{f.port}; // at the limit: refused
  CHECK(b.wait_closed());
  CHECK(f.counters().refused == 1);

  REQUIRE_FALSE(net::listener::set_max_connections(*f.sys, f.id, 2));
  client b2{f.port};
  b2.send("b\n");
  CHECK(b2.read_line() == "b");

  // Lowering closes nothing; new clients are refused until the count is below it.
  REQUIRE_FALSE(net::listener::set_max_connections(*f.sys, f.id, 1));
  a.send("a2\n");
  CHECK(a.read_line() == "a2");
  client c{f.port};
  CHECK(c.wait_closed());
  CHECK(f.counters().refused == 2);
  a.close();
  b2.close();
  REQUIRE(f.eventually([](const auto& x) { return x.active == 0; }));
  client d{f.port};
  d.send("d\n");
  CHECK(d.read_line() == "d");

  CHECK(net::listener::set_max_connections(*f.sys, f.id, 0)); // an error: use suspend
  CHECK(net::listener::set_max_connections(*f.sys, "nope", 5));
}
