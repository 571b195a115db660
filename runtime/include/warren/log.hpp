// Warren's one logging facility: an spdlog logger named "warren".
#pragma once

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

namespace warren {

/// The logger every Warren component writes to. Created on first use (stderr,
/// colour when a terminal) unless the user installed one with set_logger().
spdlog::logger& log();

/// Replace the logger (e.g. to log to a file or capture reports in a test).
void set_logger(std::shared_ptr<spdlog::logger> logger);

/// Set the level of Warren's logger (trace, debug, info, warn, error, critical, off).
void set_log_level(spdlog::level::level_enum level);

/// Rate limit for a log line that a failure can repeat thousands of times a second:
/// one line per interval goes out, the others are counted, and the next line says how
/// many were held back. Thread-safe.
///
///   static log_limit limit;
///   if (uint64_t held; limit.allow(held))
///     log().warn("... ({} more since the last report)", held);
class log_limit {
public:
  explicit log_limit(std::chrono::steady_clock::duration interval = std::chrono::seconds(10))
    : interval_(interval.count()) {}

  /// True when a line may go out now; `held` is how many were refused since the last.
  bool allow(uint64_t& held) {
    auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    auto next = next_.load(std::memory_order_relaxed);
    if (now < next || !next_.compare_exchange_strong(next, now + interval_, std::memory_order_relaxed)) {
      held_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    held = held_.exchange(0, std::memory_order_relaxed);
    return true;
  }

private:
  std::chrono::steady_clock::rep interval_;
  std::atomic<std::chrono::steady_clock::rep> next_{0};
  std::atomic<uint64_t> held_{0};
};

} // namespace warren
