// warren-net-echo: the echo protocol on a supervised listener, for smoke and load
// tests with warren-loadgen.
//   warren-net-echo [--codec line|frame] PORT [CERT KEY]   (TLS when a certificate is given)
// The codec may also come from the environment: WARREN_CODEC=line|frame (the flag wins).
// For benchmarks (bench/net/compare.sh): WARREN_IO_THREADS and WARREN_SCHED_THREADS
// size the socket loops and CAF's scheduler (default: one per core each);
// WARREN_ECHO_DELAY_US > 0 makes the protocol sleep that long per read batch (a
// deliberately slow handler, for the flooding-client benchmark).
// Prints the counters every second; stops on SIGINT/SIGTERM with a 2 s drain.
#include <warren/log.hpp>
#include <warren/net/echo.hpp>
#include <warren/net/listener.hpp>
#include <warren/net/scheduler.hpp>
#include <warren/supervisor.hpp>

#include <caf/all.hpp>

#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {
volatile std::sig_atomic_t stop_requested = 0;
void on_signal(int) {
  stop_requested = 1;
}

std::size_t env_size(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? static_cast<std::size_t>(std::strtoull(v, nullptr, 10)) : 0;
}

/// The echo protocol, sleeping per batch: a handler slower than the peer.
class slow_echo : public warren::net::echo_protocol {
public:
  explicit slow_echo(std::chrono::microseconds delay) : delay_(delay) {}
  void on_frames(warren::net::connection_context& ctx, std::span<const std::string_view> frames) override {
    std::this_thread::sleep_for(delay_);
    echo_protocol::on_frames(ctx, frames);
  }

private:
  std::chrono::microseconds delay_;
};
} // namespace

int main(int argc, char** argv) {
  using namespace warren;
  std::string codec = std::getenv("WARREN_CODEC") != nullptr ? std::getenv("WARREN_CODEC") : "line";
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--codec" && i + 1 < argc)
      codec = argv[++i];
    else
      args.push_back(std::move(a));
  }
  if ((args.size() != 1 && args.size() != 3) || (codec != "line" && codec != "frame")) {
    std::fprintf(stderr, "usage: %s [--codec line|frame] PORT [CERT KEY]\n", argv[0]);
    return 2;
  }
  set_log_level(spdlog::level::warn);
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max; // one fd per connection
    setrlimit(RLIMIT_NOFILE, &nofile);
  }
  // WARREN_SCHED_BATCH=0: io loops and CAF workers keep SCHED_OTHER (net/scheduler.hpp).
  const char* sb = std::getenv("WARREN_SCHED_BATCH");
  bool sched_batch = sb == nullptr || std::string_view{sb} != "0";
  net::io_pool pool{env_size("WARREN_IO_THREADS"), sched_batch}; // before the actor system: outlives it
  caf::actor_system_config cfg;
  if (auto n = env_size("WARREN_SCHED_THREADS"); n > 0)
    cfg.set("scheduler.max-threads", n);
  if (const char* p = std::getenv("WARREN_SCHED_POLICY"); p != nullptr && *p != '\0')
    cfg.set("scheduler.policy", caf::atom_from_string(p));
  net::tune_scheduler_for_io(cfg, 0, net::default_worker_nice,
                             sched_batch); // WARREN_WS below may override it
  if (const char* ws = std::getenv("WARREN_WS"); ws != nullptr) {
    // "aggressive-poll-attempts=0,moderate-poll-attempts=0,...": CAF work-stealing knobs.
    std::string all = ws;
    for (std::size_t pos = 0; pos < all.size();) {
      auto end = all.find(',', pos);
      auto kv = all.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
      if (auto eq = kv.find('='); eq != std::string::npos) {
        auto key = "work-stealing." + kv.substr(0, eq);
        auto val = std::stoll(kv.substr(eq + 1));
        if (key.find("duration") != std::string::npos)
          cfg.set(key, caf::timespan{std::chrono::microseconds(val)});
        else
          cfg.set(key, static_cast<std::size_t>(val));
      }
      pos = end == std::string::npos ? all.size() : end + 1;
    }
  }
  caf::actor_system sys{cfg};
  net::listener_options opts;
  opts.port = static_cast<uint16_t>(std::stoi(args[0]));
  opts.codec = codec == "frame" ? net::codec_kind::frame : net::codec_kind::line;
  opts.max_connections = 1 << 20; // a benchmark server: the process's open-files limit is the bound
  if (args.size() == 3) {
    net::tls_options t;
    t.cert_file = args[1];
    t.key_file = args[2];
    opts.tls = t;
  }
  if (const char* ai = std::getenv("WARREN_ACK_INTERVAL_US"); ai != nullptr && *ai != '\0')
    opts.ack_interval = std::chrono::microseconds(std::strtoll(ai, nullptr, 10));
  auto factory = net::echo_factory();
  if (auto us = env_size("WARREN_ECHO_DELAY_US"); us > 0)
    factory = [us] { return std::make_unique<slow_echo>(std::chrono::microseconds(us)); };
  auto top = start_supervisor(sys, {}, {net::listener_child("echo", pool, opts, factory)}, "top");
  if (!top) {
    std::fprintf(stderr, "start failed: %s\n", describe_exit(top.error()).c_str());
    return 1;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::printf("listening on %u (%zu io threads, codec %s)\n",
              static_cast<unsigned>(*net::listener::port(sys, "echo")), pool.size(), codec.c_str());
  std::fflush(stdout);
  while (stop_requested == 0) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    if (auto c = net::listener::counters(sys, "echo"))
      std::printf(
          "accepted %lu active %lu closed %lu hs_fail %lu frames in %lu out %lu acks %lu overflow %lu "
          "frame_errors %lu\n",
          c->accepted, c->active, c->closed, c->handshake_failures(), c->frames_in, c->frames_out,
          c->acks_out, c->overflow_closes, c->frame_errors);
    std::fflush(stdout);
  }
  net::listener::drain(sys, "echo", std::chrono::seconds(2));
  sup::stop(sys, *top);
  return 0;
}
