// warren-loadgen: entry point. Parses flags, raises RLIMIT_NOFILE, starts one Worker per io thread,
// prints a progress line every second, stops at --duration (always), then reports.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <thread>
#include <vector>

#include "options.hpp"
#include "report.hpp"
#include "tls.hpp"
#include "worker.hpp"

using namespace warren::loadgen;

namespace {

std::atomic<bool> g_interrupted{false};
extern "C" void on_signal(int) {
  g_interrupted.store(true);
}

std::uint64_t raise_nofile() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit want = rl;
    want.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &want) == 0)
      rl = want;
  }
  return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : rl.rlim_cur;
}

Totals counters(const std::vector<std::unique_ptr<Worker>>& ws) {
  Totals t;
  for (auto& w : ws)
    t.add_counters(w->stats);
  return t;
}

} // namespace

int main(int argc, char** argv) {
  int code = 0;
  auto parsed = parse_options(argc, argv, &code);
  if (!parsed)
    return code;
  const Options& o = *parsed;

  const std::uint64_t nofile = raise_nofile();
  const std::uint64_t want_fds = o.workload == Workload::churn ? o.max_inflight : o.connections.value_or(0);
  if (want_fds + 64 > nofile)
    std::fprintf(stderr,
                 "warning: RLIMIT_NOFILE is %llu; %llu connections need more. Split the run over several "
                 "processes (see docs/loadgen.md).\n",
                 static_cast<unsigned long long>(nofile), static_cast<unsigned long long>(want_fds));

  std::unique_ptr<asio::ssl::context> tls;
  try {
    tls = make_tls_context(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "warren-loadgen: TLS setup failed: %s\n", e.what());
    return 2;
  }

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGPIPE, SIG_IGN);

  const auto start = Clock::now();
  std::vector<std::unique_ptr<Worker>> workers;
  for (unsigned i = 0; i < o.threads; ++i)
    workers.push_back(std::make_unique<Worker>(o, tls.get(), i, start));
  std::vector<std::thread> threads;
  for (auto& w : workers)
    threads.emplace_back([&w] { w->run(); });

  using namespace std::chrono;
  const auto stop_at = start + duration_cast<Clock::duration>(duration<double>(o.duration));
  const double grace = (o.workload == Workload::churn ? o.drain : 0) + 2.0;
  auto hard_at = stop_at + duration_cast<Clock::duration>(duration<double>(grace));
  bool stopped = false, killed = false;
  auto stop_time = Clock::time_point::max();
  auto next_progress = start + seconds(1);
  Totals prev;
  auto prev_t = start;

  for (;;) {
    const auto now = Clock::now();
    const bool all_done = std::all_of(workers.begin(), workers.end(), [](auto& w) { return w->done(); });
    if (all_done)
      break;
    if (!stopped && (now >= stop_at || g_interrupted.load())) {
      stopped = true;
      stop_time = now;
      if (now < stop_at) // interrupted: the hard deadline counts from now
        hard_at = now + duration_cast<Clock::duration>(duration<double>(grace));
      for (auto& w : workers)
        w->stop();
    }
    if (now >= hard_at) {
      killed = true;
      for (auto& w : workers)
        w->kill();
      break;
    }
    if (!o.quiet && now >= next_progress) {
      const Totals t = counters(workers);
      const double dt = duration<double>(now - prev_t).count();
      const double conn_rate = double(t.completed - prev.completed) / dt;
      const double msg_rate = double(t.messages - prev.messages) / dt;
      std::fprintf(
          stderr,
          "[%5.1fs] %s/s %8.0f  msg/s %9.0f  attempted %llu  completed %llu  failed %llu  open %llu  "
          "inflight %llu%s\n",
          duration<double>(now - start).count(), o.workload == Workload::churn ? "conn" : "open", conn_rate,
          msg_rate, static_cast<unsigned long long>(t.attempted),
          static_cast<unsigned long long>(t.completed), static_cast<unsigned long long>(t.failed),
          static_cast<unsigned long long>(t.open), static_cast<unsigned long long>(t.inflight),
          t.violations ? "  VIOLATIONS" : "");
      prev = t;
      prev_t = now;
      next_progress += seconds(1);
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  for (auto& t : threads)
    t.join();
  const auto end = Clock::now();

  Totals t = counters(workers);
  Clock::time_point last{};
  for (auto& w : workers) {
    t.add_histograms(w->stats);
    last = std::max(last, w->last_event);
  }
  RunInfo info;
  info.elapsed_s = duration<double>(end - start).count();
  info.active_s = last > start ? duration<double>(last - start).count() : info.elapsed_s;
  info.message_s = info.active_s;
  if (o.workload != Workload::churn) // messages flow until the stop
    info.message_s = duration<double>(std::min(end, stop_time) - start).count();
  info.nofile = nofile;
  info.killed = killed;
  if (!o.connect_log.empty()) {
    std::FILE* f = std::fopen(o.connect_log.c_str(), "w");
    if (f == nullptr) {
      std::fprintf(stderr, "warren-loadgen: cannot write %s\n", o.connect_log.c_str());
    } else {
      for (auto& w : workers)
        std::fwrite(w->connect_log.data(), 1, w->connect_log.size(), f);
      std::fclose(f);
    }
  }
  print_summary(o, t, info);
  std::cout << make_json(o, t, info).dump() << std::endl;
  workers.clear();
  return killed ? 3 : 0;
}
