// The echo producer: one router lookup per published batch, and the very same batch
// back to its session (no payload copy), with the acceptance when that session is the
// publisher (warren/backend/echo.hpp, messages.hpp).
#include <warren/backend/control.hpp>
#include <warren/backend/echo.hpp>
#include <warren/registry.hpp>
#include <warren/supervisor.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

using namespace warren::backend;
using namespace std::chrono_literals;

namespace {

/// Answers every lookup with `target` (null: no such session) and records them.
class fake_router : public router {
public:
  caf::actor find(address_kind kind, std::string_view id) const override {
    std::lock_guard<std::mutex> guard{mtx_};
    lookups_.push_back(to_string(kind) + " " + std::string{id});
    return target_;
  }
  void route_to(caf::actor x) {
    std::lock_guard<std::mutex> guard{mtx_};
    target_ = std::move(x);
  }
  std::vector<std::string> lookups() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return lookups_;
  }

private:
  mutable std::mutex mtx_;
  mutable std::vector<std::string> lookups_;
  caf::actor target_;
};

struct echo_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  std::shared_ptr<fake_router> routes = std::make_shared<fake_router>();
  caf::actor top;
  caf::actor producer;

  echo_fixture() {
    auto spec = make_echo_backend(routes);
    warren::supervisor_flags flags;
    auto sup = warren::start_supervisor(sys, flags, {spec.supervisor}, "test-top");
    REQUIRE(sup);
    top = *sup;
    producer = warren::whereis(sys, spec.producer_name);
    REQUIRE(producer);
  }
  ~echo_fixture() { warren::sup::stop(sys, top); }
};

device_batch make_batch(std::string_view conn, uint64_t from, uint64_t to) {
  device_batch::builder b{conn, "dev-e", to - from + 1};
  for (auto seq = from; seq <= to; ++seq) {
    std::string payload{"p"}; // not "p" + to_string(): GCC 12's -Wrestrict false positive
    payload += std::to_string(seq);
    b.add(seq, std::nullopt, payload);
  }
  return std::move(b).done();
}

} // namespace

TEST_CASE_FIXTURE(echo_fixture, "the publisher's own batch comes back as it was, with its acceptance") {
  caf::scoped_actor session{sys};
  routes->route_to(caf::actor_cast<caf::actor>(session));
  auto batch = make_batch("conn-1", 1, 3);
  session->send(producer, publish_atom::value, batch);
  bool got = false;
  session->receive(
      [&](deliver_atom, const device_batch& back, accepted_atom, uint64_t seq) {
        got = true;
        CHECK(seq == 3);
        REQUIRE(back.size() == 3);
        CHECK(back.connection_id() == "conn-1");
        CHECK(back[2].payload == "p3");
        CHECK(back[0].payload.data() == batch[0].payload.data()); // shared, not copied
      },
      caf::after(10s) >> [] {});
  CHECK(got);
  CHECK(routes->lookups() == std::vector<std::string>{"connection conn-1"}); // once per batch

  // Nothing else arrives (no separate acceptance).
  bool extra = false;
  session->receive([&](caf::message&) { extra = true; }, caf::after(100ms) >> [] {});
  CHECK_FALSE(extra);
}

TEST_CASE_FIXTURE(echo_fixture, "another session holds the connection id: the batch to it, the acceptance to "
                                "the publisher") {
  caf::scoped_actor publisher{sys};
  caf::scoped_actor holder{sys};
  routes->route_to(caf::actor_cast<caf::actor>(holder));
  auto batch = make_batch("conn-2", 5, 6);
  publisher->send(producer, publish_atom::value, batch);
  bool delivered = false;
  holder->receive(
      [&](deliver_atom, const device_batch& back) {
        delivered = true;
        CHECK(back[0].payload.data() == batch[0].payload.data());
        CHECK(back.last_seq() == 6);
      },
      caf::after(10s) >> [] {});
  CHECK(delivered);
  uint64_t accepted = 0;
  publisher->receive([&](accepted_atom, uint64_t seq) { accepted = seq; }, caf::after(10s) >> [] {});
  CHECK(accepted == 6);
}

TEST_CASE_FIXTURE(echo_fixture, "no session for the connection id: only the acceptance") {
  caf::scoped_actor publisher{sys};
  publisher->send(producer, publish_atom::value, make_batch("conn-3", 1, 4));
  publisher->send(producer, publish_atom::value, make_batch("conn-3", 5, 5));
  std::vector<uint64_t> accepted;
  for (int i = 0; i < 2; ++i)
    publisher->receive([&](accepted_atom, uint64_t seq) { accepted.push_back(seq); },
                       caf::after(10s) >> [] {});
  CHECK(accepted == std::vector<uint64_t>{4, 5});
  CHECK(routes->lookups().size() == 2);
}
