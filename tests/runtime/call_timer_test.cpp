// warren::detail::call_timer: the deadlines of an event-based actor's async calls, on
// the deterministic clock (every deadline is checked to the millisecond).
#include "warren/detail/call_timer.hpp"
#include "warren/server.hpp"

#include "warren_test/deterministic.hpp"

#include <caf/actor_system.hpp>
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace {

struct hold_t {
  int id;
};
struct release_t {
  int id;
};

} // namespace

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(hold_t)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(release_t)

namespace {

using namespace std::chrono_literals;

// Holds every call's reply until told to release it (OTP: noreply now, reply later).
struct holder {
  using calls = warren::type_list<hold_t>;
  using casts = warren::type_list<release_t>;
  std::map<int, caf::typed_response_promise<int>> held;

  warren::call_result<int> handle_call(const hold_t& x, warren::caller& from) {
    held.emplace(x.id, from.defer<int>());
    return warren::noreply();
  }
  void handle_cast(const release_t& x) {
    if (auto i = held.find(x.id); i != held.end()) {
      i->second.deliver(x.id);
      held.erase(i);
    }
  }
};

struct fixture : warren_test::deterministic {
  caf::actor server;
  caf::event_based_actor* client_self = nullptr;
  caf::actor client;
  std::vector<std::string> seen; // what the client's calls got, in order

  fixture() {
    auto r = warren::start_server<holder>(warren::start_context{sys, {}});
    REQUIRE(r.started());
    server = r.actor();
    client = sys.spawn(
        [this](caf::event_based_actor* self, int) -> caf::behavior {
          client_self = self;
          // Anything but a call's answer would land here: a late reply must not.
          self->set_default_handler(
              [this](caf::scheduled_actor*, caf::message_view& x) -> caf::result<caf::message> {
                seen.push_back("unexpected:" + caf::to_string(x.copy_content_to_message()));
                return caf::message{};
              });
          return {[this, self](hold_t x, caf::timespan timeout) {
            warren::async_call<holder>(self, server, x, timeout)
                .then([this](int id) { seen.push_back("reply:" + std::to_string(id)); },
                      [this, id = x.id](caf::error& e) {
                        seen.push_back((e == caf::sec::request_timeout ? "timeout:" : "error:") +
                                       std::to_string(id));
                      });
          }};
        },
        0);
    run();
  }

  ~fixture() {
    caf::anon_send_exit(client, caf::exit_reason::kill);
    caf::anon_send_exit(server, caf::exit_reason::kill);
    run();
  }

  void call(int id, caf::timespan timeout) {
    caf::anon_send(client, hold_t{id}, timeout);
    run();
  }
  void release(int id) {
    warren::cast<holder>(server, release_t{id});
    run();
  }
  warren::detail::call_timer& timer() { return warren::detail::call_timer::of(client_self); }
};

} // namespace

TEST_SUITE("call_timer") {

  TEST_CASE_FIXTURE(fixture,
                    "pending calls with different timeouts each time out at their own deadline, in order") {
    const std::vector<int> timeouts_ms = {50, 10, 40, 20, 30, 10};
    for (size_t i = 0; i < timeouts_ms.size(); ++i)
      call(static_cast<int>(i), std::chrono::milliseconds(timeouts_ms[i]));
    CHECK(timer().pending() == 6);
    CHECK(seen.empty());
    advance(9ms);
    CHECK(seen.empty());
    advance(1ms); // 10 ms: calls 1 and 5, in call order
    CHECK(seen == std::vector<std::string>{"timeout:1", "timeout:5"});
    advance(9ms);
    CHECK(seen.size() == 2);
    advance(1ms); // 20 ms
    CHECK(seen.back() == "timeout:3");
    advance(10ms); // 30 ms
    CHECK(seen.back() == "timeout:4");
    advance(10ms); // 40 ms
    CHECK(seen.back() == "timeout:2");
    advance(10ms); // 50 ms
    CHECK(seen == std::vector<std::string>{"timeout:1", "timeout:5", "timeout:3", "timeout:4", "timeout:2",
                                           "timeout:0"});
    CHECK(timer().pending() == 0);
  }

  TEST_CASE_FIXTURE(fixture, "a reply after the timeout is dropped; a reply in time cancels the deadline") {
    call(1, 10ms);
    call(2, 20ms);
    advance(10ms);
    CHECK(seen == std::vector<std::string>{"timeout:1"});
    release(1); // late: nobody waits for it any more
    release(2); // in time
    CHECK(seen == std::vector<std::string>{"timeout:1", "reply:2"});
    CHECK(timer().pending() == 0);
    advance(100ms); // call 2's deadline passes: no second answer
    CHECK(seen == std::vector<std::string>{"timeout:1", "reply:2"});
  }

  TEST_CASE_FIXTURE(fixture, "calls answered in time leave no deadline behind and arm one tick per period") {
    for (int i = 0; i < 1000; ++i) {
      call(i, 5s);
      release(i);
    }
    CHECK(seen.size() == 1000);
    CHECK(timer().pending() == 0);
    // Growing deadlines never move the earliest one forward: the first call's tick is
    // the only one armed with CAF's clock.
    CHECK(timer().armed_ticks() == 1);
    advance(5s); // the tick fires with nothing due and arms nothing
    CHECK(timer().armed_ticks() == 0);
    CHECK(seen.size() == 1000);
  }

  TEST_CASE_FIXTURE(fixture, "an earlier deadline arms an earlier tick; the later one still fires") {
    call(1, 5s);
    call(2, 1s);
    CHECK(timer().armed_ticks() == 2);
    advance(1s);
    CHECK(seen == std::vector<std::string>{"timeout:2"});
    advance(4s - 1ms);
    CHECK(seen.size() == 1);
    advance(1ms);
    CHECK(seen == std::vector<std::string>{"timeout:2", "timeout:1"});
    CHECK(timer().armed_ticks() == 0);
  }

  TEST_CASE_FIXTURE(fixture, "a server exit fails the pending calls at once and clears their deadlines") {
    call(1, 5s);
    call(2, warren::infinity);
    call(3, 1s);
    caf::anon_send_exit(server, caf::exit_reason::user_shutdown);
    run();
    std::sort(seen.begin(), seen.end()); // the watches fire in no particular order
    CHECK(seen == std::vector<std::string>{"error:1", "error:2", "error:3"});
    CHECK(timer().pending() == 0);
    advance(5s);
    CHECK(seen.size() == 3);
  }

  TEST_CASE_FIXTURE(fixture, "an actor living on responses alone ends when its last timed call completes") {
    bool exited = false;
    int got = 0;
    auto lone = sys.spawn(
        [&](caf::event_based_actor* self, int) {
          self->attach_functor([&] { exited = true; });
          warren::async_call<holder>(self, server, hold_t{7}, 5s)
              .then([&](int x) { got = x; }, [](caf::error&) {});
        },
        0);
    run();
    CHECK(!exited);
    release(7);
    CHECK(got == 7);
    CHECK(exited); // not 5 s later, when the clock would answer the timer's tick
    CHECK(seen.empty());
  }

  TEST_CASE_FIXTURE(fixture,
                    "random timeouts and replies: every call gets exactly one answer, at its deadline") {
    std::mt19937 rng{12345};
    struct expect {
      int id;
      int due_ms;
      bool replied;
    };
    std::vector<expect> calls;
    for (int id = 0; id < 300; ++id) {
      int due = 1 + static_cast<int>(rng() % 100);
      call(id, std::chrono::milliseconds(due));
      calls.push_back({id, due, rng() % 3 == 0});
    }
    for (auto& c : calls)
      if (c.replied)
        release(c.id);
    size_t replies =
        static_cast<size_t>(std::count_if(calls.begin(), calls.end(), [](auto& c) { return c.replied; }));
    REQUIRE(seen.size() == replies);
    // Timeouts in (deadline, call order), each in the millisecond of its deadline.
    std::vector<expect> timeouts;
    std::copy_if(calls.begin(), calls.end(), std::back_inserter(timeouts),
                 [](auto& c) { return !c.replied; });
    std::stable_sort(timeouts.begin(), timeouts.end(), [](auto& a, auto& b) { return a.due_ms < b.due_ms; });
    std::vector<std::string> expected(seen);
    size_t next = 0;
    for (int ms = 1; ms <= 100; ++ms) {
      advance(1ms);
      while (next < timeouts.size() && timeouts[next].due_ms == ms)
        expected.push_back("timeout:" + std::to_string(timeouts[next++].id));
      REQUIRE(seen == expected);
    }
    CHECK(timer().pending() == 0);
    // The server still holds the timed-out calls; their replies are dropped.
    for (auto& c : timeouts)
      release(c.id);
    CHECK(seen == expected);
  }
}
