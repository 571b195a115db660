#include "warren/application.hpp"

#include "warren/exit.hpp"
#include "warren/log.hpp"

#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <csignal>
#include <thread>
#include <unistd.h>

namespace warren {

namespace {

// Self-pipe: the signal handler only writes a byte, a helper thread does the rest.
int signal_pipe[2] = {-1, -1};

extern "C" void on_stop_signal(int signo) {
  auto byte = static_cast<char>(signo);
  [[maybe_unused]] auto n = ::write(signal_pipe[1], &byte, 1);
}

} // namespace

application::application(caf::actor_system& sys, std::string name) : sys_(sys), name_(std::move(name)) {}

application::~application() {
  // A tree that run() did not wait for is stopped, so the actor system can shut down.
  if (top_ && !finished_)
    stop();
}

caf::error application::start(supervisor_flags flags, std::vector<child_spec> children) {
  auto res = start_supervisor(sys_, flags, std::move(children), name_);
  if (!res) {
    start_error_ = res.error();
    log().critical("application {}: failed to start: {}", name_, caf::to_string(start_error_));
    return start_error_;
  }
  top_ = *res;
  log().info("application {}: started", name_);
  return {};
}

void application::stop() {
  stop_requested_ = true;
  if (top_)
    caf::anon_send_exit(top_, caf::exit_reason::user_shutdown);
}

int application::run(bool handle_signals) {
  if (!top_)
    return exit_start_failed;
  caf::scoped_actor self{sys_};
  self->monitor(top_);
  std::thread signal_thread;
  struct sigaction old_int {
  }, old_term{};
  if (handle_signals && ::pipe(signal_pipe) == 0) {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    signal_thread = std::thread{[this] {
      char byte = 0;
      while (::read(signal_pipe[0], &byte, 1) == 1) {
        if (byte == 0)
          return; // run() is done
        log().info("application {}: {} received, stopping", name_, byte == SIGINT ? "SIGINT" : "SIGTERM");
        stop();
      }
    }};
  }
  self->receive([&](caf::down_msg& msg) { reason_ = std::move(msg.reason); });
  if (signal_thread.joinable()) {
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);
    char quit = 0;
    [[maybe_unused]] auto n = ::write(signal_pipe[1], &quit, 1);
    signal_thread.join();
    ::close(signal_pipe[0]);
    ::close(signal_pipe[1]);
    signal_pipe[0] = signal_pipe[1] = -1;
  }
  finished_ = true;
  if (stop_requested_) {
    log().info("application {}: stopped ({})", name_, describe_exit(reason_));
    return exit_stopped;
  }
  log().critical("application {}: supervision tree terminated: {}", name_, describe_exit(reason_));
  return exit_failed;
}

} // namespace warren
