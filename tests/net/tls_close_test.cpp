// warren::net over TLS: close_notify on graceful closes (protocol close, peer EOF,
// drain, listener stop), none on abortive ones (overflow, kill), and handshake
// failures counted by reason. The client side is a raw blocking OpenSSL SSL*, so the
// test sees exactly what SSL_read / SSL_shutdown report.
#include "net_support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

using namespace net_test;

namespace {

/// A blocking TLS client on a raw socket; every read and write times out after 5 s
/// (SO_RCVTIMEO / SO_SNDTIMEO), so a missing answer fails the test instead of hanging.
class raw_tls {
public:
  explicit raw_tls(uint16_t port, int max_version = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
    if (max_version != 0)
      SSL_CTX_set_max_proto_version(ctx_, max_version);
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
  }
  raw_tls(const raw_tls&) = delete;
  raw_tls& operator=(const raw_tls&) = delete;
  ~raw_tls() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
    ::close(fd_);
  }

  bool handshake() {
    ERR_clear_error();
    return SSL_connect(ssl_) == 1;
  }

  bool write(const std::string& s) {
    ERR_clear_error();
    return SSL_write(ssl_, s.data(), static_cast<int>(s.size())) == static_cast<int>(s.size());
  }

  /// Reads until `want` bytes arrived; false if the stream ended or timed out first.
  bool read_exact(std::size_t want, std::string& out) {
    while (out.size() < want) {
      char buf[4096];
      ERR_clear_error();
      int n = SSL_read(ssl_, buf, sizeof buf);
      if (n <= 0)
        return false;
      out.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }

  /// Reads until SSL_read fails or ends; returns SSL_get_error() of that last call:
  /// SSL_ERROR_ZERO_RETURN is a close_notify from the server.
  int read_to_end(std::string& out) {
    for (;;) {
      char buf[16384];
      ERR_clear_error();
      int n = SSL_read(ssl_, buf, sizeof buf);
      if (n <= 0)
        return SSL_get_error(ssl_, n);
      out.append(buf, static_cast<std::size_t>(n));
    }
  }

  /// Sends our close_notify and waits for the server's: 1 if it came.
  int shutdown() {
    ERR_clear_error();
    int r = SSL_shutdown(ssl_);
    if (r == 0)
      r = SSL_shutdown(ssl_);
    return r;
  }

private:
  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
};

/// probe_protocol, plus "bye" -> sends "bye" and closes.
class closing_protocol : public probe_protocol {
public:
  void on_frames(net::connection_context& ctx, std::span<const std::string_view> frames) override {
    for (std::size_t i = 0; i < frames.size(); ++i) {
      if (frames[i] == "bye") {
        ctx.send("bye");
        ctx.close();
        return;
      }
      probe_protocol::on_frames(ctx, frames.subspan(i, 1));
    }
  }
};

net::protocol_factory closing_factory() {
  return [] { return std::make_unique<closing_protocol>(); };
}

net::listener_options tls_opts() {
  net::listener_options o;
  o.tls = server_tls();
  return o;
}

} // namespace

TEST_CASE("protocol close(): the client reads everything, then a close_notify") {
  fixture f{tls_opts(), closing_factory()};
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    CAPTURE(version);
    raw_tls c{f.port, version};
    REQUIRE(c.handshake());
    REQUIRE(c.write("hello\nbye\nnever\n"));
    std::string got;
    CHECK(c.read_to_end(got) == SSL_ERROR_ZERO_RETURN);
    CHECK(got == "hello\nbye\n");
  }
  CHECK(f.eventually([](const auto& x) { return x.closed == 2 && x.active == 0; }));
}

TEST_CASE("peer EOF: the client's close_notify is answered with the server's") {
  fixture f{tls_opts(), closing_factory()};
  raw_tls c{f.port};
  REQUIRE(c.handshake());
  REQUIRE(c.write("ping\n"));
  std::string got;
  REQUIRE(c.read_exact(5, got));
  CHECK(got == "ping\n");
  CHECK(c.shutdown() == 1);
  CHECK(f.eventually([](const auto& x) { return x.closed == 1 && x.active == 0; }));
}

TEST_CASE("drain and listener stop close with close_notify") {
  fixture f{tls_opts(), closing_factory()};
  raw_tls a{f.port}, b{f.port};
  REQUIRE(a.handshake());
  REQUIRE(b.handshake());
  std::string got;
  REQUIRE(a.write("a\n"));
  REQUIRE(a.read_exact(2, got));
  REQUIRE(b.write("b\n"));
  got.clear();
  REQUIRE(b.read_exact(2, got));
  SUBCASE("drain") {
    auto forced = net::listener::drain(*f.sys, f.id, 0ms);
    REQUIRE(forced);
    CHECK(*forced == 2);
  }
  SUBCASE("listener stopped by its supervisor") {
    REQUIRE_FALSE(warren::sup::terminate_child(*f.sys, f.top, "L"));
  }
  got.clear();
  CHECK(a.read_to_end(got) == SSL_ERROR_ZERO_RETURN);
  CHECK(b.read_to_end(got) == SSL_ERROR_ZERO_RETURN);
  CHECK(got.empty());
}

TEST_CASE("abortive closes send no close_notify (overflow, kill)") {
  auto o = tls_opts();
  o.high_watermark = 64 * 1024;
  o.low_watermark = 16 * 1024;
  fixture f{o, closing_factory()};
  SUBCASE("overflow") {
    raw_tls c{f.port};
    REQUIRE(c.handshake());
    REQUIRE(c.write("flood\n")); // 1 MiB queued at once: over the high watermark
    std::string got;
    int err = c.read_to_end(got);
    CHECK(err != SSL_ERROR_ZERO_RETURN);
    CHECK(err != SSL_ERROR_WANT_READ); // ended, not timed out
    CHECK(f.eventually([](const auto& x) { return x.overflow_closes == 1 && x.active == 0; }));
  }
  SUBCASE("kill") {
    raw_tls c{f.port};
    REQUIRE(c.handshake());
    REQUIRE(c.write("register\n"));
    std::string got;
    REQUIRE(c.read_exact(11, got));
    REQUIRE(got == "registered\n");
    auto ep = warren::whereis(*f.sys, "device");
    REQUIRE(ep);
    caf::anon_send_exit(ep, caf::exit_reason::kill);
    int err = c.read_to_end(got);
    CHECK(err != SSL_ERROR_ZERO_RETURN);
    CHECK(err != SSL_ERROR_WANT_READ);
    CHECK(f.eventually([](const auto& x) { return x.active == 0; }));
  }
}

TEST_CASE("a client that never reads cannot hold a graceful close open") {
  // close() with 1 MiB queued to a peer that does not read: the flush is bounded
  // (handshake_timeout), then the connection goes.
  auto o = tls_opts();
  o.handshake_timeout = 300ms;
  o.high_watermark = 4 << 20;
  fixture f{o, closing_factory()};
  raw_tls c{f.port};
  REQUIRE(c.handshake());
  REQUIRE(c.write("flood\nbye\n"));
  CHECK(f.eventually([](const auto& x) { return x.closed == 1 && x.active == 0; }));
}

// -- handshake failures by reason -----------------------------------------------

TEST_CASE("handshake failure reasons: not_tls (HTTP, binary garbage)") {
  fixture f{tls_opts()};
  {
    client bad{f.port};
    bad.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(bad.wait_closed());
  }
  {
    client bad{f.port};
    bad.send("hello, this is not a ClientHello\n");
    CHECK(bad.wait_closed());
  }
  CHECK(f.eventually([](const auto& x) { return x.handshake_not_tls == 2 && x.active == 0; }));
  auto k = f.counters();
  CHECK(k.handshake_tls_error == 2);
  CHECK(k.handshake_other == 0);
  CHECK(k.handshake_failures() == 2);
}

TEST_CASE("handshake failure reasons: unsupported_version") {
  auto o = tls_opts();
  o.tls->min_version = net::tls_version::tls13;
  fixture f{o};
  client c{f.port, client_tls(TLS1_2_VERSION)};
  CHECK_FALSE(c.handshake());
  CHECK(f.eventually([](const auto& x) { return x.handshake_unsupported_version == 1 && x.active == 0; }));
  CHECK(f.counters().handshake_tls_error == 1);
}

TEST_CASE("handshake failure reasons: no_shared_cipher") {
  fixture f{tls_opts()}; // the server has an EC key
  auto ctx = client_tls(TLS1_2_VERSION);
  REQUIRE(SSL_CTX_set_cipher_list(ctx->native_handle(), "AES128-SHA256") == 1); // RSA only
  client c{f.port, ctx};
  CHECK_FALSE(c.handshake());
  CHECK(f.eventually([](const auto& x) { return x.handshake_no_shared_cipher == 1 && x.active == 0; }));
  CHECK(f.counters().handshake_tls_error == 1);
}

TEST_CASE("handshake failure reasons: mTLS client_cert_required and bad_client_cert") {
  net::listener_options o;
  o.tls = server_tls(true);
  fixture f{o};
  SUBCASE("no certificate") {
    for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
      client c{f.port, client_tls(version)};
      c.handshake(); // TLS 1.3: the client may finish before the server checks
      c.send("hello\n");
      CHECK_FALSE(c.read_line().has_value());
    }
    CHECK(f.eventually([](const auto& x) { return x.handshake_client_cert_required == 2 && x.active == 0; }));
  }
  SUBCASE("a certificate the server's CA did not sign") {
    auto ctx = client_tls();
    ctx->use_certificate_file(certs::get().server_cert, asio::ssl::context::pem); // self-signed "test"
    ctx->use_private_key_file(certs::get().server_key, asio::ssl::context::pem);
    client c{f.port, ctx};
    c.handshake();
    c.send("hello\n");
    CHECK_FALSE(c.read_line().has_value());
    CHECK(f.eventually([](const auto& x) { return x.handshake_bad_client_cert == 1 && x.active == 0; }));
  }
  auto k = f.counters();
  CHECK(k.handshake_other == 0);
  CHECK(k.handshake_tls_error == k.handshake_client_cert_required + k.handshake_bad_client_cert);
}
