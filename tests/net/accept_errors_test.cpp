// An acceptor whose accept() fails (EMFILE: the process is out of file descriptors)
// backs off instead of spinning, and accepts the waiting connections once fds free up.
// Its own executable: it lowers RLIMIT_NOFILE and fills the fd table of the process.
#include "net_support.hpp"
#include "raw_socket.hpp"

#include <dirent.h>
#include <sys/resource.h>

#include <vector>

using namespace net_test;

namespace {

/// The highest open fd of this process.
int highest_fd() {
  int hi = 2;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (auto* e = ::readdir(d))
      if (e->d_name[0] != '.')
        hi = std::max(hi, std::atoi(e->d_name));
    ::closedir(d);
  }
  return hi;
}

/// Lowers the soft RLIMIT_NOFILE for its lifetime.
struct fd_limit {
  rlimit saved{};
  bool ok = false;
  explicit fd_limit(rlim_t soft) {
    if (::getrlimit(RLIMIT_NOFILE, &saved) != 0)
      return;
    rlimit r = saved;
    r.rlim_cur = std::min(soft, saved.rlim_cur);
    ok = ::setrlimit(RLIMIT_NOFILE, &r) == 0;
  }
  ~fd_limit() {
    if (ok)
      ::setrlimit(RLIMIT_NOFILE, &saved);
  }
};

/// Takes every free fd (copies of /dev/null) until EMFILE; gives them back on release().
struct fd_filler {
  std::vector<int> fds;
  int last_errno = 0;
  void fill(std::size_t cap) {
    int base = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (base < 0) {
      last_errno = errno;
      return;
    }
    fds.push_back(base);
    while (fds.size() < cap) {
      int fd = ::fcntl(base, F_DUPFD_CLOEXEC, 0);
      if (fd < 0) {
        last_errno = errno;
        return;
      }
      fds.push_back(fd);
    }
  }
  void release() {
    for (int fd : fds)
      ::close(fd);
    fds.clear();
  }
  ~fd_filler() { release(); }
};

} // namespace

TEST_CASE("EMFILE: the acceptor backs off, and accepts the waiting clients once fds free up") {
  net::listener_options opts;
  opts.num_acceptors = 1;
  opts.num_listen_sockets = 1;
  fixture f{opts};
  { // the listener works
    raw_socket w;
    REQUIRE(w.connect(f.port));
    REQUIRE(w.write_all("warm\n"));
    REQUIRE(w.read_line() == "warm");
  }
  REQUIRE(f.eventually([](const auto& x) { return x.active == 0; }));

  // UBSan's vptr check opens a pipe to probe memory the first time it meets a type:
  // with no fd left it reports a false "invalid vptr". So the acceptor first runs its
  // error path with fds to spare: while suspended (no accept pending), it gets the
  // message a failed accept sends it (the internal accept_err_atom), counts it, backs
  // off and retries; after resume, a client is served.
  auto accs = f.child(f.child(f.top, "L"), "acceptors");
  REQUIRE(accs);
  auto acc = f.child(accs, "acceptor_0");
  REQUIRE(acc);
  REQUIRE_FALSE(net::listener::suspend(*f.sys, f.id));
  caf::anon_send(acc, caf::atom("naccerr"), false, std::string{"warm-up"});
  REQUIRE(f.eventually([](const auto& x) { return x.accept_errors == 1; }));
  REQUIRE_FALSE(net::listener::resume(*f.sys, f.id));
  { // served once the backoff's retry ran
    raw_socket w;
    REQUIRE(w.connect(f.port));
    REQUIRE(w.write_all("warm 2\n"));
    REQUIRE(w.read_line() == "warm 2");
  }
  REQUIRE(f.eventually([](const auto& x) { return x.active == 0; }));

  constexpr int n = 3;
  std::vector<raw_socket> clients(n); // their fds exist before the table is full
  for (auto& c : clients)
    REQUIRE(c.valid());
  fd_limit limit{static_cast<rlim_t>(highest_fd() + 64)};
  REQUIRE(limit.ok);
  fd_filler filler;
  filler.fill(100000);
  REQUIRE(filler.last_errno == EMFILE); // every fd below the limit is taken
  // connect() on an existing socket needs no new fd; the kernel completes the
  // handshake, and the acceptor's accept() fails with EMFILE.
  for (auto& c : clients)
    REQUIRE(c.connect(f.port));
  for (int i = 0; i < n; ++i)
    REQUIRE(clients[i].write_all("hello " + std::to_string(i) + "\n"));

  REQUIRE(f.eventually([](const auto& x) { return x.accept_errors >= 1 + 3; }, 30s));
  // Backing off: one failure per retry (100 ms). Over a one-second window that is
  // about 10, fewer under load (timers fire late, never early); an acceptor that
  // retried at once would fail hundreds of times or more.
  auto before = f.counters().accept_errors;
  std::this_thread::sleep_for(1s);
  auto k = f.counters();
  filler.release(); // before any check: doctest's messages need fds (UBSan too)
  MESSAGE("accept errors in the window: " << k.accept_errors - before);
  CHECK(k.accept_errors - before <= 25);
  CHECK(k.accepted == 2); // only the warm-up connections
  CHECK(k.active == 0);

  for (int i = 0; i < n; ++i) // accepted at the next retry, then served
    CHECK(clients[i].read_line(10s) == "hello " + std::to_string(i));
  k = f.counters();
  CHECK(k.accepted == 2 + n);
  CHECK(k.active == n);
  auto errors = k.accept_errors;
  clients[0].write_all("again\n"); // the acceptor is back to normal
  CHECK(clients[0].read_line() == "again");
  raw_socket late;
  REQUIRE(late.connect(f.port));
  REQUIRE(late.write_all("late\n"));
  CHECK(late.read_line() == "late");
  CHECK(f.counters().accept_errors == errors);
}
