// The wall clock, for what is shown to people or compared across hosts (timestamps in
// JSON and logs, cluster claims): not for measuring intervals (use steady_clock).
#pragma once

#include <chrono>
#include <cstdint>

namespace warren {

/// Now, in milliseconds since the Unix epoch.
inline int64_t unix_ms() noexcept {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

/// Now, in microseconds since the Unix epoch.
inline int64_t unix_us() noexcept {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

} // namespace warren
