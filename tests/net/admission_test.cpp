// TLS handshake admission (listener_options::max_handshakes, hello_timeout): a bound on
// the handshakes in progress, slow ClientHellos that hold no slot, bursts larger than
// the bound all served.
#include "net_support.hpp"
#include "raw_socket.hpp"

#include <openssl/bio.h>
#include <openssl/ssl.h>

using namespace net_test;

namespace {

net::listener_options admission_opts(std::size_t max_handshakes) {
  net::listener_options o;
  o.tls = server_tls();
  o.max_handshakes = max_handshakes;
  // Long: only admission (not a timeout) may let the honest clients through.
  o.hello_timeout = 30s;
  o.handshake_timeout = 30s;
  return o;
}

/// A TLS client driven by hand over a raw socket (OpenSSL on memory BIOs): its
/// ClientHello can be sent in pieces, and it can stop half-way through the handshake.
class manual_tls_client {
public:
  explicit manual_tls_client(uint16_t port) {
    ctx_ = SSL_CTX_new(TLS_client_method()); // verifies nothing: the test certificate is self-signed
    ssl_ = SSL_new(ctx_);
    auto* rbio = BIO_new(BIO_s_mem());
    auto* wbio = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl_, rbio, wbio); // owned by ssl_ now
    wbio_ = wbio;
    rbio_ = rbio;
    SSL_set_connect_state(ssl_);
    SSL_do_handshake(ssl_); // writes the ClientHello into wbio
    hello_ = pending_output();
    REQUIRE(hello_.size() > 20);
    REQUIRE(sock_.connect(port));
  }
  ~manual_tls_client() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
  }
  manual_tls_client(const manual_tls_client&) = delete;
  manual_tls_client& operator=(const manual_tls_client&) = delete;

  const std::string& hello() const { return hello_; }
  bool send(std::string_view bytes) { return sock_.write_all(bytes); }

  /// Runs the rest of the handshake (after the whole ClientHello was sent): true once
  /// it completed, false on failure, EOF or timeout.
  bool finish(std::chrono::milliseconds timeout = 10000ms) {
    auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      int r = SSL_do_handshake(ssl_);
      if (!send(pending_output()))
        return false;
      if (r == 1)
        return true;
      if (SSL_get_error(ssl_, r) != SSL_ERROR_WANT_READ)
        return false;
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      if (left.count() <= 0 || (sock_.wait(POLLIN, left) & (POLLIN | POLLHUP | POLLERR)) == 0)
        return false;
      char buf[16384];
      auto n = ::recv(sock_.fd(), buf, sizeof buf, 0);
      if (n <= 0)
        return false;
      BIO_write(rbio_, buf, static_cast<int>(n));
    }
  }

  /// True once the server has sent something (its handshake flight) within the timeout.
  bool answered(std::chrono::milliseconds timeout) { return (sock_.wait(POLLIN, timeout) & POLLIN) != 0; }

  /// True once the server has closed the connection (within the timeout).
  bool wait_closed(std::chrono::milliseconds timeout = 5000ms) { return sock_.wait_closed(timeout); }
  void close() { sock_.close(); }

private:
  std::string pending_output() {
    std::string out;
    char buf[4096];
    int n = 0;
    while ((n = BIO_read(wbio_, buf, sizeof buf)) > 0)
      out.append(buf, static_cast<std::size_t>(n));
    return out;
  }

  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;
  BIO* wbio_ = nullptr;
  raw_socket sock_;
  std::string hello_;
};

} // namespace

TEST_CASE("clients trickling a ClientHello hold no handshake slot: an honest client gets through") {
  fixture f{admission_opts(2)};
  std::vector<std::unique_ptr<manual_tls_client>> slow;
  for (int i = 0; i < 8; ++i) {
    slow.push_back(std::make_unique<manual_tls_client>(f.port));
    REQUIRE(slow.back()->send(std::string_view{slow.back()->hello()}.substr(0, 10)));
  }
  // All accepted, though the bound is 2: none of them holds a slot.
  CHECK(f.eventually([](const auto& x) { return x.accepted == 8; }));
  client honest{f.port, client_tls()};
  REQUIRE(honest.handshake());
  honest.send("hello\n");
  CHECK(honest.read_line() == "hello");
  // A slow one whose ClientHello becomes whole gets a slot and its handshake.
  auto& s = *slow.front();
  REQUIRE(s.send(std::string_view{s.hello()}.substr(10)));
  CHECK(s.finish());
  CHECK(f.counters().handshake_failures() == 0);
}

TEST_CASE("at max_handshakes the acceptors wait: the other clients stay in the accept queue, and each "
          "handshake that ends lets the next one in") {
  auto o = admission_opts(1);
  o.num_acceptors = 1;
  fixture f{o};
  // Clients that send their whole ClientHello and then stall: each accepted one holds
  // its slot until it goes.
  constexpr std::size_t n = 5;
  std::vector<std::unique_ptr<manual_tls_client>> stalls;
  for (std::size_t i = 0; i < n; ++i) {
    stalls.push_back(std::make_unique<manual_tls_client>(f.port));
    REQUIRE(stalls.back()->send(stalls.back()->hello()));
  }
  REQUIRE(f.eventually([](const auto& x) { return x.accepted >= 1; }));
  std::this_thread::sleep_for(300ms); // no more may come: an accept takes microseconds
  // One handshake, plus at most one accepted while the first one's ClientHello was still
  // on its way (its slot was free for that instant); the rest wait in the kernel.
  CHECK(f.counters().accepted <= 2);
  std::vector<bool> answered(n, false);
  std::size_t done = 0;
  auto until = std::chrono::steady_clock::now() + 30s; // safety net only
  while (done < n && std::chrono::steady_clock::now() < until)
    for (std::size_t i = 0; i < n; ++i)
      if (!answered[i] && stalls[i]->answered(10ms)) { // the server's flight: its handshake ran
        answered[i] = true;
        ++done;
        stalls[i]->close(); // its handshake ends (peer_closed): the slot goes to the next
      }
  CHECK(done == n);
  CHECK(f.eventually([](const auto& x) { return x.accepted == n && x.handshake_peer_closed == n; }));
}

TEST_CASE("a burst of 60 TLS clients against max_handshakes 2: every one is served") {
  fixture f{admission_opts(2)};
  constexpr int n = 60;
  asio::io_context io;
  auto ctx = client_tls();
  struct conn {
    asio::ssl::stream<asio::ip::tcp::socket> s;
    std::string out, in;
    conn(asio::io_context& io, asio::ssl::context& c) : s(io, c) {}
  };
  std::vector<std::unique_ptr<conn>> conns;
  int served = 0, failed = 0;
  asio::ip::tcp::endpoint ep{asio::ip::make_address("127.0.0.1"), f.port};
  for (int i = 0; i < n; ++i) {
    conns.push_back(std::make_unique<conn>(io, *ctx));
    auto* p = conns.back().get();
    p->out = "device-" + std::to_string(i) + "\n";
    p->s.next_layer().async_connect(ep, [&, p](const asio::error_code& ec) {
      if (ec)
        return void(++failed);
      p->s.async_handshake(asio::ssl::stream_base::client, [&, p](const asio::error_code& ec2) {
        if (ec2)
          return void(++failed);
        asio::async_write(p->s, asio::buffer(p->out), [&, p](const asio::error_code& ec3, std::size_t) {
          if (ec3)
            return void(++failed);
          asio::async_read_until(p->s, asio::dynamic_buffer(p->in), '\n',
                                 [&, p](const asio::error_code& ec4, std::size_t) {
                                   if (!ec4 && p->in == p->out)
                                     ++served;
                                   else
                                     ++failed;
                                 });
        });
      });
    });
  }
  auto until = std::chrono::steady_clock::now() + 60s; // safety net only
  while (served + failed < n && std::chrono::steady_clock::now() < until)
    io.run_one_until(until);
  CHECK(failed == 0);
  CHECK(served == n);
  auto c = f.counters();
  CHECK(c.accepted == n);
  CHECK(c.handshake_failures() == 0);
}

TEST_CASE("a ClientHello not whole within hello_timeout: closed and counted, before handshake_timeout") {
  auto o = admission_opts(0);
  o.hello_timeout = 200ms;
  fixture f{o};
  manual_tls_client slow{f.port};
  REQUIRE(slow.send(std::string_view{slow.hello()}.substr(0, 10)));
  CHECK(slow.wait_closed(10000ms)); // handshake_timeout is 30 s
  CHECK(f.eventually([](const auto& x) { return x.hello_timeouts == 1 && x.handshake_timeout == 1; }));
  // A client that sent its whole ClientHello is past hello_timeout: only handshake_timeout applies.
  manual_tls_client whole{f.port};
  REQUIRE(whole.send(whole.hello()));
  std::this_thread::sleep_for(400ms);
  CHECK(whole.finish());
  CHECK(f.counters().hello_timeouts == 1);
}

TEST_CASE("handshake timeouts are summarised at info once per log_interval, with their count") {
  auto o = admission_opts(0);
  o.handshake_timeout = 100ms;
  o.log_interval = 200ms;
  fixture f{o};
  captured_log log{spdlog::level::info};
  {
    client a{f.port}, b{f.port}; // never speak
    CHECK(a.wait_closed());
    CHECK(b.wait_closed());
  }
  CHECK(f.eventually([](const auto& x) { return x.handshake_timeout == 2; }));
  // The two may fall in one interval or in two: the lines' counts add up to 2.
  auto logged = [&] {
    std::size_t sum = 0;
    const std::string head = "info listener L: in the last 200 ms: ";
    for (auto& l : log.lines_with("handshake timeouts"))
      if (l.rfind(head, 0) == 0)
        sum += std::stoul(l.substr(head.size()));
    return sum;
  };
  auto until = std::chrono::steady_clock::now() + 5s; // safety net only
  while (logged() < 2 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(20ms);
  CHECK(logged() == 2);
  CHECK(log.lines_with("2 of them without a whole ClientHello").size() +
            log.lines_with("1 of them without a whole ClientHello").size() >=
        1);
  // Not one line per timeout: at most one per interval, and none for a quiet interval.
  auto lines = log.lines_with("handshake timeouts");
  CHECK(lines.size() <= 2);
  std::this_thread::sleep_for(500ms);
  CHECK(log.lines_with("handshake timeouts").size() == lines.size());
}
