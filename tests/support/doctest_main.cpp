// The main() of every doctest executable.
// - SIGPIPE is ignored: writing to a socket the peer already closed must fail that
//   write (EPIPE), not kill the test process; clients in the tests (raw OpenSSL,
//   pipes to openssl s_client) write after the server may have closed on purpose.
// - stdout is unbuffered, and a watchdog names the running test case and aborts if
//   the executable outlives WARREN_TEST_WATCHDOG seconds (default 280, below ctest's
//   300 s timeout): a hang becomes a failure that says where it hung.
// - Skips (warren_test/skip.hpp) turn a passing run into exit code 77, which ctest
//   reports as "Skipped".
#define DOCTEST_CONFIG_IMPLEMENT
#include "warren_test/skip.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

std::mutex current_mtx;
std::string current_case = "(none yet)";
std::vector<std::string> skips; // "<case>: <reason>", guarded by current_mtx

std::vector<std::pair<bool (*)(), const char*>>& requirements() {
  static std::vector<std::pair<bool (*)(), const char*>> all; // filled by static initializers
  return all;
}

struct case_tracker : doctest::IReporter {
  explicit case_tracker(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData& tc) override {
    std::lock_guard<std::mutex> guard{current_mtx};
    current_case = tc.m_name;
  }
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

} // namespace

REGISTER_LISTENER("warren_case_tracker", 1, case_tracker);

namespace warren_test {

void skip(const std::string& reason) {
  std::lock_guard<std::mutex> guard{current_mtx};
  std::fprintf(stderr, "SKIPPED %s: %s\n", current_case.c_str(), reason.c_str());
  skips.push_back(current_case + ": " + reason);
}

bool require_before_run(bool (*met)(), const char* reason) {
  requirements().emplace_back(met, reason);
  return true;
}

} // namespace warren_test

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  std::setvbuf(stdout, nullptr, _IONBF, 0);
  long limit = 280;
  if (const char* v = std::getenv("WARREN_TEST_WATCHDOG"))
    limit = std::strtol(v, nullptr, 10);
  if (limit > 0) {
    std::thread{[limit] {
      std::this_thread::sleep_for(std::chrono::seconds(limit));
      std::lock_guard<std::mutex> guard{current_mtx};
      std::fprintf(stderr, "watchdog: still running after %ld s, in test case: %s\n", limit,
                   current_case.c_str());
      std::abort();
    }}.detach();
  }
  for (auto& [met, reason] : requirements()) {
    if (!met()) {
      std::fprintf(stderr, "SKIPPED (every test case): %s\n", reason);
      return warren_test::skip_exit_code;
    }
  }
  doctest::Context context(argc, argv);
  int rc = context.run();
  if (context.shouldExit())
    return rc; // --help, --list-test-cases, ...
  std::lock_guard<std::mutex> guard{current_mtx};
  if (rc != 0 || skips.empty())
    return rc;
  std::fprintf(stderr, "%zu test case(s) skipped, so the run is reported as skipped:\n", skips.size());
  for (auto& s : skips)
    std::fprintf(stderr, "  %s\n", s.c_str());
  return warren_test::skip_exit_code;
}
