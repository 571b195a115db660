// The main() of every doctest executable.
// - SIGPIPE is ignored: writing to a socket the peer already closed must fail that
//   write (EPIPE), not kill the test process; clients in the tests (raw OpenSSL,
//   pipes to openssl s_client) write after the server may have closed on purpose.
// - stdout is unbuffered, and a watchdog names the running test case and aborts if
//   the executable outlives WARREN_TEST_WATCHDOG seconds (default 280, below ctest's
//   300 s timeout): a hang becomes a failure that says where it hung.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

namespace {

std::mutex current_mtx;
std::string current_case = "(none yet)";

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
  return doctest::Context(argc, argv).run();
}
