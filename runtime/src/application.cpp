#include "warren/application.hpp"

#include "warren/exit.hpp"
#include "warren/log.hpp"

#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <atomic>
#include <csignal>
#include <unistd.h>

namespace warren {

namespace {

// Self-pipe: the signal handler only writes a byte, a helper thread does the rest.
// Signals are process-wide, so one application at a time owns them.
int signal_pipe[2] = {-1, -1};
std::atomic<bool> signals_owned{false};

extern "C" void on_stop_signal(int signo) {
  auto byte = static_cast<char>(signo);
  [[maybe_unused]] auto n = ::write(signal_pipe[1], &byte, 1);
}

} // namespace

application::application(caf::actor_system& sys, std::string name, bool handle_signals)
  : sys_(sys), name_(std::move(name)), handle_signals_(handle_signals) {}

application::~application() {
  // A tree that run() did not wait for is stopped, so the actor system can shut down.
  if (top_ && !finished_)
    stop();
  uninstall_signals();
}

caf::error application::start(supervisor_flags flags, std::vector<child_spec> children) {
  auto res = start_supervisor(sys_, flags, std::move(children), name_);
  if (!res) {
    start_error_ = res.error();
    log().critical("application {}: failed to start: {}", name_, caf::to_string(start_error_));
    return start_error_;
  }
  top_ = *res;
  // From here on SIGINT/SIGTERM stop the tree, even before run() is called.
  if (handle_signals_)
    install_signals();
  log().info("application {}: started", name_);
  return {};
}

void application::install_signals() {
  if (signal_thread_.joinable())
    return;
  if (signals_owned.exchange(true)) {
    log().warn("application {}: another application handles SIGINT/SIGTERM; this one does not", name_);
    return;
  }
  if (::pipe(signal_pipe) != 0) {
    log().error("application {}: cannot create the signal pipe; SIGINT/SIGTERM not handled", name_);
    signals_owned = false;
    return;
  }
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int_);
  sigaction(SIGTERM, &sa, &old_term_);
  signal_thread_ = std::thread{[this] {
    char byte = 0;
    while (::read(signal_pipe[0], &byte, 1) == 1) {
      if (byte == 0)
        return; // uninstall_signals()
      log().info("application {}: {} received, stopping", name_, byte == SIGINT ? "SIGINT" : "SIGTERM");
      stop();
    }
  }};
}

void application::uninstall_signals() {
  if (!signal_thread_.joinable())
    return;
  sigaction(SIGINT, &old_int_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
  char quit = 0;
  [[maybe_unused]] auto n = ::write(signal_pipe[1], &quit, 1);
  signal_thread_.join();
  ::close(signal_pipe[0]);
  ::close(signal_pipe[1]);
  signal_pipe[0] = signal_pipe[1] = -1;
  signals_owned = false;
}

void application::stop() {
  stop_requested_ = true;
  if (top_)
    caf::anon_send_exit(top_, caf::exit_reason::user_shutdown);
}

int application::run() {
  if (!top_)
    return exit_start_failed;
  caf::scoped_actor self{sys_};
  self->monitor(top_);
  self->receive([&](caf::down_msg& msg) { reason_ = std::move(msg.reason); });
  uninstall_signals();
  finished_ = true;
  if (stop_requested_) {
    log().info("application {}: stopped ({})", name_, describe_exit(reason_));
    return exit_stopped;
  }
  log().critical("application {}: supervision tree terminated: {}", name_, describe_exit(reason_));
  return exit_failed;
}

} // namespace warren
