// An independent TLS client against the listener: `openssl s_client` (TLS 1.3 and
// 1.2) talks line by line to the TLS echo listener through pipes. Skipped (with a
// message) when there is no openssl binary.
#include "net_support.hpp"
#include <warren_test/skip.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <vector>

extern char** environ;

using namespace net_test;

namespace {

std::optional<std::string> find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs{path != nullptr ? path : "/usr/bin:/bin"};
  for (std::string dir; std::getline(dirs, dir, ':');) {
    auto candidate = (std::filesystem::path{dir.empty() ? "." : dir} / name).string();
    if (::access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return std::nullopt;
}

/// A child process with its stdin and stdout on pipes and its stderr in a file.
class child_process {
public:
  child_process(const std::vector<std::string>& argv, const std::string& err_file) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe2 failed");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> args;
    for (auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int rc = ::posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(out[1]);
    to_ = in[1];
    from_ = out[0];
    if (rc != 0) {
      pid_ = -1;
      throw std::runtime_error("posix_spawn failed");
    }
  }

  ~child_process() {
    close_stdin();
    if (from_ >= 0)
      ::close(from_);
    if (pid_ > 0 && !wait_exit(5s)) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  bool write(const std::string& data) {
    std::string_view rest{data};
    while (!rest.empty()) {
      auto n = ::write(to_, rest.data(), rest.size());
      if (n <= 0)
        return false;
      rest.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  void close_stdin() {
    if (to_ >= 0)
      ::close(to_);
    to_ = -1;
  }

  /// The next line of its stdout (without LF), or nothing on EOF or timeout.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout = 10s) {
    auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto pos = buf_.find('\n'); pos != std::string::npos) {
        auto line = buf_.substr(0, pos);
        buf_.erase(0, pos + 1);
        if (!line.empty() && line.back() == '\r')
          line.pop_back();
        return line;
      }
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        return std::nullopt;
      pollfd p{from_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count()) + 1) <= 0)
        continue;
      char tmp[4096];
      auto n = ::read(from_, tmp, sizeof tmp);
      if (n <= 0)
        return std::nullopt;
      buf_.append(tmp, static_cast<std::size_t>(n));
    }
  }

  /// True once it exited (reaped) within the timeout.
  bool wait_exit(std::chrono::milliseconds timeout) {
    auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      int status = 0;
      auto r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || r < 0) {
        pid_ = -1;
        return true;
      }
      if (std::chrono::steady_clock::now() >= until)
        return false;
      std::this_thread::sleep_for(5ms);
    }
  }

private:
  pid_t pid_ = -1;
  int to_ = -1;
  int from_ = -1;
  std::string buf_;
};

std::string slurp(const std::string& file) {
  std::ifstream in{file};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

} // namespace

TEST_CASE("openssl s_client (TLS 1.3 and 1.2) against the TLS line echo listener") {
  auto openssl = find_in_path("openssl");
  if (!openssl)
    WARREN_TEST_SKIP("no openssl binary on PATH (scripts/setup installs openssl)");
  ::signal(SIGPIPE, SIG_IGN); // a dead s_client must fail a check, not kill the test
  net::listener_options opts;
  opts.tls = server_tls();
  fixture f{opts};
  auto err_file = (certs::get().dir / "s_client.err").string();
  uint64_t connections = 0;
  for (std::string version : {"-tls1_3", "-tls1_2"}) {
    CAPTURE(version);
    // -quiet: no session output; -no_ign_eof (after it): exit when stdin closes.
    child_process sc{{*openssl, "s_client", "-connect", "127.0.0.1:" + std::to_string(f.port), version,
                      "-quiet", "-no_ign_eof"},
                     err_file};
    ++connections;
    REQUIRE(sc.write("whoami\n"));
    auto who = sc.read_line();
    if (!who)
      MESSAGE("s_client stderr:\n" << slurp(err_file));
    REQUIRE(who);
    CHECK(*who == (version == "-tls1_3" ? "TLSv1.3|" : "TLSv1.2|"));
    std::string burst;
    for (int i = 0; i < 200; ++i)
      burst += "line " + std::to_string(i) + " " + std::string(static_cast<std::size_t>(i), 'z') + "\n";
    REQUIRE(sc.write(burst));
    for (int i = 0; i < 200; ++i)
      REQUIRE(sc.read_line() ==
              "line " + std::to_string(i) + " " + std::string(static_cast<std::size_t>(i), 'z'));
    sc.close_stdin(); // s_client closes the connection and exits
    CHECK(sc.wait_exit(10s));
    CHECK(f.eventually([&](const auto& x) { return x.closed == connections && x.active == 0; }));
  }
  auto k = f.counters();
  CHECK(k.accepted == 2);
  CHECK(k.handshake_failures() == 0);
  CHECK(k.frames_in == 2 * 201);
}
