// gen_server benchmarks (plain binary, Release build; see docs/benchmarks.md):
//   call round trips, 1 call outstanding and 16 in flight     calls/s
//     with the default 5 s call timeout and with warren::infinity (CAF 0.17 never
//     cancels a request timeout: each timed request costs a clock-thread insertion
//     and, 5 s later, a dropped timeout message)
//   the same as raw CAF request/response (yardstick)          calls/s
//   cast throughput, one sender, 10,000,000 casts             casts/s
//   the same as raw CAF anon_send (yardsticks)                msgs/s
// Usage: warren-bench-server [scheduler-threads] [call|cast]
#include <warren/log.hpp>
#include <warren/server.hpp>

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <string>

using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

namespace {

struct ping_t {};
struct note_t {};
struct sync_t {};

} // namespace

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(ping_t)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(note_t)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(sync_t)

namespace {

double seconds_since(clk::time_point t0) {
  return std::chrono::duration<double>(clk::now() - t0).count();
}

// The server under test: answers ping with an int, counts casts and fulfils `done`
// on the last expected one; sync_t is a call used by the cast sender for flow control.
struct bench_server {
  using calls = warren::type_list<ping_t, sync_t>;
  using casts = warren::type_list<note_t>;
  std::promise<clk::time_point>* done = nullptr;
  long expected = 0;
  long casts_seen = 0;
  int pings = 0;

  void init(std::promise<clk::time_point>* p, long n) {
    done = p;
    expected = n;
  }
  int handle_call(const ping_t&, warren::caller&) { return ++pings; }
  long handle_call(const sync_t&, warren::caller&) { return casts_seen; }
  void handle_cast(const note_t&) {
    if (++casts_seen == expected)
      done->set_value(clk::now());
  }
};

// A client actor keeping `window` requests in flight until `total` replies arrived.
// `issue(self, on_reply)` sends one request whose reply handler calls on_reply.
template <class Issue>
double run_client(caf::actor_system& sys, long total, int window, Issue issue) {
  std::promise<double> done;
  auto fut = done.get_future();
  sys.spawn([&, total, window, issue](caf::event_based_actor* self) {
    struct state {
      long sent = 0;
      long got = 0;
      clk::time_point t0;
      std::function<void()> next;
    };
    auto st = std::make_shared<state>();
    // The reply handler holds a raw pointer: `st` outlives every request (the actor
    // quits only after the last reply).
    st->next = [self, s = st.get(), total, issue, &done] {
      ++s->sent;
      issue(self, [self, s, total, &done] {
        if (++s->got == total) {
          done.set_value(seconds_since(s->t0));
          self->quit();
        } else if (s->sent < total) {
          s->next();
        }
      });
    };
    self->attach_functor([st] {}); // keeps the state alive as long as the actor
    st->t0 = clk::now();
    for (int i = 0; i < window && i < total; ++i)
      st->next();
  });
  auto secs = fut.get();
  return total / secs;
}

[[noreturn]] void fail(const char* what, const caf::error& e) {
  std::fprintf(stderr, "%s: %s\n", what, caf::to_string(e).c_str());
  std::abort();
}

double bench_warren_call(caf::actor_system& sys, long total, int window, caf::timespan timeout) {
  std::promise<clk::time_point> unused;
  auto hdl = warren::spawn_server<bench_server>(sys, &unused, 0L);
  if (!hdl)
    fail("spawn_server", hdl.error());
  warren::server_ref<bench_server> ref{*hdl};
  auto rate = run_client(sys, total, window, [ref, timeout](caf::event_based_actor* self, auto on_reply) {
    warren::async_call(self, ref, ping_t{}, timeout)
        .then([on_reply](int) { on_reply(); }, [](const caf::error& e) { fail("call", e); });
  });
  caf::anon_send_exit(*hdl, caf::exit_reason::user_shutdown);
  return rate;
}

// Raw CAF yardstick: request/response between two plain event-based actors.
double bench_caf_call(caf::actor_system& sys, long total, int window, caf::duration timeout) {
  auto srv = sys.spawn([](caf::event_based_actor*) -> caf::behavior {
    auto n = std::make_shared<int>(0);
    return {[n](int) { return ++*n; }};
  });
  auto rate = run_client(sys, total, window, [srv, timeout](caf::event_based_actor* self, auto on_reply) {
    self->request(srv, timeout, 1)
        .then([on_reply](int) { on_reply(); }, [](caf::error& e) { fail("request", e); });
  });
  caf::anon_send_exit(srv, caf::exit_reason::user_shutdown);
  return rate;
}

// One sender casts `total` note_t to the server. Flow control: the casts go in batches
// of `batch`, each followed by a sync call; at most `credit` batches are unacknowledged.
// (A self-sent "continue" would not bound anything: CAF's default max-throughput is
// unlimited, so the sender would drain its own continues and flood the mailbox.)
double bench_warren_cast(caf::actor_system& sys, long total, long batch, int credit) {
  std::promise<clk::time_point> done;
  auto fut = done.get_future();
  auto hdl = warren::spawn_server<bench_server>(sys, &done, total);
  if (!hdl)
    fail("spawn_server", hdl.error());
  warren::server_ref<bench_server> ref{*hdl};
  auto t0 = clk::now();
  auto sender = sys.spawn([ref, total, batch, credit](caf::event_based_actor* self) {
    auto sent = std::make_shared<long>(0);
    auto step = std::make_shared<std::function<void()>>();
    *step = [self, ref, total, batch, sent, s = step.get()] {
      if (*sent == total)
        return;
      auto n = std::min(batch, total - *sent);
      for (long i = 0; i < n; ++i)
        warren::cast(ref, note_t{});
      *sent += n;
      warren::async_call(self, ref, sync_t{}, warren::infinity)
          .then([s](long) { (*s)(); }, [](const caf::error& e) { fail("sync", e); });
    };
    self->attach_functor([step] {}); // keeps `step` alive as long as the actor
    for (int i = 0; i < credit; ++i)
      (*step)();
  });
  auto t1 = fut.get();
  auto secs = std::chrono::duration<double>(t1 - t0).count();
  caf::anon_send_exit(sender, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(*hdl, caf::exit_reason::user_shutdown);
  return total / secs;
}

// Raw CAF yardstick for casts: anon_send of an int (or, with `same_wire`, of warren's
// cast message (cast_atom, note_t)), same batching and flow control.
double bench_caf_cast(caf::actor_system& sys, long total, long batch, int credit, bool same_wire) {
  std::promise<clk::time_point> done;
  auto fut = done.get_future();
  auto srv = sys.spawn([&done, total](caf::event_based_actor*) -> caf::behavior {
    auto n = std::make_shared<long>(0);
    auto count = [n, &done, total] {
      if (++*n == total)
        done.set_value(clk::now());
    };
    return {[count](int) { count(); }, [count](warren::cast_atom, const note_t&) { count(); },
            [n](caf::unit_t) { return *n; }};
  });
  auto t0 = clk::now();
  auto sender = sys.spawn([srv, total, batch, credit, same_wire](caf::event_based_actor* self) {
    auto sent = std::make_shared<long>(0);
    auto step = std::make_shared<std::function<void()>>();
    *step = [self, srv, total, batch, sent, same_wire, s = step.get()] {
      if (*sent == total)
        return;
      auto n = std::min(batch, total - *sent);
      if (same_wire)
        for (long i = 0; i < n; ++i)
          caf::anon_send(srv, warren::cast_atom::value, note_t{});
      else
        for (long i = 0; i < n; ++i)
          caf::anon_send(srv, 1);
      *sent += n;
      self->request(srv, caf::infinite, caf::unit)
          .then([s](long) { (*s)(); }, [](caf::error& e) { fail("sync", e); });
    };
    self->attach_functor([step] {});
    for (int i = 0; i < credit; ++i)
      (*step)();
  });
  auto t1 = fut.get();
  auto secs = std::chrono::duration<double>(t1 - t0).count();
  caf::anon_send_exit(sender, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(srv, caf::exit_reason::user_shutdown);
  return total / secs;
}

} // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  warren::set_log_level(spdlog::level::critical);
  int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  std::string only = argc > 2 ? argv[2] : "";
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", threads);
  caf::actor_system sys{cfg};
  std::printf("warren server benchmarks, %d scheduler threads\n", threads);
  constexpr long calls = 1'000'000;
  constexpr long casts = 10'000'000;
  for (int round = 0; round < 3; ++round) {
    if (only.empty() || only == "call") {
      std::printf("warren call, 1 outstanding, 5s timeout (default)  (1000000 calls): %.0f calls/s\n",
                  bench_warren_call(sys, calls, 1, warren::default_call_timeout));
      std::printf("warren call, 1 outstanding, no timeout (infinity) (1000000 calls): %.0f calls/s\n",
                  bench_warren_call(sys, calls, 1, warren::infinity));
      std::printf("warren call, 16 in flight, 5s timeout (default)   (1000000 calls): %.0f calls/s\n",
                  bench_warren_call(sys, calls, 16, warren::default_call_timeout));
      std::printf("warren call, 16 in flight, no timeout (infinity)  (1000000 calls): %.0f calls/s\n",
                  bench_warren_call(sys, calls, 16, warren::infinity));
      std::printf("raw CAF request, 1 outstanding, caf::infinite     (1000000 calls): %.0f calls/s\n",
                  bench_caf_call(sys, calls, 1, caf::infinite));
      std::printf("raw CAF request, 1 outstanding, 5s timeout        (1000000 calls): %.0f calls/s\n",
                  bench_caf_call(sys, calls, 1, caf::duration{5s}));
      std::printf("raw CAF request, 16 in flight, caf::infinite      (1000000 calls): %.0f calls/s\n",
                  bench_caf_call(sys, calls, 16, caf::infinite));
    }
    if (only.empty() || only == "cast") {
      std::printf("warren cast, one sender (10000000 casts, batches of 1000, 16 unacked): %.0f casts/s\n",
                  bench_warren_cast(sys, casts, 1000, 16));
      std::printf("raw CAF anon_send int, one sender (10000000 msgs, same batching):    %.0f msgs/s\n",
                  bench_caf_cast(sys, casts, 1000, 16, false));
      std::printf("raw CAF anon_send (wcast, note_t), same wire message as warren::cast: %.0f msgs/s\n",
                  bench_caf_cast(sys, casts, 1000, 16, true));
    }
  }
  return 0;
}
