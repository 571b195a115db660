// warren-net-echo: the echo protocol on a supervised listener, for smoke and load
// tests with warren-loadgen.
//   warren-net-echo PORT [CERT KEY]   (TLS when a certificate is given)
// Prints the counters every second; stops on SIGINT/SIGTERM with a 2 s drain.
#include <warren/log.hpp>
#include <warren/net/echo.hpp>
#include <warren/net/listener.hpp>
#include <warren/supervisor.hpp>

#include <caf/all.hpp>

#include <csignal>
#include <cstdio>
#include <string>
#include <thread>

namespace {
volatile std::sig_atomic_t stop_requested = 0;
void on_signal(int) {
  stop_requested = 1;
}
} // namespace

int main(int argc, char** argv) {
  using namespace warren;
  if (argc != 2 && argc != 4) {
    std::fprintf(stderr, "usage: %s PORT [CERT KEY]\n", argv[0]);
    return 2;
  }
  set_log_level(spdlog::level::warn);
  net::io_pool pool; // before the actor system: outlives it
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  net::listener_options opts;
  opts.port = static_cast<uint16_t>(std::stoi(argv[1]));
  if (argc == 4) {
    net::tls_options t;
    t.cert_file = argv[2];
    t.key_file = argv[3];
    opts.tls = t;
  }
  auto top = start_supervisor(sys, {}, {net::listener_child("echo", pool, opts, net::echo_factory())}, "top");
  if (!top) {
    std::fprintf(stderr, "start failed: %s\n", describe_exit(top.error()).c_str());
    return 1;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::printf("listening on %u (%zu io threads)\n", static_cast<unsigned>(*net::listener::port(sys, "echo")),
              pool.size());
  std::fflush(stdout);
  while (stop_requested == 0) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    if (auto c = net::listener::counters(sys, "echo"))
      std::printf("accepted %lu active %lu closed %lu hs_fail %lu frames in %lu out %lu overflow %lu\n",
                  c->accepted, c->active, c->closed, c->handshake_failures(), c->frames_in, c->frames_out,
                  c->overflow_closes);
    std::fflush(stdout);
  }
  net::listener::drain(sys, "echo", std::chrono::seconds(2));
  sup::stop(sys, *top);
  return 0;
}
