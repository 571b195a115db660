// warren::net listener over TLS: versions, mTLS, bad and silent clients.
#include "net_support.hpp"

using namespace net_test;

namespace {
net::listener_options tls_opts(bool mtls = false) {
  net::listener_options o;
  o.tls = server_tls(mtls);
  return o;
}
} // namespace

TEST_CASE("TLS 1.2 and TLS 1.3 echo") {
  fixture f{tls_opts()};
  {
    client c{f.port, client_tls(TLS1_2_VERSION)};
    REQUIRE(c.handshake());
    c.send("whoami\nhello\n");
    CHECK(c.read_line() == "TLSv1.2|");
    CHECK(c.read_line() == "hello");
  }
  {
    client c{f.port, client_tls()};
    REQUIRE(c.handshake());
    c.send("whoami\nhello\n");
    CHECK(c.read_line() == "TLSv1.3|");
    CHECK(c.read_line() == "hello");
  }
  CHECK(f.counters().handshake_failures() == 0);
}

TEST_CASE("mTLS: a client certificate is verified and its subject visible") {
  fixture f{tls_opts(true)};
  client c{f.port, client_tls(0, true)};
  REQUIRE(c.handshake());
  c.send("whoami\n");
  CHECK(c.read_line() == "TLSv1.3|client");
}

TEST_CASE("mTLS: a client without a certificate is rejected") {
  fixture f{tls_opts(true)};
  client c{f.port, client_tls()};
  c.handshake(); // TLS 1.3: the client may finish before the server checks
  c.send("hello\n");
  CHECK_FALSE(c.read_line().has_value());
  CHECK(f.eventually([](const auto& x) { return x.handshake_tls_error == 1 && x.active == 0; }));
  CHECK(f.counters().handshake_client_cert_required == 1);
  client ok{f.port, client_tls(0, true)};
  REQUIRE(ok.handshake());
  ok.send("hi\n");
  CHECK(ok.read_line() == "hi");
}

TEST_CASE("garbage instead of a ClientHello is a counted handshake failure") {
  fixture f{tls_opts()};
  client bad{f.port};
  bad.send("GET / HTTP/1.0\r\n\r\n");
  CHECK(bad.wait_closed());
  CHECK(f.eventually([](const auto& x) { return x.handshake_tls_error == 1 && x.active == 0; }));
  CHECK(f.counters().handshake_not_tls == 1);
  client c{f.port, client_tls()};
  REQUIRE(c.handshake());
  c.send("fine\n");
  CHECK(c.read_line() == "fine");
}

TEST_CASE("a client that never speaks is closed after handshake_timeout") {
  auto o = tls_opts();
  o.handshake_timeout = 200ms;
  fixture f{o};
  auto t0 = std::chrono::steady_clock::now();
  client silent{f.port};
  CHECK(silent.wait_closed());
  CHECK(std::chrono::steady_clock::now() - t0 >= 150ms);
  CHECK(f.eventually([](const auto& x) { return x.handshake_timeout == 1 && x.active == 0; }));
}
