// warren-baseline-echo: minimal single-threaded epoll (level-triggered) echo server
// speaking codec `line`, over plain TCP or TLS 1.2/1.3 (OpenSSL 3). Each received
// line is written back followed by LF. A yardstick for the gateway's per-connection
// cost, not product code.
//
//   warren-baseline-echo --port 7000 --plain
//   warren-baseline-echo --port 7443 --tls --cert cert.pem --key key.pem
//
// On SIGINT/SIGTERM it prints its CPU time (getrusage utime + stime) and connection
// counts, then exits 0.
#include <warren/net/codec/line.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

namespace codec = warren::net::codec;

struct options {
  int port = 7000;
  std::string bind = "0.0.0.0";
  bool tls = false;
  std::string cert;
  std::string key;
  bool session_tickets = false;
  std::size_t max_line = codec::default_max_frame;
};

struct stats {
  std::uint64_t accepted = 0;
  std::uint64_t closed = 0;
  std::uint64_t open = 0;
  std::uint64_t peak_open = 0;
  std::uint64_t handshakes = 0;
  std::uint64_t tls_failures = 0;
  std::uint64_t protocol_errors = 0;
  std::uint64_t lines = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
} g_stats;

constexpr std::size_t high_water = 1 << 20; // stop reading while this much output is pending
constexpr int max_events = 256;

enum class io { ok, blocked, eof, error };

struct conn {
  int fd = -1;
  SSL* ssl = nullptr;
  codec::line_decoder decoder;
  std::string out;
  std::size_t out_off = 0;
  bool eof = false;
  bool handshake_counted = false;
  bool read_wants_write = false; // SSL_read returned WANT_WRITE
  bool write_wants_read = false; // SSL_write returned WANT_READ
  bool write_blocked = false;    // last write attempt hit EAGAIN / WANT_WRITE
  std::uint32_t events = 0;      // current epoll interest

  explicit conn(std::size_t max_line) : decoder(max_line) {}
  [[nodiscard]] std::size_t pending() const { return out.size() - out_off; }
};

// epoll tags for the non-connection fds.
char listener_tag;
char signal_tag;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "warren-baseline-echo: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

[[noreturn]] void die_ssl(const char* what) {
  std::fprintf(stderr, "warren-baseline-echo: %s\n", what);
  ERR_print_errors_fp(stderr);
  std::exit(1);
}

void usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--port N] [--bind ADDR] [--plain | --tls --cert FILE --key FILE]\n"
               "          [--session-tickets] [--max-line BYTES]\n",
               argv0);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        usage(argv[0]);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--port")
      o.port = std::atoi(value());
    else if (a == "--bind")
      o.bind = value();
    else if (a == "--tls")
      o.tls = true;
    else if (a == "--plain")
      o.tls = false;
    else if (a == "--cert")
      o.cert = value();
    else if (a == "--key")
      o.key = value();
    else if (a == "--session-tickets")
      o.session_tickets = true;
    else if (a == "--max-line")
      o.max_line = static_cast<std::size_t>(std::strtoull(value(), nullptr, 10));
    else if (a == "-h" || a == "--help") {
      usage(argv[0]);
      std::exit(0);
    } else {
      usage(argv[0]);
      std::exit(2);
    }
  }
  if (o.tls && (o.cert.empty() || o.key.empty())) {
    std::fprintf(stderr, "--tls needs --cert and --key (see scripts/make-test-cert)\n");
    std::exit(2);
  }
  return o;
}

void raise_nofile() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
      std::perror("setrlimit(RLIMIT_NOFILE)");
  }
}

SSL_CTX* make_tls(const options& o) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr)
    die_ssl("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (!o.session_tickets) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET); // TLS 1.2 tickets
    SSL_CTX_set_num_tickets(ctx, 0);            // TLS 1.3 tickets
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, o.cert.c_str()) != 1)
    die_ssl("cannot load certificate");
  if (SSL_CTX_use_PrivateKey_file(ctx, o.key.c_str(), SSL_FILETYPE_PEM) != 1)
    die_ssl("cannot load private key");
  if (SSL_CTX_check_private_key(ctx) != 1)
    die_ssl("certificate and key do not match");
  return ctx;
}

int listen_on(const options& o) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    die("socket");
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(o.port));
  if (inet_pton(AF_INET, o.bind.c_str(), &addr.sin_addr) != 1) {
    std::fprintf(stderr, "bad --bind address %s\n", o.bind.c_str());
    std::exit(2);
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    die("bind");
  if (listen(fd, 4096) != 0)
    die("listen");
  return fd;
}

class server {
public:
  server(const options& o, SSL_CTX* ctx, int ep) : opt_(o), ctx_(ctx), ep_(ep) {}

  void accept_all(int lfd) {
    for (;;) {
      const int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED)
          continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
          std::perror("accept4"); // e.g. EMFILE: retried on the next event
        return;
      }
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto* c = new conn(opt_.max_line);
      c->fd = fd;
      if (ctx_ != nullptr) {
        c->ssl = SSL_new(ctx_);
        if (c->ssl == nullptr || SSL_set_fd(c->ssl, fd) != 1) {
          ++g_stats.tls_failures;
          if (c->ssl != nullptr)
            SSL_free(c->ssl);
          ::close(fd);
          delete c;
          continue;
        }
        SSL_set_accept_state(c->ssl);
      }
      c->events = EPOLLIN;
      epoll_event ev{};
      ev.events = c->events;
      ev.data.ptr = c;
      if (epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0)
        die("epoll_ctl(ADD)");
      ++g_stats.accepted;
      if (++g_stats.open > g_stats.peak_open)
        g_stats.peak_open = g_stats.open;
    }
  }

  // Handles readiness of one connection; closes it when done or broken.
  void on_event(conn* c, std::uint32_t ev) {
    if ((ev & EPOLLERR) != 0 || !service(*c)) {
      close(c);
      return;
    }
    if (c->eof && c->pending() == 0) {
      if (c->ssl != nullptr)
        SSL_shutdown(c->ssl); // best-effort close_notify
      close(c);
      return;
    }
    update_interest(*c);
  }

private:
  bool service(conn& c) {
    for (;;) {
      if (flush(c) == io::error)
        return false;
      if (c.eof)
        return true;
      if (c.pending() >= high_water)
        return true; // wait for EPOLLOUT
      const io r = read_some(c);
      if (r == io::error)
        return false;
      if (r == io::eof)
        c.eof = true;
      if (r != io::ok) // blocked or eof: flush what we have and go back to epoll
        return flush(c) != io::error;
      // io::ok: stopped at the high-water mark; loop to flush.
    }
  }

  // Reads until the socket would block, EOF, error, or too much pending output.
  io read_some(conn& c) {
    char buf[16384];
    c.read_wants_write = false;
    while (c.pending() < high_water) {
      ssize_t n;
      if (c.ssl != nullptr) {
        const int r = SSL_read(c.ssl, buf, sizeof buf);
        if (!c.handshake_counted && SSL_is_init_finished(c.ssl)) {
          c.handshake_counted = true;
          ++g_stats.handshakes;
        }
        if (r <= 0) {
          switch (SSL_get_error(c.ssl, r)) {
            case SSL_ERROR_WANT_READ:
              return io::blocked;
            case SSL_ERROR_WANT_WRITE:
              c.read_wants_write = true;
              return io::blocked;
            case SSL_ERROR_ZERO_RETURN:
              return io::eof;
            default:
              if (!c.handshake_counted)
                ++g_stats.tls_failures;
              ERR_clear_error();
              return io::error;
          }
        }
        n = r;
      } else {
        n = ::recv(c.fd, buf, sizeof buf, 0);
        if (n == 0)
          return io::eof;
        if (n < 0) {
          if (errno == EINTR)
            continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK)
            return io::blocked;
          return io::error;
        }
      }
      g_stats.bytes_in += static_cast<std::uint64_t>(n);
      const auto fr = c.decoder.feed(std::string_view(buf, static_cast<std::size_t>(n)),
                                     [&c](std::string_view line) { (void)codec::encode_line(c.out, line); });
      g_stats.lines += fr.frames;
      if (!fr) {
        // Line too long: stop reading, echo what was decoded before it, then close.
        ++g_stats.protocol_errors;
        return io::eof;
      }
    }
    return io::ok;
  }

  io flush(conn& c) {
    c.write_wants_read = false;
    c.write_blocked = false;
    while (c.pending() > 0) {
      const char* p = c.out.data() + c.out_off;
      const std::size_t len = c.pending();
      ssize_t n;
      if (c.ssl != nullptr) {
        const int r = SSL_write(c.ssl, p, static_cast<int>(len > (1u << 30) ? (1u << 30) : len));
        if (r <= 0) {
          switch (SSL_get_error(c.ssl, r)) {
            case SSL_ERROR_WANT_WRITE:
              c.write_blocked = true;
              return io::blocked;
            case SSL_ERROR_WANT_READ:
              c.write_wants_read = true;
              return io::blocked;
            default:
              ERR_clear_error();
              return io::error;
          }
        }
        n = r;
      } else {
        n = ::send(c.fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
          if (errno == EINTR)
            continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c.write_blocked = true;
            return io::blocked;
          }
          return io::error;
        }
      }
      g_stats.bytes_out += static_cast<std::uint64_t>(n);
      c.out_off += static_cast<std::size_t>(n);
    }
    // Drained: reuse the buffer, but don't keep a large one on an idle connection.
    c.out.clear();
    c.out_off = 0;
    if (c.out.capacity() > 65536)
      c.out.shrink_to_fit();
    return io::ok;
  }

  void update_interest(conn& c) {
    std::uint32_t ev = 0;
    if ((!c.eof && c.pending() < high_water) || c.write_wants_read)
      ev |= EPOLLIN;
    if ((c.pending() > 0 && c.write_blocked) || c.read_wants_write)
      ev |= EPOLLOUT;
    if (ev == c.events)
      return;
    c.events = ev;
    epoll_event e{};
    e.events = ev;
    e.data.ptr = &c;
    if (epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &e) != 0)
      die("epoll_ctl(MOD)");
  }

  void close(conn* c) {
    epoll_ctl(ep_, EPOLL_CTL_DEL, c->fd, nullptr);
    if (c->ssl != nullptr)
      SSL_free(c->ssl);
    ::close(c->fd);
    delete c;
    ++g_stats.closed;
    --g_stats.open;
  }

  const options& opt_;
  SSL_CTX* ctx_;
  int ep_;
};

void print_stats(std::chrono::steady_clock::time_point start) {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const double user =
      static_cast<double>(ru.ru_utime.tv_sec) + static_cast<double>(ru.ru_utime.tv_usec) / 1e6;
  const double sys = static_cast<double>(ru.ru_stime.tv_sec) + static_cast<double>(ru.ru_stime.tv_usec) / 1e6;
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("warren-baseline-echo: cpu_s=%.3f user_s=%.3f sys_s=%.3f wall_s=%.3f max_rss_kb=%ld\n",
              user + sys, user, sys, wall, ru.ru_maxrss);
  std::printf("warren-baseline-echo: connections accepted=%llu closed=%llu open=%llu peak_open=%llu "
              "tls_handshakes=%llu tls_failures=%llu protocol_errors=%llu\n",
              static_cast<unsigned long long>(g_stats.accepted),
              static_cast<unsigned long long>(g_stats.closed), static_cast<unsigned long long>(g_stats.open),
              static_cast<unsigned long long>(g_stats.peak_open),
              static_cast<unsigned long long>(g_stats.handshakes),
              static_cast<unsigned long long>(g_stats.tls_failures),
              static_cast<unsigned long long>(g_stats.protocol_errors));
  std::printf("warren-baseline-echo: lines=%llu bytes_in=%llu bytes_out=%llu\n",
              static_cast<unsigned long long>(g_stats.lines),
              static_cast<unsigned long long>(g_stats.bytes_in),
              static_cast<unsigned long long>(g_stats.bytes_out));
  std::fflush(stdout);
}

} // namespace

int main(int argc, char** argv) {
  const options opt = parse(argc, argv);
  const auto start = std::chrono::steady_clock::now();
  raise_nofile();
  ::signal(SIGPIPE, SIG_IGN);

  // SIGINT/SIGTERM arrive through a signalfd in the epoll set.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  if (sigprocmask(SIG_BLOCK, &mask, nullptr) != 0)
    die("sigprocmask");
  const int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0)
    die("signalfd");

  SSL_CTX* ctx = opt.tls ? make_tls(opt) : nullptr;
  const int lfd = listen_on(opt);
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0)
    die("epoll_create1");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &listener_tag;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0)
    die("epoll_ctl(listener)");
  ev.data.ptr = &signal_tag;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev) != 0)
    die("epoll_ctl(signalfd)");

  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  std::printf(
      "warren-baseline-echo: listening on %s:%d (%s), RLIMIT_NOFILE=%llu\n", opt.bind.c_str(), opt.port,
      opt.tls ? (opt.session_tickets ? "tls, session tickets on" : "tls, session tickets off") : "plain",
      static_cast<unsigned long long>(rl.rlim_cur));
  std::fflush(stdout);

  server srv(opt, ctx, ep);
  epoll_event events[max_events];
  bool running = true;
  while (running) {
    const int n = epoll_wait(ep, events, max_events, -1);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      void* tag = events[i].data.ptr;
      if (tag == &listener_tag) {
        srv.accept_all(lfd);
      } else if (tag == &signal_tag) {
        signalfd_siginfo si{};
        while (read(sfd, &si, sizeof si) == static_cast<ssize_t>(sizeof si))
          std::printf("warren-baseline-echo: signal %u, exiting\n", si.ssi_signo);
        running = false;
      } else {
        srv.on_event(static_cast<conn*>(tag), events[i].events);
      }
    }
  }
  print_stats(start);
  // Open connections are simply dropped with the process.
  ::close(lfd);
  ::close(ep);
  ::close(sfd);
  if (ctx != nullptr)
    SSL_CTX_free(ctx);
  return 0;
}
