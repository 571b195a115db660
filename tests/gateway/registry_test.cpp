// The session registry (apps/gateway/src/registry.cpp): connection ids, device
// takeover, the admin listing, broadcast; and the connection id generator.
#include "registry.hpp"

#include <caf/all.hpp>
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>

namespace gw = warren::gateway;
namespace backend = warren::backend;

namespace {

using ping_atom = caf::atom_constant<caf::atom("tping")>;

/// A stand-in session that counts what it receives.
caf::behavior counting(caf::event_based_actor*, std::shared_ptr<std::atomic<int>> n) {
  return {[n](ping_atom) { ++*n; }};
}

bool is_uuid_v4(const std::string& s) {
  if (s.size() != 36)
    return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (s[i] == '-'))
      return false;
    if (!dash && !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  }
  return s[14] == '4' && std::string_view{"89ab"}.find(s[19]) != std::string_view::npos;
}

} // namespace

TEST_CASE("connection ids are canonical, lowercase UUID v4 and do not repeat, across threads") {
  std::vector<std::string> a, b;
  std::thread t{[&] {
    for (int i = 0; i < 5000; ++i)
      b.push_back(gw::make_uuid_v4());
  }};
  for (int i = 0; i < 5000; ++i)
    a.push_back(gw::make_uuid_v4());
  t.join();
  std::set<std::string> all;
  for (auto* xs : {&a, &b})
    for (auto& x : *xs) {
      CHECK_MESSAGE(is_uuid_v4(x), x);
      all.insert(x);
    }
  CHECK(all.size() == 10000);
}

TEST_CASE("registry: connections, device takeover, listing, release and broadcast") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  gw::session_registry reg;
  auto n1 = std::make_shared<std::atomic<int>>(0);
  auto n2 = std::make_shared<std::atomic<int>>(0);
  auto s1 = sys.spawn(counting, n1);
  auto s2 = sys.spawn(counting, n2);
  // What the entries point to lives here, as it lives in the session and endpoint.
  const std::string id1 = gw::make_uuid_v4(), id2 = gw::make_uuid_v4(), listener = "plain";
  warren::net::connection_info info1, info2;
  info1.peer = "127.0.0.1:1000";
  info2.peer = "127.0.0.2:2000";
  info2.tls_version = "TLSv1.3";
  gw::session_stats st1, st2;
  st1.seq_in = 7;
  reg.add_connection(id1, {s1, {}, &info1, &listener, 1, &st1, {}});
  reg.add_connection(id2, {s2, {}, &info2, &listener, 2, &st2, {}});
  CHECK(reg.connections() == 2);
  CHECK(reg.find(backend::address_kind::connection, id1) == s1);
  CHECK(reg.find(backend::address_kind::connection, id2) == s2);
  CHECK(!reg.find(backend::address_kind::connection, gw::make_uuid_v4()));

  auto xs = reg.list();
  REQUIRE(xs.size() == 2);
  for (auto& v : xs) {
    CHECK(v.listener == "plain");
    if (v.connection_id == id1) {
      CHECK(v.peer == "127.0.0.1:1000");
      CHECK(v.seq_in == 7);
      CHECK(v.tls_version.empty());
    } else {
      CHECK(v.connection_id == id2);
      CHECK(v.peer == "127.0.0.2:2000");
      CHECK(v.tls_version == "TLSv1.3");
    }
  }

  // Device "d": first id1, then id2 takes it over; id1 is handed back to be closed.
  std::shared_ptr<gw::device_state> state1, state2;
  bool subscribed = true;
  CHECK(!reg.claim_device("d", id1, s1, state1, subscribed));
  CHECK(!subscribed); // no cluster: nothing on NATS
  REQUIRE(state1);
  state1->next_to_device_seq = 5;
  CHECK(reg.find(backend::address_kind::device, "d") == s1);
  CHECK(reg.claim_device("d", id2, s2, state2, subscribed) == s1);
  CHECK(state2 == state1); // the ordering state goes with the device
  CHECK(reg.find(backend::address_kind::device, "d") == s2);
  reg.release(id1); // the stale session goes: the device stays with id2
  CHECK(reg.find(backend::address_kind::device, "d") == s2);
  CHECK(!reg.find(backend::address_kind::connection, id1));
  reg.release(id1); // idempotent
  CHECK(reg.connections() == 1);
  CHECK(reg.devices() == 1);

  CHECK(reg.broadcast(caf::make_message(ping_atom::value)) == 1);
  reg.add_connection(id1, {s1, {}, &info1, &listener, 3, &st1, {}});
  CHECK(reg.broadcast(caf::make_message(ping_atom::value)) == 2);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((*n1 < 1 || *n2 < 2) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(*n1 == 1);
  CHECK(*n2 == 2);

  reg.release(id2); // its device goes with it
  reg.release(id1);
  CHECK(reg.connections() == 0);
  CHECK(reg.devices() == 0);
  caf::anon_send_exit(s1, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(s2, caf::exit_reason::user_shutdown);
}
