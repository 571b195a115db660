#include "warren/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <atomic>
#include <mutex>

namespace warren {

namespace {

std::mutex logger_mtx;
std::shared_ptr<spdlog::logger> current;

std::shared_ptr<spdlog::logger> make_default() {
  auto logger =
      std::make_shared<spdlog::logger>("warren", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  logger->set_level(spdlog::level::info);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  return logger;
}

// The hot path reads this pointer without a lock; loggers are never destroyed while
// installed because `current` keeps the last one alive.
std::atomic<spdlog::logger*> fast{nullptr};

} // namespace

spdlog::logger& log() {
  if (auto* ptr = fast.load(std::memory_order_acquire))
    return *ptr;
  std::lock_guard<std::mutex> guard{logger_mtx};
  if (!current)
    current = make_default();
  fast.store(current.get(), std::memory_order_release);
  return *current;
}

void set_logger(std::shared_ptr<spdlog::logger> logger) {
  std::lock_guard<std::mutex> guard{logger_mtx};
  // Keep replaced loggers alive: another thread may still hold a reference.
  static std::vector<std::shared_ptr<spdlog::logger>> retired;
  if (current)
    retired.push_back(current);
  current = std::move(logger);
  fast.store(current.get(), std::memory_order_release);
}

void set_log_level(spdlog::level::level_enum level) {
  log().set_level(level);
}

} // namespace warren
