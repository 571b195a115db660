// Registry benchmarks (plain binary, Release build; see docs/benchmarks.md):
//   register + whereis + unregister of distinct names, 1 and 2 threads   triples/s
//   whereis on a registry holding 100,000 names, 1 and 2 threads        lookups/s
//   send_group fan-out to 10,000 members, 200 rounds                    deliveries/s
// Usage: warren-bench-registry [scheduler-threads] [names|whereis|group]
#include <warren/log.hpp>
#include <warren/registry.hpp>

#include <caf/all.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

using clk = std::chrono::steady_clock;

namespace {

using tick_atom = caf::atom_constant<caf::atom("tick")>;

double seconds_since(clk::time_point t0) {
  return std::chrono::duration<double>(clk::now() - t0).count();
}

[[noreturn]] void fail(const char* what, const caf::error& e) {
  std::fprintf(stderr, "%s: %s\n", what, caf::to_string(e).c_str());
  std::abort();
}

caf::behavior idle_actor(caf::event_based_actor*) {
  return {[](int) {}};
}

std::vector<caf::actor> spawn_idle(caf::actor_system& sys, size_t n) {
  std::vector<caf::actor> xs;
  xs.reserve(n);
  for (size_t i = 0; i < n; ++i)
    xs.push_back(sys.spawn(idle_actor));
  return xs;
}

void kill_all(const std::vector<caf::actor>& xs) {
  for (auto& x : xs)
    caf::anon_send_exit(x, caf::exit_reason::kill);
}

// One worker's share of the triple benchmark: its own actors and names.
struct triple_worker {
  std::vector<caf::actor> actors;
  std::vector<std::string> names;

  triple_worker(caf::actor_system& sys, int tag, size_t pool) : actors(spawn_idle(sys, pool)) {
    names.reserve(pool);
    for (size_t i = 0; i < pool; ++i)
      names.push_back("bench." + std::to_string(tag) + "." + std::to_string(i));
  }

  // Through the free functions, or (`direct`) through the name_service reference that
  // registry.hpp recommends for hot paths (skips the per-call runtime_settings lookup).
  void run(caf::actor_system& sys, long ops, bool direct) {
    if (direct)
      run_on(warren::names(sys), ops);
    else
      run_on(sys, ops);
  }

  void run_on(caf::actor_system& sys, long ops) {
    loop(
        ops, [&](auto& name, auto& who) { return warren::register_name(sys, name, who); },
        [&](auto& name) { return warren::whereis(sys, name); },
        [&](auto& name) { return warren::unregister_name(sys, name); });
  }

  void run_on(warren::name_service& ns, long ops) {
    loop(
        ops, [&](auto& name, auto& who) { return ns.register_name(name, who); },
        [&](auto& name) { return ns.whereis(name); }, [&](auto& name) { return ns.unregister_name(name); });
  }

  template <class Reg, class Find, class Unreg>
  void loop(long ops, Reg reg, Find find, Unreg unreg) {
    auto pool = names.size();
    size_t i = 0;
    for (long n = 0; n < ops; ++n) {
      if (auto err = reg(names[i], actors[i]))
        fail("register_name", err);
      if (find(names[i]) != actors[i])
        fail("whereis", caf::make_error(caf::sec::runtime_error));
      if (auto err = unreg(names[i]))
        fail("unregister_name", err);
      if (++i == pool)
        i = 0;
    }
  }
};

// register+whereis+unregister from `nthreads` std::threads, each `ops` triples.
double bench_triples(caf::actor_system& sys, int nthreads, long ops, size_t pool, bool direct) {
  std::vector<std::unique_ptr<triple_worker>> workers;
  for (int t = 0; t < nthreads; ++t)
    workers.push_back(std::make_unique<triple_worker>(sys, t, pool));
  std::vector<std::thread> threads;
  auto t0 = clk::now();
  for (auto& w : workers)
    threads.emplace_back([&sys, &w, ops, direct] { w->run(sys, ops, direct); });
  for (auto& t : threads)
    t.join();
  auto secs = seconds_since(t0);
  for (auto& w : workers)
    kill_all(w->actors);
  return static_cast<double>(nthreads) * ops / secs;
}

// whereis over `names` (all registered) in a shuffled order, from `nthreads` threads.
double bench_whereis(caf::actor_system& sys, const std::vector<std::string>& names, int nthreads, long ops) {
  std::vector<std::vector<uint32_t>> orders(nthreads);
  for (int t = 0; t < nthreads; ++t) {
    auto& order = orders[t];
    order.resize(names.size());
    for (size_t i = 0; i < order.size(); ++i)
      order[i] = static_cast<uint32_t>(i);
    std::shuffle(order.begin(), order.end(), std::mt19937{static_cast<unsigned>(42 + t)});
  }
  std::atomic<long> misses{0};
  std::vector<std::thread> threads;
  auto t0 = clk::now();
  for (int t = 0; t < nthreads; ++t)
    threads.emplace_back([&, t] {
      auto& order = orders[t];
      size_t i = 0;
      long miss = 0;
      for (long n = 0; n < ops; ++n) {
        if (!warren::whereis(sys, names[order[i]]))
          ++miss;
        if (++i == order.size())
          i = 0;
      }
      misses += miss;
    });
  for (auto& t : threads)
    t.join();
  auto secs = seconds_since(t0);
  if (misses.load() != 0)
    fail("whereis", caf::make_error(caf::sec::runtime_error));
  return static_cast<double>(nthreads) * ops / secs;
}

// `members` actors join one group; an actor broadcasts `rounds` messages to it. Each
// member counts locally; the last member to see its last round fulfils the promise.
double bench_fanout(caf::actor_system& sys, int members, int rounds) {
  std::promise<clk::time_point> done;
  auto fut = done.get_future();
  std::atomic<int> pending{members};
  const std::string group = "bench.fanout";
  std::vector<caf::actor> xs;
  xs.reserve(members);
  for (int i = 0; i < members; ++i) {
    xs.push_back(sys.spawn([&done, &pending, rounds](caf::event_based_actor*) -> caf::behavior {
      auto seen = std::make_shared<int>(0);
      return {[seen, &done, &pending, rounds](tick_atom) {
        if (++*seen == rounds && pending.fetch_sub(1, std::memory_order_acq_rel) == 1)
          done.set_value(clk::now());
      }};
    }));
    if (auto err = warren::join(sys, group, xs.back()))
      fail("join", err);
  }
  std::promise<clk::time_point> started;
  auto t0_fut = started.get_future();
  auto sender = sys.spawn([&](caf::event_based_actor* self) {
    auto msg = caf::make_message(tick_atom::value);
    started.set_value(clk::now());
    for (int r = 0; r < rounds; ++r)
      if (warren::send_group(self, group, msg) != static_cast<size_t>(members))
        fail("send_group", caf::make_error(caf::sec::runtime_error));
  });
  auto t0 = t0_fut.get();
  auto t1 = fut.get();
  for (auto& x : xs)
    if (auto err = warren::leave(sys, group, x))
      fail("leave", err);
  kill_all(xs);
  caf::anon_send_exit(sender, caf::exit_reason::kill);
  return static_cast<double>(members) * rounds / std::chrono::duration<double>(t1 - t0).count();
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
  std::printf("warren registry benchmarks, %d scheduler threads\n", threads);
  constexpr long triples = 1'000'000;
  constexpr size_t pool = 1000;
  constexpr size_t num_names = 100'000;
  constexpr long lookups = 10'000'000;
  std::vector<caf::actor> named;
  std::vector<std::string> names;
  if (only.empty() || only == "whereis") {
    named = spawn_idle(sys, num_names);
    names.reserve(num_names);
    for (size_t i = 0; i < num_names; ++i) {
      names.push_back("svc/" + std::to_string(i));
      if (auto err = warren::register_name(sys, names.back(), named[i]))
        fail("register_name", err);
    }
  }
  std::vector<std::string> hot(names.begin(), names.begin() + std::min<size_t>(names.size(), 1000));
  for (int round = 0; round < 3; ++round) {
    if (only.empty() || only == "names") {
      std::printf("register+whereis+unregister, 1 thread  (1000000 triples, pool 1000): %.0f triples/s\n",
                  bench_triples(sys, 1, triples, pool, false));
      std::printf("register+whereis+unregister, 2 threads (2x1000000 triples, pool 1000): %.0f triples/s\n",
                  bench_triples(sys, 2, triples, pool, false));
      std::printf("  same via names(sys) reference, 1 thread:  %.0f triples/s\n",
                  bench_triples(sys, 1, triples, pool, true));
      std::printf("  same via names(sys) reference, 2 threads: %.0f triples/s\n",
                  bench_triples(sys, 2, triples, pool, true));
    }
    if (only.empty() || only == "whereis") {
      std::printf("whereis, 100000 names, 1 thread  (10000000 lookups):   %.0f lookups/s\n",
                  bench_whereis(sys, names, 1, lookups));
      std::printf("whereis, 100000 names, 2 threads (2x10000000 lookups): %.0f lookups/s\n",
                  bench_whereis(sys, names, 2, lookups));
      std::printf("whereis, 1000 of them (cache-hot), 1 thread (10000000 lookups): %.0f lookups/s\n",
                  bench_whereis(sys, hot, 1, lookups));
    }
    if (only.empty() || only == "group")
      std::printf("send_group fan-out (10000 members x 200 rounds): %.0f deliveries/s\n",
                  bench_fanout(sys, 10000, 200));
  }
  kill_all(named);
  return 0;
}
