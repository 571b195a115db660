// OTP's application, reduced to what a C++ program needs: start a top-level
// supervision tree, stop it in order on SIGINT/SIGTERM, and tell by the exit code
// whether the tree was stopped or died of escalation.
#pragma once

#include "warren/supervisor.hpp"

#include <caf/actor_system.hpp>

#include <atomic>
#include <csignal>
#include <string>
#include <thread>
#include <vector>

namespace warren {

class application {
public:
  /// Exit codes returned by run().
  static constexpr int exit_stopped = 0; ///< stopped by a signal or stop()
  static constexpr int exit_failed = 1;  ///< the tree terminated by itself (escalation)
  static constexpr int exit_start_failed = 2;

  /// With `handle_signals`, SIGINT and SIGTERM stop the tree in order (children in
  /// reverse start order, each by its shutdown spec) from start() on.
  explicit application(caf::actor_system& sys, std::string name = "application", bool handle_signals = true);
  ~application();
  application(const application&) = delete;
  application& operator=(const application&) = delete;

  /// Starts the top supervisor with its children (synchronously, like
  /// supervisor:start_link). Errors are those of start_supervisor.
  caf::error start(supervisor_flags flags, std::vector<child_spec> children);

  /// Blocks until the tree is gone. Returns exit_stopped, exit_failed or
  /// exit_start_failed.
  int run();

  /// Asks the tree to stop (from any thread); run() then returns exit_stopped.
  void stop();

  /// The top supervisor (null before start()).
  const caf::actor& top() const noexcept { return top_; }

  /// The reason the top supervisor exited with (after run() returned).
  const caf::error& exit_reason() const noexcept { return reason_; }

private:
  caf::actor_system& sys_;
  std::string name_;
  caf::actor top_;
  caf::error reason_;
  caf::error start_error_;
  void install_signals();
  void uninstall_signals();

  bool handle_signals_;
  std::atomic<bool> stop_requested_{false};
  bool finished_ = false;
  std::thread signal_thread_;
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

} // namespace warren
