// warren-gateway: the Warren IoT device gateway. See docs/gateway.md.
//   warren-gateway [-c gateway.toml] [flags]   (--help lists them)
#include "config.hpp"
#include "gateway.hpp"

#include <warren/log.hpp>

#include <csignal>
#include <pthread.h>
#include <thread>

int main(int argc, char** argv) {
  using namespace warren::gateway;
  config cfg;
  if (auto rc = load_config(argc, argv, cfg))
    return *rc;
  warren::set_log_level(spdlog::level::from_str(cfg.log_level));
  if (cfg.raise_nofile)
    raise_nofile_limit();
  // SIGINT/SIGTERM go to one thread (sigwait): block them before any thread starts.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  int rc;
  {
    gateway gw{cfg};
    if (gw.start())
      return warren::application::exit_start_failed;
    std::atomic<bool> done{false};
    std::thread waiter{[&] {
      int sig = 0;
      sigwait(&sigs, &sig);
      if (done)
        return;
      warren::log().info("{}: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
      gw.shutdown();
    }};
    rc = gw.run();
    done = true;
    pthread_kill(waiter.native_handle(), SIGTERM); // wake it if the tree died by itself
    waiter.join();
  }
  warren::log().info("exit {}", rc);
  return rc;
}
