#include "admin_server.hpp"

#include <warren/log.hpp>

#include <nlohmann/json.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace warren::gateway {

namespace {

using clock_type = std::chrono::steady_clock;

/// One client connection; owned by the poller while between requests, by a worker
/// while one is served.
struct connection {
  int fd = -1;
  SSL* ssl = nullptr;
  bool handshaken = false;
  std::string buf; ///< bytes read ahead (decrypted), not yet handed to httplib
  std::size_t pos = 0;
  clock_type::time_point idle_until{}; ///< no byte of the next request by then: close
  clock_type::time_point read_until{}; ///< set at a request's first byte: all of it by then
  bool in_request = false;             ///< a byte of the next request has arrived
  std::size_t requests = 0;
  bool fresh = true;  ///< just accepted: the poller checks max_connections
  bool close = false; ///< after this response
  bool body_too_large = false;
  std::size_t body_read = 0; ///< bytes httplib read after the headers (body and chunk framing)
  bool counting_body = false;
  std::string carry_head; ///< set by carry(): the stream writer takes it after this request
  std::function<bool(std::string&)> carry;

  ~connection() {
    if (ssl)
      SSL_free(ssl);
    if (fd >= 0)
      ::close(fd);
  }
  std::size_t buffered() const { return buf.size() - pos; }
  /// The length of the buffered request head (line and headers); npos: not all here.
  std::size_t head_size() const {
    auto view = std::string_view{buf}.substr(pos);
    auto crlf = view.find("\r\n\r\n");
    auto lf = view.find("\n\n");
    return std::min(crlf == std::string_view::npos ? crlf : crlf + 4,
                    lf == std::string_view::npos ? lf : lf + 2);
  }
  bool has_head() const { return head_size() != std::string_view::npos; }
  void compact() {
    if (pos > 0 && pos == buf.size()) {
      buf.clear();
      pos = 0;
    }
  }
};

thread_local connection* current = nullptr;

enum class io { data, again, closed };

/// Non-blocking read into `out` (up to n); `again`: nothing now.
io read_some(connection& c, char* out, std::size_t n, ssize_t& got) {
  if (c.ssl) {
    ERR_clear_error();
    int r = SSL_read(c.ssl, out, static_cast<int>(std::min<std::size_t>(n, 1 << 20)));
    if (r > 0) {
      got = r;
      return io::data;
    }
    int e = SSL_get_error(c.ssl, r);
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? io::again : io::closed;
  }
  auto r = ::recv(c.fd, out, n, 0);
  if (r > 0) {
    got = r;
    return io::data;
  }
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return io::again;
  return io::closed;
}

bool wait_fd(int fd, short events, clock_type::time_point until) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock_type::now()).count();
  if (left <= 0)
    return false;
  pollfd p{fd, events, 0};
  int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000 * 60)));
  return r > 0 && (p.revents & (events | POLLHUP | POLLERR)) != 0;
}

/// httplib's view of a connection a worker serves: reads come from what the poller
/// buffered first, then from the socket, each within the request's read deadline.
class connection_stream : public httplib::Stream {
public:
  connection_stream(connection& c, const admin_server_options& o) : c_(c), o_(o) {}

  bool is_readable() const override { return c_.buffered() > 0 || (c_.ssl && SSL_pending(c_.ssl) > 0); }
  bool is_writable() const override {
    pollfd p{c_.fd, POLLOUT, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & POLLOUT);
  }

  ssize_t read(char* ptr, size_t size) override {
    if (c_.counting_body) {
      // The body limit also holds for chunked bodies, which httplib reads unbounded:
      // the limit plus room for the chunk framing, then the read fails (413).
      auto room = o_.body_limit + 64 + o_.body_limit / 64;
      if (c_.body_read >= room) {
        c_.body_too_large = true;
        c_.close = true;
        return -1;
      }
      size = std::min(size, room - c_.body_read);
    }
    auto n = read_raw(ptr, size);
    if (n > 0 && c_.counting_body)
      c_.body_read += static_cast<std::size_t>(n);
    return n;
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (c_.carry) // the stream writer answers this request: httplib's response is dropped
      return static_cast<ssize_t>(size);
    auto until = clock_type::now() + o_.write_timeout;
    for (;;) {
      if (c_.ssl) {
        ERR_clear_error();
        int r = SSL_write(c_.ssl, ptr, static_cast<int>(std::min<std::size_t>(size, 1 << 20)));
        if (r > 0)
          return r;
        int e = SSL_get_error(c_.ssl, r);
        if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
          return fail();
        if (!wait_fd(c_.fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, until))
          return fail();
      } else {
        auto r = ::send(c_.fd, ptr, size, MSG_NOSIGNAL);
        if (r >= 0)
          return r;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
          return fail();
        if (!wait_fd(c_.fd, POLLOUT, until))
          return fail();
      }
    }
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage a{};
    socklen_t len = sizeof(a);
    if (::getpeername(c_.fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
      describe(a, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage a{};
    socklen_t len = sizeof(a);
    if (::getsockname(c_.fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
      describe(a, ip, port);
  }
  // httplib (built without CPPHTTPLIB_USE_POLL) answers 500 to a stream whose socket
  // is at or above FD_SETSIZE, because its own stream select()s. This one polls, and a
  // gateway with thousands of devices gives the admin API such descriptors.
  socket_t socket() const override { return c_.fd < FD_SETSIZE ? c_.fd : 0; }

private:
  ssize_t read_raw(char* ptr, size_t size) {
    if (auto b = c_.buffered()) {
      auto n = std::min(b, size);
      std::memcpy(ptr, c_.buf.data() + c_.pos, n);
      c_.pos += n;
      c_.compact();
      return static_cast<ssize_t>(n);
    }
    for (;;) {
      ssize_t got = 0;
      switch (read_some(c_, ptr, size, got)) {
        case io::data:
          return got;
        case io::closed:
          return fail(0);
        case io::again:
          if (!wait_fd(c_.fd, POLLIN, c_.read_until))
            return fail();
      }
    }
  }
  ssize_t fail(ssize_t r = -1) {
    c_.close = true;
    return r;
  }
  static void describe(const sockaddr_storage& a, std::string& ip, int& port) {
    char text[INET6_ADDRSTRLEN] = {};
    if (a.ss_family == AF_INET) {
      auto* in = reinterpret_cast<const sockaddr_in*>(&a);
      ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
      port = ntohs(in->sin_port);
    } else if (a.ss_family == AF_INET6) {
      auto* in = reinterpret_cast<const sockaddr_in6*>(&a);
      ::inet_ntop(AF_INET6, &in->sin6_addr, text, sizeof(text));
      port = ntohs(in->sin6_port);
    }
    ip = text;
  }

  connection& c_;
  const admin_server_options& o_;
};

bool all_digits(const std::string& s) {
  return !s.empty() && s.size() <= 18 &&
         std::all_of(s.begin(), s.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
}

bool iequals(const std::string& a, const char* b) {
  return a.size() == std::strlen(b) && strncasecmp(a.data(), b, a.size()) == 0;
}

struct verdict {
  int status = 0; ///< 0: fine
  const char* error = "";
};

/// What httplib would read leniently: a body framed two ways, a Content-Length with
/// trailing garbage, a body on a method whose body httplib never reads (its bytes
/// would be parsed as the next request), and compressed bodies (inflated unbounded).
verdict check_framing(const httplib::Request& req, std::size_t body_limit) {
  auto te_count = req.get_header_value_count("Transfer-Encoding");
  auto cl_count = req.get_header_value_count("Content-Length");
  auto ce = req.get_header_value("Content-Encoding");
  if (te_count > 0 && cl_count > 0)
    return {400, "Content-Length and Transfer-Encoding together"};
  if (te_count > 1 || (te_count == 1 && !iequals(req.get_header_value("Transfer-Encoding"), "chunked")))
    return {501, "unsupported Transfer-Encoding (only chunked)"};
  if (cl_count > 1)
    return {400, "more than one Content-Length"};
  uint64_t length = 0;
  if (cl_count == 1) {
    auto text = req.get_header_value("Content-Length");
    if (!all_digits(text))
      return {400, "Content-Length is not a number"};
    length = std::stoull(text);
  }
  bool has_body = te_count == 1 || length > 0;
  if (req.method != "POST") {
    if (has_body)
      return {400, "a request body is only accepted on POST"};
    return {};
  }
  if (!ce.empty() && !iequals(ce, "identity"))
    return {415, "Content-Encoding is not accepted (send the body uncompressed)"};
  if (te_count == 0 && cl_count == 0)
    return {411, "a POST needs Content-Length or Transfer-Encoding: chunked"};
  if (length > body_limit)
    return {413, "request body larger than the admin API's body_limit"};
  return {};
}

void reply_error(httplib::Response& res, int status, const std::string& text) {
  res.status = status;
  res.set_content(nlohmann::json{{"error", text}}.dump() + "\n", "application/json");
}

/// The error text of an answer httplib produced itself (no handler filled the body).
const char* status_text(int status) {
  switch (status) {
    case 400:
      return "bad request";
    case 404:
      return "no such resource";
    case 405:
      return "method not allowed";
    case 413:
      return "request body too large";
    case 414:
      return "request URI too long";
    case 416:
      return "range not satisfiable";
    case 500:
      return "internal error";
    default:
      return status < 500 ? "request refused" : "server error";
  }
}

} // namespace

/// The poller and the workers.
class admin_server::impl {
public:
  impl(admin_server& owner) : s_(owner), o_(owner.opts_), n_(*owner.counters_) {}

  ~impl() { stop(); }

  std::string init_tls() {
    if (o_.cert_file.empty() && o_.key_file.empty())
      return {};
    if (o_.cert_file.empty() || o_.key_file.empty())
      return "admin API: TLS needs both cert_file and key_file";
    ctx_ = SSL_CTX_new(TLS_server_method());
    if (!ctx_)
      return "admin API: SSL_CTX_new failed";
    SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(ctx_, o_.cert_file.c_str()) != 1)
      return "admin API: cannot load cert_file " + o_.cert_file;
    if (SSL_CTX_use_PrivateKey_file(ctx_, o_.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx_) != 1)
      return "admin API: cannot load key_file " + o_.key_file + " (or it does not match the certificate)";
    return {};
  }
  bool tls() const { return ctx_ != nullptr; }

  /// From a worker (serve): a connection that carry() took goes to the stream writer.
  void carry(connection* c) {
    {
      std::lock_guard<std::mutex> g{mtx_};
      serving_.erase(c);
      if (stopping_) {
        drop(c);
        return;
      }
      stream_handoff_.push_back(c);
    }
    uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(stream_wake_, &one, sizeof(one));
  }

  std::string start() {
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    wake_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ep_ < 0 || wake_ < 0)
      return "admin API: epoll/eventfd failed";
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;
    ::epoll_ctl(ep_, EPOLL_CTL_ADD, wake_, &ev);
    workers_ = std::make_unique<httplib::ThreadPool>(std::max<std::size_t>(1, o_.threads));
    stream_wake_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (stream_wake_ < 0)
      return "admin API: eventfd failed";
    poller_ = std::thread{[this] { poll_loop(); }};
    streamer_ = std::thread{[this] { stream_loop(); }};
    return {};
  }

  void stop() {
    if (stopping_.exchange(true))
      return;
    if (wake_ >= 0) {
      uint64_t one = 1;
      [[maybe_unused]] auto r = ::write(wake_, &one, sizeof(one));
    }
    if (stream_wake_ >= 0) {
      uint64_t one = 1;
      [[maybe_unused]] auto r = ::write(stream_wake_, &one, sizeof(one));
    }
    if (poller_.joinable())
      poller_.join();
    if (streamer_.joinable())
      streamer_.join();
    {
      // Requests in progress end now: their reads and writes fail at once.
      std::lock_guard<std::mutex> g{mtx_};
      for (auto* c : serving_)
        ::shutdown(c->fd, SHUT_RDWR);
      for (auto* c : handoff_)
        delete c;
      handoff_.clear();
      for (auto* c : stream_handoff_)
        delete c;
      stream_handoff_.clear();
    }
    if (workers_)
      workers_->shutdown();
    parked_.clear();
    if (ep_ >= 0)
      ::close(ep_);
    if (wake_ >= 0)
      ::close(wake_);
    if (stream_wake_ >= 0)
      ::close(stream_wake_);
    ep_ = wake_ = stream_wake_ = -1;
    if (ctx_)
      SSL_CTX_free(ctx_);
    ctx_ = nullptr;
  }

  /// From httplib's listen thread: a new connection. The cap is enforced by the
  /// poller (make_room), which knows which connections are idle.
  void accepted(int fd) {
    n_.connections.fetch_add(1, std::memory_order_relaxed);
    if (stopping_) {
      ::close(fd);
      return;
    }
    int flags = ::fcntl(fd, F_GETFL, 0);
    ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto* c = new connection;
    c->fd = fd;
    if (ctx_) {
      c->ssl = SSL_new(ctx_);
      SSL_set_fd(c->ssl, fd);
      SSL_set_accept_state(c->ssl);
    }
    open_.fetch_add(1);
    park(c);
  }

  /// Hands a connection (new, or between requests) to the poller.
  void park(connection* c) {
    auto now = clock_type::now();
    c->idle_until = now + o_.idle_timeout;
    c->in_request = c->buffered() > 0;
    if (c->in_request)
      c->read_until = now + o_.read_timeout;
    {
      std::lock_guard<std::mutex> g{mtx_};
      serving_.erase(c);
      if (stopping_) {
        drop(c);
        return;
      }
      handoff_.push_back(c);
    }
    uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(wake_, &one, sizeof(one));
  }

private:
  void drop(connection* c) {
    delete c;
    open_.fetch_sub(1);
  }

  void poll_loop() {
    std::vector<epoll_event> events(64);
    while (!stopping_) {
      int timeout = next_timeout_ms();
      int n = ::epoll_wait(ep_, events.data(), static_cast<int>(events.size()), timeout);
      for (int i = 0; i < n; ++i) {
        auto* c = static_cast<connection*>(events[static_cast<std::size_t>(i)].data.ptr);
        if (!c) {
          uint64_t v;
          [[maybe_unused]] auto r = ::read(wake_, &v, sizeof(v));
          continue;
        }
        if (parked_.count(c))
          advance(c);
      }
      take_handoffs();
      expire();
    }
    parked_.clear();
  }

  void take_handoffs() {
    std::vector<connection*> xs;
    {
      std::lock_guard<std::mutex> g{mtx_};
      xs.swap(handoff_);
    }
    for (auto* c : xs) {
      if (c->fresh) {
        c->fresh = false;
        if (!make_room()) {
          refuse(c);
          continue;
        }
      }
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
      ev.data.ptr = c;
      if (::epoll_ctl(ep_, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        drop(c);
        continue;
      }
      parked_.emplace(c, std::unique_ptr<connection>(c));
      advance(c); // bytes may already be buffered, or arrived before the add
    }
  }

  /// At max_connections, a new connection takes the place of the parked one that has
  /// waited longest: idle between requests first, then the slowest to send its head.
  /// Holding connections open thus never locks out /healthz. False: every connection
  /// is being served, the new one is refused.
  bool make_room() {
    if (open_.load() <= o_.max_connections)
      return true;
    connection* victim = nullptr;
    for (auto& [c, owned] : parked_) {
      if (!victim || c->in_request < victim->in_request ||
          (c->in_request == victim->in_request &&
           (c->in_request ? c->read_until < victim->read_until : c->idle_until < victim->idle_until)))
        victim = c;
    }
    if (!victim)
      return false;
    n_.evicted.fetch_add(1, std::memory_order_relaxed);
    static log_limit limit;
    if (uint64_t held; limit.allow(held))
      log().warn(
          "admin API: {} connections open (max_connections): closing the longest-waiting idle or slow one "
          "for a new one ({} more since the last report)",
          o_.max_connections, held);
    close_parked(victim);
    return true;
  }

  void refuse(connection* c) {
    n_.refused.fetch_add(1, std::memory_order_relaxed);
    static log_limit limit;
    if (uint64_t held; limit.allow(held))
      log().warn(
          "admin API: all {} connections (max_connections) are being served: refusing a new one ({} more "
          "since the last report)",
          o_.max_connections, held);
    drop(c);
  }

  /// Reads what is there (handshake first with TLS); a complete head goes to a worker.
  void advance(connection* c) {
    if (c->ssl && !c->handshaken) {
      ERR_clear_error();
      int r = SSL_do_handshake(c->ssl);
      if (r != 1) {
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
          mark_request_start(c);
          return;
        }
        n_.tls_failures.fetch_add(1, std::memory_order_relaxed);
        close_parked(c);
        return;
      }
      c->handshaken = true;
    }
    char chunk[4096];
    for (;;) {
      auto head = c->head_size();
      if (head != std::string_view::npos && head <= o_.header_limit) {
        dispatch(c);
        return;
      }
      if (head != std::string_view::npos || c->buffered() > o_.header_limit) {
        // Too long a head: a short answer, then close.
        static const char answer[] = "HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
                                     "Content-Length: 0\r\n\r\n";
        n_.rejected.fetch_add(1, std::memory_order_relaxed);
        if (c->ssl)
          SSL_write(c->ssl, answer, sizeof(answer) - 1);
        else [[maybe_unused]]
          auto r = ::send(c->fd, answer, sizeof(answer) - 1, MSG_NOSIGNAL);
        close_parked(c);
        return;
      }
      ssize_t got = 0;
      switch (read_some(*c, chunk, sizeof(chunk), got)) {
        case io::data:
          c->buf.append(chunk, static_cast<std::size_t>(got));
          mark_request_start(c);
          break;
        case io::again:
          return;
        case io::closed:
          close_parked(c);
          return;
      }
    }
  }

  void mark_request_start(connection* c) {
    if (!c->in_request) {
      c->in_request = true;
      c->read_until = clock_type::now() + o_.read_timeout;
    }
  }

  void dispatch(connection* c) {
    ::epoll_ctl(ep_, EPOLL_CTL_DEL, c->fd, nullptr);
    parked_.find(c)->second.release();
    parked_.erase(c);
    {
      std::lock_guard<std::mutex> g{mtx_};
      serving_.insert(c);
    }
    workers_->enqueue([this, c] { serve(c); });
  }

  void close_parked(connection* c) {
    ::epoll_ctl(ep_, EPOLL_CTL_DEL, c->fd, nullptr);
    parked_.erase(c);
    open_.fetch_sub(1);
  }

  void expire() {
    auto now = clock_type::now();
    std::vector<connection*> gone;
    for (auto& [c, owned] : parked_) {
      if (c->in_request ? now >= c->read_until : now >= c->idle_until) {
        (c->in_request ? n_.read_timeouts : n_.idle_closes).fetch_add(1, std::memory_order_relaxed);
        gone.push_back(c);
      }
    }
    for (auto* c : gone)
      close_parked(c);
  }

  int next_timeout_ms() const {
    if (parked_.empty())
      return -1;
    auto next = clock_type::time_point::max();
    for (auto& [c, owned] : parked_)
      next = std::min(next, c->in_request ? c->read_until : c->idle_until);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(next - clock_type::now()).count();
    return static_cast<int>(std::clamp<long long>(ms + 1, 0, 60000));
  }

  /// One carried response on the stream writer.
  struct carried {
    std::unique_ptr<connection> c;
    std::string out; ///< to send; out[sent..]
    std::size_t sent = 0;
    bool last = false; ///< pull() said the response is complete
    clock_type::time_point progress = clock_type::now();
    std::size_t pending() const { return out.size() - sent; }
  };

  /// The stream writer: every carried response, on one thread. Each tick (50 ms, or
  /// when the socket can take more) it pulls what is due while little is unsent,
  /// writes without blocking, and closes streams whose clients left or stopped
  /// reading. The source of a stream that is not read is not pulled: its own queue
  /// limit then applies (the live view resyncs such a watcher).
  void stream_loop() {
    constexpr std::size_t high_water = 256 * 1024;
    constexpr auto tick = std::chrono::milliseconds(50);
    std::vector<std::unique_ptr<carried>> xs;
    std::vector<pollfd> fds;
    auto next_pull = clock_type::now();
    auto close = [&](std::size_t i) {
      n_.streams_open.fetch_sub(1, std::memory_order_relaxed);
      open_.fetch_sub(1);
      xs[i] = std::move(xs.back());
      xs.pop_back();
    };
    while (!stopping_) {
      {
        std::lock_guard<std::mutex> g{mtx_};
        for (auto* c : stream_handoff_) {
          auto x = std::make_unique<carried>();
          x->c.reset(c);
          x->out = std::move(c->carry_head);
          n_.streams.fetch_add(1, std::memory_order_relaxed);
          n_.streams_open.fetch_add(1, std::memory_order_relaxed);
          xs.push_back(std::move(x));
        }
        stream_handoff_.clear();
      }
      auto now = clock_type::now();
      if (now >= next_pull) {
        next_pull = now + tick;
        for (auto& x : xs)
          if (!x->last && x->pending() < high_water)
            x->last = !x->c->carry(x->out);
      }
      // Write, then drop what ended: sent out, client gone, or not read for long.
      for (std::size_t i = xs.size(); i-- > 0;) {
        auto& x = *xs[i];
        bool gone = !flush(x) || drained(*x.c);
        if (!gone && x.pending() > 0 && clock_type::now() - x.progress >= o_.write_timeout) {
          n_.stream_stalls.fetch_add(1, std::memory_order_relaxed);
          gone = true;
        }
        if (gone || (x.last && x.pending() == 0))
          close(i);
      }
      fds.assign(1, pollfd{stream_wake_, POLLIN, 0});
      for (auto& x : xs)
        fds.push_back(pollfd{x->c->fd, static_cast<short>(POLLIN | (x->pending() ? POLLOUT : 0)), 0});
      auto wait =
          std::chrono::duration_cast<std::chrono::milliseconds>(next_pull - clock_type::now()).count();
      int timeout = xs.empty() ? -1 : static_cast<int>(std::clamp<long long>(wait, 0, 50));
      if (::poll(fds.data(), fds.size(), timeout) > 0 && (fds[0].revents & POLLIN)) {
        uint64_t v;
        [[maybe_unused]] auto r = ::read(stream_wake_, &v, sizeof(v));
      }
    }
    for (std::size_t i = xs.size(); i-- > 0;)
      close(i);
  }

  /// Writes what it can without blocking; false: the connection failed.
  static bool flush(carried& x) {
    while (x.pending() > 0) {
      auto* data = x.out.data() + x.sent;
      auto size = x.pending();
      if (x.c->ssl) {
        ERR_clear_error();
        int r = SSL_write(x.c->ssl, data, static_cast<int>(std::min<std::size_t>(size, 1 << 20)));
        if (r <= 0) {
          int e = SSL_get_error(x.c->ssl, r);
          return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ;
        }
        x.sent += static_cast<std::size_t>(r);
      } else {
        auto r = ::send(x.c->fd, data, size, MSG_NOSIGNAL);
        if (r < 0)
          return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        x.sent += static_cast<std::size_t>(r);
      }
      x.progress = clock_type::now();
    }
    x.out.clear();
    x.sent = 0;
    x.progress = clock_type::now();
    return true;
  }

  /// Reads and drops what a stream's client sends; true: it closed its side.
  static bool drained(connection& c) {
    char scratch[4096];
    for (int round = 0; round < 16; ++round) {
      ssize_t got = 0;
      switch (read_some(c, scratch, sizeof(scratch), got)) {
        case io::data:
          continue;
        case io::again:
          return false;
        case io::closed:
          return true;
      }
    }
    return false;
  }

  /// On a worker: the requests whose heads are buffered, then back to the poller.
  void serve(connection* c) {
    current = c;
    connection_stream strm{*c, o_};
    bool keep = false;
    try {
      for (;;) {
        if (stopping_)
          break;
        c->close = false;
        c->body_too_large = false;
        c->body_read = 0;
        c->counting_body = false;
        bool last = ++c->requests >= o_.max_requests;
        bool client_closes = false;
        bool ok = s_.process_request(strm, last, client_closes, [this, c](httplib::Request& req) {
          // Headers read: from here every byte httplib reads is the body.
          c->counting_body = true;
          verdict_ = check_framing(req, o_.body_limit);
          if (verdict_.status != 0) {
            // Answered without reading the body: the connection must close after it.
            c->close = true;
            req.headers.erase("Expect");
            req.set_header("Connection", "close");
          }
        });
        c->counting_body = false;
        c->in_request = false;
        if (c->carry)
          break;
        if (!ok || client_closes || last || c->close)
          break;
        if (!c->has_head()) {
          keep = true;
          break;
        }
        c->read_until = clock_type::now() + o_.read_timeout;
      }
    } catch (const std::exception& e) {
      log().warn("admin API: connection dropped: {}", e.what());
    }
    current = nullptr;
    if (c->carry) {
      carry(c);
      return;
    }
    if (keep) {
      park(c);
      return;
    }
    {
      std::lock_guard<std::mutex> g{mtx_};
      serving_.erase(c);
    }
    drop(c);
  }

public:
  /// The framing verdict of the request the calling worker serves.
  static thread_local verdict verdict_;

private:
  admin_server& s_;
  const admin_server_options& o_;
  admin_server_counters& n_;
  SSL_CTX* ctx_ = nullptr;
  int ep_ = -1, wake_ = -1, stream_wake_ = -1;
  std::thread poller_, streamer_;
  std::unique_ptr<httplib::ThreadPool> workers_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> open_{0};
  std::mutex mtx_;
  std::vector<connection*> handoff_;                                    ///< to the poller (mtx_)
  std::vector<connection*> stream_handoff_;                             ///< to the stream writer (mtx_)
  std::unordered_set<connection*> serving_;                             ///< on workers (mtx_)
  std::unordered_map<connection*, std::unique_ptr<connection>> parked_; ///< poller thread only
};

thread_local verdict admin_server::impl::verdict_{};

namespace {

/// httplib hands each accepted socket to its task queue; ours passes it straight on
/// (process_and_close_socket only parks it with the poller).
struct inline_queue : httplib::TaskQueue {
  void enqueue(std::function<void()> fn) override { fn(); }
  void shutdown() override {}
};

} // namespace

admin_server::admin_server(admin_server_options opts)
  : opts_(std::move(opts)), counters_(std::make_shared<admin_server_counters>()) {
  impl_ = std::make_unique<impl>(*this);
  new_task_queue = [] { return new inline_queue; };
  set_payload_max_length(opts_.body_limit);
  set_keep_alive_max_count(std::max<std::size_t>(1, opts_.max_requests));
  set_keep_alive_timeout(
      std::max<time_t>(1, std::chrono::duration_cast<std::chrono::seconds>(opts_.idle_timeout).count()));
  set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    auto v = impl::verdict_;
    impl::verdict_ = {};
    if (v.status != 0) {
      counters_->rejected.fetch_add(1, std::memory_order_relaxed);
      reply_error(res, v.status, v.error);
      return HandlerResponse::Handled;
    }
    return guard_ ? guard_(req, res) : HandlerResponse::Unhandled;
  });
  set_error_handler(HandlerWithResponse{[this](const httplib::Request&, httplib::Response& res) {
    if (current && current->body_too_large) {
      counters_->rejected.fetch_add(1, std::memory_order_relaxed);
      reply_error(res, 413, "request body larger than the admin API's body_limit");
    } else if (res.body.empty()) {
      reply_error(res, res.status, status_text(res.status));
    }
    if (current && current->close)
      res.set_header("Connection", "close");
    return HandlerResponse::Handled;
  }});
}

admin_server::~admin_server() {
  stop();
  impl_->stop();
}

bool admin_server::tls() const {
  return impl_->tls();
}

void admin_server::close_after_reply() {
  if (current)
    current->close = true;
}

bool admin_server::carry(std::string head, stream_pull pull) {
  if (!current || !pull)
    return false;
  current->carry_head = std::move(head);
  current->carry = std::move(pull);
  current->close = true;
  return true;
}

std::string admin_server::start() {
  if (auto err = impl_->init_tls(); !err.empty())
    return err;
  int port = opts_.port == 0 ? bind_to_any_port(opts_.bind)
                             : (bind_to_port(opts_.bind, opts_.port) ? opts_.port : -1);
  if (port < 0)
    return "admin API: cannot bind " + opts_.bind + ":" + std::to_string(opts_.port);
  port_ = static_cast<uint16_t>(port);
  // httplib listens with a backlog of 5: a burst of clients would see refused SYNs.
  ::listen(svr_sock_, opts_.backlog);
  return impl_->start();
}

bool admin_server::process_and_close_socket(socket_t sock) {
  impl_->accepted(sock);
  return true;
}

} // namespace warren::gateway
