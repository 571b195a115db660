// Warren's one logging facility: an spdlog logger named "warren".
#pragma once

#include <spdlog/spdlog.h>

#include <memory>

namespace warren {

/// The logger every Warren component writes to. Created on first use (stderr,
/// colour when a terminal) unless the user installed one with set_logger().
spdlog::logger& log();

/// Replace the logger (e.g. to log to a file or capture reports in a test).
void set_logger(std::shared_ptr<spdlog::logger> logger);

/// Set the level of Warren's logger (trace, debug, info, warn, error, critical, off).
void set_log_level(spdlog::level::level_enum level);

} // namespace warren
