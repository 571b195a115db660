// Honest skips: a test that cannot run here (no broker, no nats-server, no openssl
// binary) says so and ctest reports it "Skipped", never "Passed".
//
// The executable exits with 77 (ctest's SKIP_RETURN_CODE, set by warren_add_tests)
// when something was skipped and nothing failed; a failure still exits non-zero as
// usual. ctest skips per executable, so one skipped case marks the whole executable
// skipped: the cases that did run are listed in its output.
#pragma once

#include <string>

namespace warren_test {

/// The exit code ctest reads as "skipped".
inline constexpr int skip_exit_code = 77;

/// Records that the running test case was skipped, and why (printed at once and
/// again at exit). The case must return right after: use WARREN_TEST_SKIP.
void skip(const std::string& reason);

/// Registers a condition the whole executable needs, checked before any case runs:
/// when `met()` is false, no case runs and the executable exits skipped with `reason`.
/// Meant for a namespace-scope initializer in a support header.
bool require_before_run(bool (*met)(), const char* reason);

} // namespace warren_test

/// Skips the current test case with `reason` (a std::string or C string).
#define WARREN_TEST_SKIP(reason)                                                                             \
  do {                                                                                                       \
    ::warren_test::skip(reason);                                                                             \
    return;                                                                                                  \
  } while (false)
