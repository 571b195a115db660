// Real nats-server processes for tests: `nats_cluster c{3};` starts three servers on
// 127.0.0.1 that form one NATS cluster (server i dials servers 0..i-1; the full mesh
// follows, see write_config), and stops them
// (and removes their directories) when the object goes, also when a test fails.
// `nats_cluster c{1};` is a single server without a cluster block.
//
// Each server has its own directory under /tmp (nats.conf, server.log, server.pid), a
// client port, a cluster (route) port and a monitoring port, all from 20000-29999 (see
// free_port), and runs /usr/sbin/nats-server -c nats.conf in its own process group with
// stdout and stderr appended to server.log. The config sets ping_interval, ping_max and
// write_deadline from nats_server_options (test defaults "1s", 2, "2s"; nats-server's own
// defaults are 2m, 2, 10s) and has no jetstream block, so JetStream is off.
//
// Ready means: the client port answers with an INFO line, and (in a cluster) the
// monitoring endpoint /routez reports a route to every other running server. The
// constructor, restart(), isolate() and rejoin() wait for that; every wait is bounded
// and a failure throws std::runtime_error with the tail of the server's log.
//
// Failure injection, all on whole processes:
//   kill(i)     SIGKILL and reap: sockets close at once (clients and routes see EOF).
//   stop(i)     SIGTERM (graceful: nats-server closes its clients and routes) and reap.
//   freeze(i)   SIGSTOP: sockets stay open, nothing is read or written, the kernel still
//               accepts connections into the backlog. Peers notice only through PINGs
//               (ping_interval x ping_max) or a blocked write (write_deadline).
//   thaw(i)     SIGCONT.
//   restart(i)  stop (if running), then start again on the same ports with the same
//               config; waits until ready and routed to the running, unfrozen peers.
//   isolate(i)  restart server i with a config that has NO cluster block: it keeps its
//               client and monitoring ports but has no route listener and no routes, so
//               it is its own one-server "cluster". Its clients are disconnected by the
//               restart; a client that reconnects to i (a libnats client may pick any URL
//               it knows) then only reaches the other clients of i, and the clients of
//               the other servers no longer reach i's subscribers (they get no responders
//               for subjects only i's clients serve). The servers that dial i (j > i)
//               keep trying every second and get "connection refused". This is a
//               partition of one server, not of one link: cutting a single route between
//               two live processes is not possible with real processes and no netfilter.
//   rejoin(i)   restart server i with its routes again; waits until they are formed.
//
// A watchdog shell (own session) polls this process once a second; if the test process
// dies without running the destructor (crash, abort, ctest timeout) it SIGKILLs every
// server listed in a server.pid file and removes the directory. (PR_SET_PDEATHSIG is not
// used: it fires when the *thread* that forked exits, so a restart() from a short-lived
// thread would kill the server.) Children close every inherited descriptor above 2
// before exec, so a server does not keep a test's client sockets open.
//
// Not thread-safe: drive one nats_cluster from one thread at a time.
//
// Environment: WARREN_NATS_SERVER overrides the binary; WARREN_KEEP_NATS_DIR keeps the
// directories (logs) after the destructor.
#pragma once

#include "skip.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace warren_test {

namespace nats_detail {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

inline sockaddr_in loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

/// The nats-server binary: $WARREN_NATS_SERVER, else the first executable of the usual
/// places; empty when there is none.
inline std::string server_binary() {
  if (const char* e = std::getenv("WARREN_NATS_SERVER"); e != nullptr && *e != '\0')
    return ::access(e, X_OK) == 0 ? std::string{e} : std::string{};
  for (const char* p : {"/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"})
    if (::access(p, X_OK) == 0)
      return p;
  return {};
}

/// A port nobody uses right now, from 20000-29999, the way tests/amqp/support/broker.hpp
/// picks them: a random candidate that a bind() to 127.0.0.1 accepts (then closed).
/// Not port 0: the kernel would hand out a port from the ephemeral range (32768-60999
/// here), which another test's client may take as its source port, or another test's
/// bind-to-0 listener may get, in the seconds before the server binds it (and again at
/// every restart). Ports handed out by this process are remembered and not repeated, so
/// two clusters in one test binary do not race each other for the same port.
inline uint16_t free_port() {
  static std::mutex mtx;
  static std::set<uint16_t> handed_out;
  static std::atomic<unsigned> calls{0};
  std::mt19937 rng{std::random_device{}() ^ (static_cast<unsigned>(::getpid()) << 12) ^ calls++};
  std::lock_guard<std::mutex> lock{mtx};
  for (int attempt = 0; attempt < 2000; ++attempt) {
    auto port = static_cast<uint16_t>(20000 + rng() % 10000);
    if (handed_out.count(port) != 0)
      continue;
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
      break;
    auto a = loopback(port);
    bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    ::close(fd);
    if (ok) {
      handed_out.insert(port);
      return port;
    }
  }
  throw std::runtime_error("nats_cluster: no free port in 20000-29999");
}

/// A TCP connection to 127.0.0.1:`port` within `timeout`, or -1. Non-blocking connect:
/// a frozen server's full accept backlog would otherwise stall connect() for seconds.
inline int connect_to(uint16_t port, std::chrono::milliseconds timeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return -1;
  auto a = loopback(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    if (errno != EINPROGRESS) {
      ::close(fd);
      return -1;
    }
    pollfd p{fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof(err);
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1 ||
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      ::close(fd);
      return -1;
    }
  }
  return fd;
}

/// Reads from `fd` until `stop` returns true for what was read, EOF, an error, or the
/// deadline.
template <class Stop>
std::string read_until(int fd, clock::time_point deadline, Stop stop) {
  std::string in;
  char buf[4096];
  while (!stop(in)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    if (left <= 0)
      break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) != 1)
      break;
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0)
      break;
    in.append(buf, static_cast<size_t>(n));
  }
  return in;
}

/// Whether 127.0.0.1:`port` accepts a connection and sends nats-server's INFO line.
inline bool info_line(uint16_t port, std::chrono::milliseconds timeout) {
  auto deadline = clock::now() + timeout;
  int fd = connect_to(port, timeout);
  if (fd < 0)
    return false;
  auto in =
      read_until(fd, deadline, [](const std::string& s) { return s.find("\r\n") != std::string::npos; });
  ::close(fd);
  return in.starts_with("INFO ") && in.find("\r\n") != std::string::npos;
}

/// GET `path` from 127.0.0.1:`port` (HTTP/1.0, the server closes after the response).
/// The body on a 200 answer; empty otherwise.
inline std::string http_get(uint16_t port, const std::string& path, std::chrono::milliseconds timeout) {
  auto deadline = clock::now() + timeout;
  int fd = connect_to(port, timeout);
  if (fd < 0)
    return {};
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return {};
  }
  auto in = read_until(fd, deadline, [](const std::string&) { return false; });
  ::close(fd);
  auto head_end = in.find("\r\n\r\n");
  if (head_end == std::string::npos || !(in.starts_with("HTTP/1.0 200") || in.starts_with("HTTP/1.1 200")))
    return {};
  return in.substr(head_end + 4);
}

/// The integer after `"key":` in a JSON text, or -1.
inline long long json_int(const std::string& json, const std::string& key) {
  auto k = json.find("\"" + key + "\"");
  if (k == std::string::npos)
    return -1;
  auto p = json.find(':', k);
  if (p == std::string::npos)
    return -1;
  ++p;
  while (p < json.size() && (json[p] == ' ' || json[p] == '\t' || json[p] == '\n' || json[p] == '\r'))
    ++p;
  char* end = nullptr;
  long long v = std::strtoll(json.c_str() + p, &end, 10);
  return end == json.c_str() + p ? -1 : v;
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in{p, std::ios::binary};
  return std::string{std::istreambuf_iterator<char>{in}, {}};
}

/// Writes getpid() and a newline to `path`; only async-signal-safe calls (runs between
/// fork and exec).
inline void write_pid_file(const char* path) noexcept {
  char buf[24];
  int n = 0;
  char rev[20];
  for (auto v = static_cast<unsigned long>(::getpid()); n == 0 || v > 0; v /= 10)
    rev[n++] = static_cast<char>('0' + v % 10);
  for (int k = 0; k < n; ++k)
    buf[k] = rev[n - 1 - k];
  buf[n] = '\n';
  int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    [[maybe_unused]] auto w = ::write(fd, buf, static_cast<size_t>(n + 1));
    ::close(fd);
  }
}

/// Closes every descriptor above 2; only async-signal-safe calls (runs between fork and
/// exec).
inline void close_inherited_fds() noexcept {
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, 3U, ~0U, 0U) == 0)
    return;
#endif
  for (int fd = 3; fd < 65536; ++fd)
    ::close(fd);
}

} // namespace nats_detail

/// Whether a nats-server binary is installed; tests skip only when not.
inline bool nats_server_installed() {
  return !nats_detail::server_binary().empty();
}

/// Every executable that includes this header needs nats-server: without one, it runs
/// no case and ctest reports it "Skipped".
inline const bool nats_server_required = warren_test::require_before_run(
    nats_server_installed,
    "nats-server is not installed (scripts/setup installs it; or set $WARREN_NATS_SERVER)");

struct nats_server_options {
  std::string ping_interval = "1s";  ///< server PINGs to clients and routes (nats-server default 2m)
  int ping_max = 2;                  ///< unanswered PINGs before "Stale Client Connection" (default 2)
  std::string write_deadline = "2s"; ///< a blocked write longer than this closes the peer (default 10s)
  bool debug = false;                ///< -D: [DBG] lines ("Delaying PING", "Stale Client Connection", ...)
  bool trace = false;                ///< -V: every protocol line (large logs)
  std::string extra;                 ///< appended verbatim to every server's config
  std::chrono::milliseconds start_timeout{10000}; ///< per server, until the INFO line
  std::chrono::milliseconds route_timeout{10000}; ///< until the routes are formed
  std::chrono::milliseconds stop_timeout{10000};  ///< SIGTERM -> exit, then SIGKILL
};

class nats_cluster {
public:
  explicit nats_cluster(size_t n = 1, nats_server_options opts = {}) : opts_{std::move(opts)} {
    using namespace std::chrono_literals;
    if (n == 0)
      throw std::invalid_argument("nats_cluster: needs at least one server");
    binary_ = nats_detail::server_binary();
    if (binary_.empty())
      throw std::runtime_error("nats_cluster: nats-server not found (looked at $WARREN_NATS_SERVER, "
                               "/usr/sbin, /usr/bin, /usr/local/bin; Debian: apt-get install nats-server)");
    char tmpl[] = "/tmp/warren-nats-test-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr)
      throw std::runtime_error("nats_cluster: mkdtemp failed: " + std::string{std::strerror(errno)});
    dir_ = tmpl;
    static std::atomic<int> counter{0};
    name_ = "warren-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    servers_.resize(n);
    try {
      for (size_t i = 0; i < n; ++i)
        std::filesystem::create_directories(server_dir(i));
      start_watchdog();
      // A port may be taken between the probe and the server's bind: then every server
      // gets new ports (the others' route lists name them) and the cluster starts over.
      for (int attempt = 1;; ++attempt) {
        for (auto& s : servers_) {
          s.port = nats_detail::free_port();
          s.cluster_port = nats_detail::free_port();
          s.http_port = nats_detail::free_port();
        }
        bool collided = false;
        for (size_t i = 0; i < n && !collided; ++i) {
          write_config(i);
          spawn(i);
          collided = !await_ready(i, attempt < 5);
        }
        if (!collided)
          break;
        for (size_t i = 0; i < n; ++i)
          halt(i, SIGKILL);
      }
      if (n > 1)
        for (size_t i = 0; i < n; ++i)
          await_routes(i);
    } catch (...) {
      cleanup();
      throw;
    }
  }

  ~nats_cluster() { cleanup(); }

  nats_cluster(const nats_cluster&) = delete;
  nats_cluster& operator=(const nats_cluster&) = delete;

  size_t size() const noexcept { return servers_.size(); }
  bool clustered() const noexcept { return servers_.size() > 1; }

  /// "nats://127.0.0.1:PORT" of server i.
  std::string url(size_t i) const { return "nats://127.0.0.1:" + std::to_string(at(i).port); }
  /// Every server's url, comma-separated (libnats natsOptions_SetURL takes this form).
  std::string urls() const {
    std::string all;
    for (size_t i = 0; i < size(); ++i)
      all += (i ? "," : "") + url(i);
    return all;
  }
  uint16_t port(size_t i) const { return at(i).port; }
  uint16_t cluster_port(size_t i) const { return at(i).cluster_port; }
  uint16_t http_port(size_t i) const { return at(i).http_port; }
  /// The server's pid, or -1 when it is not running.
  pid_t pid(size_t i) const { return at(i).pid; }
  bool running(size_t i) const { return at(i).pid > 0; }
  bool frozen(size_t i) const { return at(i).frozen; }
  bool isolated(size_t i) const { return at(i).isolated; }
  const std::filesystem::path& dir() const noexcept { return dir_; }
  std::filesystem::path server_dir(size_t i) const {
    // Appended, not "s" + to_string(i): GCC 12 at -O3 reports a false -Wrestrict there.
    std::string name = "s";
    name += std::to_string(i);
    return dir_ / name;
  }

  /// Polls until server i's client port answers with an INFO line; false at the timeout
  /// or when the server is not running (or exited meanwhile).
  bool wait_ready(size_t i, std::chrono::milliseconds timeout) {
    using namespace std::chrono_literals;
    auto deadline = nats_detail::clock::now() + timeout;
    do {
      if (!alive(i))
        return false;
      if (nats_detail::info_line(at(i).port, 500ms))
        return true;
      std::this_thread::sleep_for(20ms);
    } while (nats_detail::clock::now() < deadline);
    return false;
  }

  /// GET `path` ("/varz", "/routez", "/subsz", "/connz?subs=1", ...) from server i's
  /// monitoring port; the JSON body, or empty when it does not answer in time.
  std::string monitor(size_t i, const std::string& path,
                      std::chrono::milliseconds timeout = std::chrono::milliseconds{2000}) const {
    return nats_detail::http_get(at(i).http_port, path, timeout);
  }

  /// num_routes from server i's /routez, or -1 when the monitoring port does not answer.
  int num_routes(size_t i) const {
    return static_cast<int>(nats_detail::json_int(monitor(i, "/routez"), "num_routes"));
  }

  /// Polls /routez until server i has at least `expected` routes; false at the timeout.
  bool wait_routes(size_t i, int expected, std::chrono::milliseconds timeout) const {
    using namespace std::chrono_literals;
    auto deadline = nats_detail::clock::now() + timeout;
    do {
      if (num_routes(i) >= expected)
        return true;
      std::this_thread::sleep_for(20ms);
    } while (nats_detail::clock::now() < deadline);
    return false;
  }

  /// How many routes server i should have: one per other server that runs, is not
  /// frozen and is not isolated (0 when i itself is isolated or alone).
  int expected_routes(size_t i) const {
    if (!clustered() || at(i).isolated)
      return 0;
    int n = 0;
    for (size_t j = 0; j < size(); ++j)
      if (j != i && servers_[j].pid > 0 && !servers_[j].frozen && !servers_[j].isolated)
        ++n;
    return n;
  }

  /// SIGKILL and reap.
  void kill(size_t i) { halt(i, SIGKILL); }

  /// SIGTERM (graceful shutdown), reap; SIGKILL after stop_timeout.
  void stop(size_t i) { halt(i, SIGTERM); }

  /// SIGSTOP: the process stops, its sockets stay open.
  void freeze(size_t i) {
    auto& s = at(i);
    if (s.pid > 0 && !s.frozen && ::kill(s.pid, SIGSTOP) == 0)
      s.frozen = true;
  }

  /// SIGCONT.
  void thaw(size_t i) {
    auto& s = at(i);
    if (s.pid > 0 && s.frozen && ::kill(s.pid, SIGCONT) == 0)
      s.frozen = false;
  }

  /// Stops server i if it runs and starts it again on the same ports with the same
  /// config (isolated stays isolated); waits until ready and routed.
  void restart(size_t i) {
    stop(i);
    write_config(i);
    spawn(i);
    await_ready(i, false);
    await_routes(i);
  }

  /// Restarts server i without a cluster block (see the top of this file).
  void isolate(size_t i) {
    at(i).isolated = true;
    restart(i);
  }

  /// Restarts server i with its routes; waits until they are formed.
  void rejoin(size_t i) {
    at(i).isolated = false;
    restart(i);
  }

  /// Server i's log (all its runs, each after a "=== warren_test: ..." line).
  std::string log(size_t i) const { return nats_detail::read_file(server_dir(i) / "server.log"); }

  /// The last `bytes` of server i's log.
  std::string log_tail(size_t i, size_t bytes = 4000) const {
    auto all = log(i);
    return all.size() > bytes ? all.substr(all.size() - bytes) : all;
  }

  /// Server i's current config text.
  std::string config(size_t i) const { return nats_detail::read_file(server_dir(i) / "nats.conf"); }

private:
  struct server {
    uint16_t port = 0, cluster_port = 0, http_port = 0;
    pid_t pid = -1;
    bool frozen = false;
    bool isolated = false;
    int runs = 0;
  };

  server& at(size_t i) {
    if (i >= servers_.size())
      throw std::out_of_range("nats_cluster: no server " + std::to_string(i));
    return servers_[i];
  }
  const server& at(size_t i) const {
    if (i >= servers_.size())
      throw std::out_of_range("nats_cluster: no server " + std::to_string(i));
    return servers_[i];
  }

  static std::string quoted(const std::string& s) { return "\"" + s + "\""; }

  void write_config(size_t i) const {
    const auto& s = at(i);
    std::ostringstream c;
    c << "# written by tests/support/warren_test/nats_cluster.hpp\n"
      << "server_name: " << quoted(name_ + "-" + std::to_string(i)) << "\n"
      << "host: \"127.0.0.1\"\n"
      << "port: " << s.port << "\n"
      << "http_port: " << s.http_port << "\n" // bound on `host`
      << "ping_interval: " << quoted(opts_.ping_interval) << "\n"
      << "ping_max: " << opts_.ping_max << "\n"
      << "write_deadline: " << quoted(opts_.write_deadline) << "\n"
      << "debug: " << (opts_.debug ? "true" : "false") << "\n"
      << "trace: " << (opts_.trace ? "true" : "false") << "\n"
      << "logtime: true\n"
      << "# no jetstream block: JetStream is off\n";
    if (clustered() && !s.isolated) {
      c << "cluster {\n"
        << "  name: " << quoted(name_) << "\n"
        << "  listen: \"127.0.0.1:" << s.cluster_port << "\"\n"
        << "  routes: [\n";
      // Routes to the servers before this one only: each pair is dialled from one side
      // (both sides dialling makes duplicate routes, and nats-server 2.9 can lose the
      // interest carried on the one it drops). The rest is learnt by gossip.
      for (size_t j = 0; j < i; ++j)
        c << "    \"nats-route://127.0.0.1:" << servers_[j].cluster_port << "\"\n";
      c << "  ]\n}\n";
    } else if (clustered()) {
      c << "# isolated: no cluster block, no route listener, no routes\n";
    }
    c << opts_.extra << "\n";
    std::ofstream{server_dir(i) / "nats.conf"} << c.str();
  }

  void spawn(size_t i) {
    auto& s = at(i);
    if (s.pid > 0)
      return;
    auto sdir = server_dir(i);
    auto log_path = (sdir / "server.log").string();
    auto conf = (sdir / "nats.conf").string();
    auto cwd = sdir.string();
    auto pid_path = (sdir / "server.pid").string();
    {
      std::ofstream log{log_path, std::ios::app};
      log << "=== warren_test: start " << ++s.runs << " of server " << i << " ("
          << (s.isolated ? "isolated" : "routed") << "), client " << s.port << ", cluster " << s.cluster_port
          << ", http " << s.http_port << " ===\n";
    }
    std::string prog = binary_, a1 = "-c";
    char* argv[] = {prog.data(), a1.data(), conf.data(), nullptr};
    pid_t pid = ::fork();
    if (pid < 0)
      throw std::runtime_error("nats_cluster: fork failed: " + std::string{std::strerror(errno)});
    if (pid == 0) {
      ::setpgid(0, 0);
      // The child writes server.pid itself, before exec: the watchdog must never find a
      // running server without its pid file (the parent could die right after fork).
      nats_detail::write_pid_file(pid_path.c_str());
      // Default signal mask and dispositions: a test thread may block or ignore signals.
      sigset_t none;
      ::sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGUSR1, SIGUSR2})
        ::signal(sig, SIG_DFL);
      int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      int devnull = ::open("/dev/null", O_RDONLY);
      if (devnull >= 0)
        ::dup2(devnull, 0);
      nats_detail::close_inherited_fds();
      if (::chdir(cwd.c_str()) != 0)
        ::_exit(126);
      ::execve(argv[0], argv, environ);
      ::_exit(127);
    }
    s.pid = pid;
    s.frozen = false;
    std::ofstream{pid_path} << pid << "\n"; // the same as the child's, in case it has not run yet
  }

  /// Whether server i still runs; reaps it if it exited.
  bool alive(size_t i) {
    auto& s = at(i);
    if (s.pid <= 0)
      return false;
    int st = 0;
    if (::waitpid(s.pid, &st, WNOHANG) == s.pid) {
      s.pid = -1;
      s.frozen = false;
      std::error_code ec;
      std::filesystem::remove(server_dir(i) / "server.pid", ec);
      return false;
    }
    return true;
  }

  /// Waits for server i's INFO line. When it exits because a port was taken and
  /// `collision_ok`, returns false; every other failure throws with the log tail.
  bool await_ready(size_t i, bool collision_ok) {
    if (wait_ready(i, opts_.start_timeout))
      return true;
    bool exited = !alive(i);
    auto tail = log_tail(i);
    if (exited && collision_ok && tail.find("address already in use") != std::string::npos)
      return false;
    halt(i, SIGKILL);
    throw std::runtime_error("nats_cluster: nats-server " + std::to_string(i) +
                             (exited ? " exited during startup"
                                     : " did not answer on its client port within " +
                                           std::to_string(opts_.start_timeout.count()) + " ms") +
                             "; log " + (server_dir(i) / "server.log").string() + ":\n" + tail);
  }

  void await_routes(size_t i) {
    if (!clustered())
      return;
    int expected = expected_routes(i);
    if (expected == 0 || wait_routes(i, expected, opts_.route_timeout))
      return;
    throw std::runtime_error("nats_cluster: nats-server " + std::to_string(i) + " has " +
                             std::to_string(num_routes(i)) + " of " + std::to_string(expected) +
                             " routes after " + std::to_string(opts_.route_timeout.count()) + " ms; log " +
                             (server_dir(i) / "server.log").string() + ":\n" + log_tail(i));
  }

  /// Sends `sig` (SIGCONT too, so a frozen server acts on SIGTERM), reaps; SIGKILL to the
  /// process group after stop_timeout.
  void halt(size_t i, int sig) {
    using namespace std::chrono_literals;
    auto& s = at(i);
    if (s.pid <= 0)
      return;
    ::kill(s.pid, sig);
    if (sig != SIGKILL)
      ::kill(s.pid, SIGCONT);
    auto deadline = nats_detail::clock::now() + (sig == SIGKILL ? 10000ms : opts_.stop_timeout);
    int st = 0;
    while (::waitpid(s.pid, &st, WNOHANG) == 0) {
      if (nats_detail::clock::now() > deadline) {
        ::kill(-s.pid, SIGKILL);
        ::kill(s.pid, SIGKILL);
        ::waitpid(s.pid, &st, 0);
        break;
      }
      std::this_thread::sleep_for(sig == SIGKILL ? 1ms : 10ms);
    }
    s.pid = -1;
    s.frozen = false;
    std::error_code ec;
    std::filesystem::remove(server_dir(i) / "server.pid", ec);
  }

  void start_watchdog() {
    auto d = dir_.string();
    std::string script = "while kill -0 " + std::to_string(::getpid()) +
                         " 2>/dev/null; do sleep 1; done; "
                         "for f in " +
                         d +
                         "/s*/server.pid; do [ -f \"$f\" ] && kill -KILL $(cat \"$f\") 2>/dev/null; done; "
                         "rm -rf " +
                         d;
    std::string sh = "/bin/sh", c = "-c";
    char* argv[] = {sh.data(), c.data(), script.data(), nullptr};
    pid_t pid = ::fork();
    if (pid < 0)
      throw std::runtime_error("nats_cluster: fork failed: " + std::string{std::strerror(errno)});
    if (pid == 0) {
      ::setsid();
      int devnull = ::open("/dev/null", O_RDWR);
      if (devnull >= 0) {
        ::dup2(devnull, 0);
        ::dup2(devnull, 1);
        ::dup2(devnull, 2);
      }
      nats_detail::close_inherited_fds();
      ::execv(argv[0], argv);
      ::_exit(127);
    }
    watchdog_pid_ = pid;
  }

  void stop_watchdog() noexcept {
    if (watchdog_pid_ <= 0)
      return;
    ::kill(watchdog_pid_, SIGKILL);
    int st = 0;
    ::waitpid(watchdog_pid_, &st, 0);
    watchdog_pid_ = -1;
  }

  void cleanup() noexcept {
    for (size_t i = 0; i < servers_.size(); ++i) {
      try {
        halt(i, SIGTERM);
      } catch (...) {
      }
    }
    stop_watchdog();
    std::error_code ec;
    if (!dir_.empty() && std::getenv("WARREN_KEEP_NATS_DIR") == nullptr)
      std::filesystem::remove_all(dir_, ec);
  }

  nats_server_options opts_;
  std::string binary_;
  std::filesystem::path dir_;
  std::string name_;
  std::vector<server> servers_;
  pid_t watchdog_pid_ = -1;
};

} // namespace warren_test
