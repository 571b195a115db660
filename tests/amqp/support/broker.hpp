// A private RabbitMQ broker for one test executable: its own node name, AMQP port,
// distribution port, epmd and data directory under /tmp, started on loopback and
// stopped (and removed) when the object goes, also when a test fails. stop()/start()
// keep the data directory, so durable queues and persistent messages survive.
//
// The broker runs /usr/lib/rabbitmq/bin/rabbitmq-server directly (the /usr/sbin
// wrapper would switch to the rabbitmq user and use /var/lib/rabbitmq) in its own
// process group; epmd runs in the foreground on a private port as our child. If this
// process dies without cleaning up (a crash, an abort, a ctest timeout), a small
// watchdog shell notices within a second, kills the broker's process group and epmd
// and removes the directory. (PR_SET_PDEATHSIG alone is not enough: the script forks
// the Erlang VM, and the flag does not survive a fork.)
#pragma once

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

#include <arpa/inet.h>
#include <csignal>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace amqp_test {

using namespace std::chrono_literals;

inline constexpr const char* rabbitmq_server = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// Whether rabbitmq-server (and Erlang) are installed; tests skip only when not.
inline bool broker_installed() {
  return ::access(rabbitmq_server, X_OK) == 0 && std::system("command -v erl >/dev/null 2>&1") == 0;
}

/// 127.0.0.1:`port`.
inline sockaddr_in loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

/// A TCP port nobody uses right now, from 20000–29999: below the kernel's ephemeral
/// range (32768 and up here, net.ipv4.ip_local_port_range), and clear of the ports the
/// benchmark scripts use. The broker binds it seconds later, and again after a restart;
/// a port from the ephemeral range could meanwhile become another test's listener
/// (bound to port 0: a gateway under test got the broker's port once, and the broker's
/// readiness probe connected to it) or a client's source port.
inline uint16_t free_port() {
  static std::atomic<unsigned> calls{0};
  std::mt19937 rng{std::random_device{}() ^ (static_cast<unsigned>(::getpid()) << 12) ^ calls++};
  for (int attempt = 0; attempt < 2000; ++attempt) {
    auto port = static_cast<uint16_t>(20000 + rng() % 10000);
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
      break;
    auto a = loopback(port);
    bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    ::close(fd);
    if (ok)
      return port;
  }
  throw std::runtime_error("free_port: no free port in 20000-29999");
}

inline bool port_accepts(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  auto a = loopback(port);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  ::close(fd);
  return ok;
}

/// Runs a shell command; returns its exit status and stdout.
inline std::pair<int, std::string> run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr)
    return {-1, out};
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0)
    out.append(buf, n);
  int st = ::pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

class broker {
public:
  broker() {
    char tmpl[] = "/tmp/warren-amqp-test-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    static std::atomic<int> counter{0};
    node_ = "warren-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "@localhost";
    std::vector<uint16_t> taken; // four different ports
    for (auto* p : {&port_, &dist_port_, &epmd_port_, &ctl_port_}) {
      do
        *p = free_port();
      while (std::find(taken.begin(), taken.end(), *p) != taken.end());
      taken.push_back(*p);
    }
    std::filesystem::create_directories(dir_ / "home");
    std::filesystem::create_directories(dir_ / "mnesia");
    std::filesystem::create_directories(dir_ / "log");
    {
      std::ofstream cookie{dir_ / "home" / ".erlang.cookie"};
      cookie << "WARRENTESTCOOKIE" << ::getpid();
    }
    ::chmod((dir_ / "home" / ".erlang.cookie").c_str(), 0400);
    std::ofstream{dir_ / "enabled_plugins"} << "[].\n";
    std::ofstream{dir_ / "rabbitmq.conf"} << "log.file.level = info\n"
                                          << "disk_free_limit.absolute = 10MB\n";
    try {
      start_epmd();
      start_watchdog();
      start();
    } catch (...) {
      cleanup();
      throw;
    }
  }

  ~broker() { cleanup(); }

  broker(const broker&) = delete;
  broker& operator=(const broker&) = delete;

  uint16_t port() const noexcept { return port_; }
  const std::string& node() const noexcept { return node_; }
  const std::filesystem::path& dir() const noexcept { return dir_; }
  bool running() const noexcept { return server_pid_ > 0; }

  /// Starts the broker (same node, ports and data as before) and waits until an AMQP
  /// login works.
  void start() {
    if (server_pid_ > 0)
      return;
    start_epmd();
    auto env = environment();
    std::vector<char*> envp;
    for (auto& e : env)
      envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string prog = rabbitmq_server;
    char* argv[] = {prog.data(), nullptr};
    auto log = (dir_ / "server.out").string();
    auto cwd = dir_.string();
    pid_t pid = ::fork();
    if (pid < 0)
      throw std::runtime_error("fork failed");
    if (pid == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      int devnull = ::open("/dev/null", O_RDONLY);
      if (devnull >= 0)
        ::dup2(devnull, 0);
      if (::chdir(cwd.c_str()) != 0)
        ::_exit(126);
      ::execve(argv[0], argv, envp.data());
      ::_exit(127);
    }
    server_pid_ = pid;
    std::ofstream{dir_ / "server.pgid"} << pid << "\n";
    auto deadline = std::chrono::steady_clock::now() + 90s;
    while (std::chrono::steady_clock::now() < deadline) {
      int st = 0;
      if (::waitpid(server_pid_, &st, WNOHANG) == server_pid_) {
        server_pid_ = -1;
        throw std::runtime_error("rabbitmq-server exited during startup; see " + log + ":\n" + tail(log));
      }
      if (port_accepts(port_) && login_works())
        return;
      std::this_thread::sleep_for(100ms);
    }
    stop();
    throw std::runtime_error("rabbitmq-server did not come up within 90 s; see " + log + ":\n" + tail(log));
  }

  /// Stops the broker (SIGTERM: RabbitMQ shuts down cleanly), waits for it, and
  /// kills its process group if it lingers.
  void stop() {
    if (server_pid_ <= 0)
      return;
    ::kill(server_pid_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + 60s;
    int st = 0;
    while (::waitpid(server_pid_, &st, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(-server_pid_, SIGKILL);
        ::waitpid(server_pid_, &st, 0);
        break;
      }
      std::this_thread::sleep_for(50ms);
    }
    ::kill(-server_pid_, SIGKILL); // the VM the script forked, and its helpers
    server_pid_ = -1;
    std::error_code ec;
    std::filesystem::remove(dir_ / "server.pgid", ec);
  }

  /// The server log so far (for failure messages).
  std::string server_log() const { return tail((dir_ / "server.out").string()); }

  /// Runs `rabbitmqctl -n <node> <args>` against this broker; exit status and output.
  std::pair<int, std::string> ctl(const std::string& args) const {
    auto d = dir_.string();
    std::string cmd =
        "env -i PATH=/usr/bin:/bin:/usr/sbin:/sbin LC_ALL=C.UTF-8 LANG=C.UTF-8 HOME=" + d +
        "/home ERL_EPMD_PORT=" + std::to_string(epmd_port_) +
        " RABBITMQ_CTL_DIST_PORT_MIN=" + std::to_string(ctl_port_) +
        " RABBITMQ_CTL_DIST_PORT_MAX=" + std::to_string(ctl_port_) + " RABBITMQ_CONF_ENV_FILE=" + d +
        "/no-such-env-file /usr/lib/rabbitmq/bin/rabbitmqctl -q -n " + node_ + " " + args + " 2>&1";
    return run(cmd);
  }

  /// Prefix for amqp-tools commands: "--server 127.0.0.1 --port N".
  std::string cli_args() const { return "--server 127.0.0.1 --port " + std::to_string(port_); }

private:
  std::vector<std::string> environment() const {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string_view v{*e};
      if (v.starts_with("RABBITMQ_") || v.starts_with("HOME=") || v.starts_with("ERL_"))
        continue;
      env.emplace_back(v);
    }
    auto d = dir_.string();
    env.push_back("HOME=" + d + "/home");
    env.push_back("ERL_EPMD_PORT=" + std::to_string(epmd_port_));
    env.push_back("RABBITMQ_NODENAME=" + node_);
    env.push_back("RABBITMQ_NODE_IP_ADDRESS=127.0.0.1");
    env.push_back("RABBITMQ_NODE_PORT=" + std::to_string(port_));
    env.push_back("RABBITMQ_DIST_PORT=" + std::to_string(dist_port_));
    env.push_back("RABBITMQ_CTL_DIST_PORT_MIN=" + std::to_string(ctl_port_));
    env.push_back("RABBITMQ_CTL_DIST_PORT_MAX=" + std::to_string(ctl_port_));
    env.push_back("RABBITMQ_MNESIA_BASE=" + d + "/mnesia");
    env.push_back("RABBITMQ_LOG_BASE=" + d + "/log");
    env.push_back("RABBITMQ_CONFIG_FILE=" + d + "/rabbitmq.conf");
    env.push_back("RABBITMQ_ENABLED_PLUGINS_FILE=" + d + "/enabled_plugins");
    env.push_back("RABBITMQ_PLUGINS_EXPAND_DIR=" + d + "/plugins-expand");
    env.push_back("RABBITMQ_CONF_ENV_FILE=" + d + "/no-such-env-file");
    env.push_back("RABBITMQ_ADVANCED_CONFIG_FILE=" + d + "/no-such-advanced.config");
    return env;
  }

  void start_epmd() {
    if (epmd_pid_ > 0)
      return;
    auto port = std::to_string(epmd_port_);
    std::string prog = "/usr/bin/epmd";
    if (::access(prog.c_str(), X_OK) != 0)
      prog = run("command -v epmd").second;
    while (!prog.empty() && (prog.back() == '\n' || prog.back() == ' '))
      prog.pop_back();
    std::string a1 = "-port", a2 = port, a3 = "-address", a4 = "127.0.0.1";
    char* argv[] = {prog.data(), a1.data(), a2.data(), a3.data(), a4.data(), nullptr};
    pid_t pid = ::fork();
    if (pid < 0)
      throw std::runtime_error("fork failed");
    if (pid == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      int devnull = ::open("/dev/null", O_RDWR);
      if (devnull >= 0) {
        ::dup2(devnull, 0);
        ::dup2(devnull, 1);
        ::dup2(devnull, 2);
      }
      ::execv(argv[0], argv);
      ::_exit(127);
    }
    epmd_pid_ = pid;
    for (int i = 0; i < 200 && !port_accepts(epmd_port_); ++i)
      std::this_thread::sleep_for(25ms);
  }

  void start_watchdog() {
    auto d = dir_.string();
    std::string script = "while kill -0 " + std::to_string(::getpid()) +
                         " 2>/dev/null; do sleep 1; done; "
                         "[ -f " +
                         d + "/server.pgid ] && kill -KILL -$(cat " + d +
                         "/server.pgid) 2>/dev/null; "
                         "kill -KILL " +
                         std::to_string(epmd_pid_) + " 2>/dev/null; rm -rf " + d;
    std::string sh = "/bin/sh", c = "-c";
    char* argv[] = {sh.data(), c.data(), script.data(), nullptr};
    pid_t pid = ::fork();
    if (pid < 0)
      throw std::runtime_error("fork failed");
    if (pid == 0) {
      ::setsid();
      int devnull = ::open("/dev/null", O_RDWR);
      if (devnull >= 0) {
        ::dup2(devnull, 0);
        ::dup2(devnull, 1);
        ::dup2(devnull, 2);
      }
      ::execv(argv[0], argv);
      ::_exit(127);
    }
    watchdog_pid_ = pid;
  }

  void stop_watchdog() {
    if (watchdog_pid_ <= 0)
      return;
    ::kill(watchdog_pid_, SIGKILL);
    int st = 0;
    ::waitpid(watchdog_pid_, &st, 0);
    watchdog_pid_ = -1;
  }

  void stop_epmd() {
    if (epmd_pid_ <= 0)
      return;
    ::kill(epmd_pid_, SIGKILL);
    int st = 0;
    ::waitpid(epmd_pid_, &st, 0);
    epmd_pid_ = -1;
  }

  bool login_works() const {
    auto conn = amqp_new_connection();
    auto sock = amqp_tcp_socket_new(conn);
    timeval tv{2, 0};
    bool ok = false;
    if (sock && amqp_socket_open_noblock(sock, "127.0.0.1", port_, &tv) == AMQP_STATUS_OK) {
      auto r = amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
      ok = r.reply_type == AMQP_RESPONSE_NORMAL;
      if (ok)
        amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    }
    amqp_destroy_connection(conn);
    return ok;
  }

  static std::string tail(const std::string& file) {
    std::ifstream in{file};
    std::string all{std::istreambuf_iterator<char>{in}, {}};
    return all.size() > 4000 ? all.substr(all.size() - 4000) : all;
  }

  void cleanup() noexcept {
    try {
      stop();
    } catch (...) {
    }
    stop_epmd();
    stop_watchdog();
    std::error_code ec;
    if (!dir_.empty() && std::getenv("WARREN_KEEP_BROKER_DIR") == nullptr)
      std::filesystem::remove_all(dir_, ec);
  }

  std::filesystem::path dir_;
  std::string node_;
  uint16_t port_ = 0, dist_port_ = 0, epmd_port_ = 0, ctl_port_ = 0;
  pid_t server_pid_ = -1;
  pid_t epmd_pid_ = -1;
  pid_t watchdog_pid_ = -1;
};

} // namespace amqp_test
