// Supervisor benchmarks (plain binary, Release build; see docs/benchmarks.md):
//   start_child under simple_one_for_one      children/s
//   crash -> restart of one permanent child   cycles/s (the restarted child announces itself)
//   memory per idle supervised actor          bytes, over 100,000 children, vs bare CAF actors
#include <warren/log.hpp>
#include <warren/supervisor.hpp>

#include <caf/all.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <limits>
#include <string>
#include <unistd.h>

using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

namespace {

using hello_atom = caf::atom_constant<caf::atom("hello")>;
using crash_atom = caf::atom_constant<caf::atom("crash")>;
using go_atom = caf::atom_constant<caf::atom("go")>;

caf::behavior idle_actor(caf::event_based_actor*) {
  return {[](int) {}};
}

long rss_bytes() {
  std::ifstream in{"/proc/self/statm"};
  long size = 0, resident = 0;
  in >> size >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

double seconds_since(clk::time_point t0) {
  return std::chrono::duration<double>(clk::now() - t0).count();
}

// Keeps `window` start_child requests in flight until `total` children exist.
double bench_start_child(caf::actor_system& sys, int total, int window) {
  warren::supervisor_flags flags;
  flags.strategy = warren::restart_strategy::simple_one_for_one;
  warren::child_spec tmpl;
  tmpl.id = "idle";
  tmpl.start = warren::spawn_fn_of(idle_actor);
  tmpl.restart = warren::restart_type::temporary;
  auto sup = *warren::start_supervisor(sys, flags, {tmpl}, "bench");
  std::promise<double> done;
  auto fut = done.get_future();
  sys.spawn([&, sup](caf::event_based_actor* self) -> caf::behavior {
    auto sent = std::make_shared<int>(0);
    auto got = std::make_shared<int>(0);
    auto t0 = std::make_shared<clk::time_point>();
    auto issue = std::make_shared<std::function<void()>>();
    *issue = [=, &done] {
      ++*sent;
      self->request(sup, caf::infinite, warren::start_child_atom::value, caf::message{})
          .then([=, &done](caf::actor&) {
            if (++*got == total) {
              done.set_value(seconds_since(*t0));
              self->quit();
            } else if (*sent < total) {
              (*issue)();
            }
          });
    };
    *t0 = clk::now();
    for (int i = 0; i < window && i < total; ++i)
      (*issue)();
    return {[](int) {}};
  });
  auto secs = fut.get();
  warren::sup::stop(sys, sup);
  return total / secs;
}

// One permanent child: crash it, wait for its successor's hello, repeat.
double bench_restart(caf::actor_system& sys, int cycles) {
  std::promise<double> done;
  auto fut = done.get_future();
  auto driver = sys.spawn([&](caf::event_based_actor* self) -> caf::behavior {
    auto n = std::make_shared<int>(-1);
    auto t0 = std::make_shared<clk::time_point>();
    return {[=, &done](hello_atom, const caf::actor& child) {
      if (++*n == 0)
        *t0 = clk::now();
      if (*n == cycles) {
        done.set_value(seconds_since(*t0));
        return;
      }
      self->send(child, crash_atom::value);
    }};
  });
  warren::supervisor_flags flags;
  flags.intensity = std::numeric_limits<int>::max();
  flags.period = 1s;
  warren::child_spec spec;
  spec.id = "crasher";
  spec.start = [driver](const warren::start_context& ctx) -> warren::start_result {
    return caf::actor{ctx.system().spawn(
        [driver](caf::event_based_actor* self, int) -> caf::behavior {
          self->send(driver, hello_atom::value, caf::actor_cast<caf::actor>(self));
          return {[self](crash_atom) { self->quit(caf::sec::runtime_error); }};
        },
        0)};
  };
  auto sup = *warren::start_supervisor(sys, flags, {spec}, "bench");
  auto secs = fut.get();
  warren::sup::stop(sys, sup);
  caf::anon_send_exit(driver, caf::exit_reason::kill);
  return cycles / secs;
}

// RSS growth per idle child: supervised (simple_one_for_one) and bare CAF.
std::pair<double, double> bench_memory(caf::actor_system& sys, int n) {
  warren::supervisor_flags flags;
  flags.strategy = warren::restart_strategy::simple_one_for_one;
  warren::child_spec tmpl;
  tmpl.id = "idle";
  tmpl.start = warren::spawn_fn_of(idle_actor);
  tmpl.restart = warren::restart_type::permanent;
  auto sup = *warren::start_supervisor(sys, flags, {tmpl}, "bench");
  auto before = rss_bytes();
  for (int i = 0; i < n; ++i)
    warren::sup::start_child(sys, sup, caf::message{});
  auto supervised = static_cast<double>(rss_bytes() - before) / n;
  warren::sup::stop(sys, sup);
  std::vector<caf::actor> bare;
  bare.reserve(n);
  before = rss_bytes();
  for (int i = 0; i < n; ++i)
    bare.push_back(sys.spawn([](caf::event_based_actor* self, int) { return idle_actor(self); }, 0));
  auto raw = static_cast<double>(rss_bytes() - before) / n;
  for (auto& a : bare)
    caf::anon_send_exit(a, caf::exit_reason::kill);
  return {supervised, raw};
}

} // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  warren::set_log_level(spdlog::level::critical);
  int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", threads);
  // Optional CAF work-stealing tuning from the environment, e.g.
  // WARREN_WS="aggressive-poll-attempts=10,aggressive-steal-interval=50".
  if (const char* ws = std::getenv("WARREN_WS")) {
    std::string spec{ws};
    for (size_t pos = 0; pos < spec.size();) {
      auto end = spec.find(',', pos);
      auto item = spec.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
      auto eq = item.find('=');
      if (eq != std::string::npos)
        cfg.set("work-stealing." + item.substr(0, eq), static_cast<size_t>(std::stoul(item.substr(eq + 1))));
      pos = end == std::string::npos ? spec.size() : end + 1;
    }
  }
  caf::actor_system sys{cfg};
  std::string only = argc > 2 ? argv[2] : "";
  std::printf("warren supervisor benchmarks, %d scheduler threads\n", threads);
  if (only.empty() || only == "memory") {
    // First, before other runs leave freed memory for malloc to reuse.
    auto [supervised, raw] = bench_memory(sys, 100000);
    std::printf("memory per idle supervised actor (100000): %.0f bytes (bare CAF actor: %.0f bytes)\n",
                supervised, raw);
  }
  for (int round = 0; round < 3 && only != "memory"; ++round) {
    if (only.empty() || only == "start")
      std::printf("start_child (simple_one_for_one, 200000 children, 64 in flight): %.0f children/s\n",
                  bench_start_child(sys, 200000, 64));
    if (only.empty() || only == "restart")
      std::printf("crash->restart cycles (one permanent child, 200000 cycles):       %.0f cycles/s\n",
                  bench_restart(sys, 200000));
  }
  return 0;
}
