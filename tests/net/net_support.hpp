// Helpers for the warren::net tests: a certificate made with the openssl CLI, a small
// blocking-with-deadline Asio client (plain or TLS), and a listener under a supervisor.
#pragma once

#include <warren/log.hpp>
#include <warren/net/echo.hpp>
#include <warren/net/listener.hpp>
#include <warren/registry.hpp>
#include <warren/supervisor.hpp>

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <caf/all.hpp>
#include <doctest/doctest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace net_test {

using namespace std::chrono_literals;
namespace net = warren::net;

/// A temp dir with server (CN=test) and client (CN=client) certificates, made once.
struct certs {
  std::filesystem::path dir;
  std::string server_cert, server_key, client_cert, client_key;

  static const certs& get() {
    static certs c;
    return c;
  }

private:
  certs() {
    char tmpl[] = "/tmp/warren-net-test-XXXXXX";
    if (mkdtemp(tmpl) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    dir = tmpl;
    make("test", server_cert, server_key);
    make("client", client_cert, client_key);
  }
  void make(const std::string& cn, std::string& cert, std::string& key) {
    cert = (dir / (cn + ".crt")).string();
    key = (dir / (cn + ".key")).string();
    std::string cmd =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=" + cn +
        " -keyout " + key + " -out " + cert + " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0)
      throw std::runtime_error("openssl req failed");
  }

public:
  ~certs() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

inline net::tls_options server_tls(bool mtls = false) {
  const auto& c = certs::get();
  net::tls_options t;
  t.cert_file = c.server_cert;
  t.key_file = c.server_key;
  if (mtls) {
    t.ca_file = c.client_cert; // the self-signed client certificate is its own CA
    t.verify_peer = true;
  }
  return t;
}

/// Client TLS context: no server verification (self-signed), optional version cap
/// and client certificate.
inline std::shared_ptr<asio::ssl::context> client_tls(int max_version = 0, bool with_cert = false) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->set_verify_mode(asio::ssl::verify_none);
  if (max_version != 0)
    SSL_CTX_set_max_proto_version(ctx->native_handle(), max_version);
  if (with_cert) {
    ctx->use_certificate_file(certs::get().client_cert, asio::ssl::context::pem);
    ctx->use_private_key_file(certs::get().client_key, asio::ssl::context::pem);
  }
  return ctx;
}

/// One connection, driven from the test thread; every wait has a deadline.
class client {
public:
  explicit client(uint16_t port, std::shared_ptr<asio::ssl::context> tls = nullptr)
    : tls_ctx_(std::move(tls)) {
    asio::ip::tcp::socket s{io_};
    s.connect({asio::ip::make_address("127.0.0.1"), port});
    if (tls_ctx_)
      tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket>>(std::move(s), *tls_ctx_);
    else
      plain_ = std::make_unique<asio::ip::tcp::socket>(std::move(s));
  }

  /// TLS handshake; false if it failed or timed out.
  bool handshake(std::chrono::milliseconds timeout = 5000ms) {
    asio::error_code result = asio::error::would_block;
    tls_->async_handshake(asio::ssl::stream_base::client, [&](const asio::error_code& ec) { result = ec; });
    run(timeout, [&] { return result != asio::error::would_block; });
    return !result;
  }

  void send(const std::string& data) {
    asio::error_code result = asio::error::would_block;
    with([&](auto& s) {
      asio::async_write(s, asio::buffer(data), [&](const asio::error_code& ec, std::size_t) { result = ec; });
    });
    run(5000ms, [&] { return result != asio::error::would_block; });
  }

  /// The next line (without LF), or nothing on close, error or timeout.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout = 5000ms) {
    auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto pos = buf_.find('\n'); pos != std::string::npos) {
        auto line = buf_.substr(0, pos);
        buf_.erase(0, pos + 1);
        return line;
      }
      if (closed_ || !read_some(until))
        return std::nullopt;
    }
  }

  /// True once the server has closed the connection (within the timeout).
  bool wait_closed(std::chrono::milliseconds timeout = 5000ms) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (!closed_)
      if (!read_some(until))
        return closed_;
    return true;
  }

  void close() {
    asio::error_code ec;
    lowest().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    lowest().close(ec);
  }

  /// Exactly `n` bytes, or nothing on close, error or timeout.
  std::optional<std::string> read_exact(std::size_t n, std::chrono::milliseconds timeout = 5000ms) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (buf_.size() < n)
      if (closed_ || !read_some(until))
        return std::nullopt;
    auto out = buf_.substr(0, n);
    buf_.erase(0, n);
    return out;
  }

  /// Half-close: a TCP FIN (no TLS close_notify); reading goes on.
  void shutdown_send() {
    asio::error_code ec;
    lowest().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  }

  /// The client's OpenSSL connection (TLS only): for tests that drive TLS itself.
  SSL* ssl() { return tls_->native_handle(); }

  /// What ended reading once closed: asio::error::eof is a clean close (over TLS: the
  /// server's close_notify); asio::ssl::error::stream_truncated is TLS without one.
  asio::error_code close_error() const { return close_ec_; }

private:
  asio::ip::tcp::socket& lowest() { return tls_ ? tls_->next_layer() : *plain_; }
  template <class F>
  void with(F&& f) {
    if (tls_)
      f(*tls_);
    else
      f(*plain_);
  }

  // Runs the loop until `done()` or the deadline; on timeout cancels and drains.
  template <class P>
  void run(std::chrono::steady_clock::duration timeout, P done) {
    io_.restart();
    auto until = std::chrono::steady_clock::now() + timeout;
    while (!done() && std::chrono::steady_clock::now() < until)
      io_.run_one_until(until);
    if (!done()) {
      asio::error_code ec;
      lowest().cancel(ec);
      io_.restart();
      while (!done())
        io_.run_one();
    }
  }

  // One read; false on timeout. Sets closed_ on EOF or error.
  bool read_some(std::chrono::steady_clock::time_point until) {
    char tmp[4096];
    asio::error_code result = asio::error::would_block;
    std::size_t got = 0;
    with([&](auto& s) {
      s.async_read_some(asio::buffer(tmp), [&](const asio::error_code& ec, std::size_t n) {
        result = ec;
        got = n;
      });
    });
    auto now = std::chrono::steady_clock::now();
    run(until > now ? until - now : std::chrono::steady_clock::duration{0},
        [&] { return result != asio::error::would_block; });
    if (result == asio::error::operation_aborted)
      return false;
    if (result) {
      closed_ = true;
      close_ec_ = result;
      return true;
    }
    buf_.append(tmp, got);
    return true;
  }

  asio::io_context io_;
  std::shared_ptr<asio::ssl::context> tls_ctx_;
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket>> tls_;
  std::unique_ptr<asio::ip::tcp::socket> plain_;
  std::string buf_;
  bool closed_ = false;
  asio::error_code close_ec_;
};

/// Echo, plus: "whoami" -> "<tls version>|<verified subject>", "seq" -> frames in,
/// "tick" -> "tock 7" from a 50 ms timer, "register" -> registers the endpoint as
/// "device" (a string sent to it comes out as "push <text>"), "crash" -> throws, "flood" -> 1000 lines of 1
/// KiB.
class probe_protocol : public net::protocol {
public:
  void on_frames(net::connection_context& ctx, std::span<const std::string_view> frames) override {
    for (auto f : frames) {
      if (f == "whoami")
        ctx.send(ctx.info().tls_version + "|" + ctx.info().verified_subject);
      else if (f == "seq")
        ctx.send(std::to_string(ctx.frames_in()));
      else if (f == "register") {
        // Other actors can now find this connection and push to the device.
        auto self = ctx.self();
        warren::register_name(self->home_system(), "device", self);
        ctx.send("registered");
      } else if (f == "tick")
        ctx.start_timer(7, 50ms);
      else if (f == "crash")
        throw std::runtime_error("crash requested");
      else if (f == "flood")
        for (int i = 0; i < 1000; ++i)
          ctx.send(std::string(1024, 'x'));
      else
        ctx.send(f);
    }
  }
  bool on_message(net::connection_context& ctx, caf::message& msg) override {
    if (!msg.match_elements<std::string>())
      return false;
    return ctx.send("push " + msg.get_as<std::string>(0));
  }
  void on_timer(net::connection_context& ctx, uint64_t id) override {
    ctx.send("tock " + std::to_string(id));
  }
};

inline net::protocol_factory probe_factory() {
  return [] { return std::make_unique<probe_protocol>(); };
}

struct quiet_config : caf::actor_system_config {
  quiet_config() {
    set("logger.verbosity", caf::atom("quiet"));
    set("scheduler.max-threads", 4);
  }
};

/// A listener "L" under a top-level supervisor, on a 2-loop io_pool.
struct fixture {
  net::io_pool pool{2}; // declared first: outlives the actor system
  quiet_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::actor top;
  uint16_t port = 0;
  const std::string id = "L";

  explicit fixture(net::listener_options opts, net::protocol_factory f = probe_factory()) {
    warren::set_log_level(spdlog::level::critical);
    opts.bind_address = "127.0.0.1";
    sys = std::make_unique<caf::actor_system>(cfg);
    auto res = warren::start_supervisor(*sys, {}, {net::listener_child(id, pool, opts, std::move(f))}, "top");
    REQUIRE(res);
    top = *res;
    auto p = net::listener::port(*sys, id);
    REQUIRE(p);
    port = *p;
  }

  ~fixture() {
    warren::sup::stop(*sys, top);
    top = nullptr;
    sys.reset();
  }

  net::listener_counters counters() {
    auto c = net::listener::counters(*sys, id);
    REQUIRE(c);
    return *c;
  }

  /// Polls the counters until `pred` holds; the deadline is a safety net only.
  template <class P>
  bool eventually(P pred, std::chrono::milliseconds deadline = 5000ms) {
    auto until = std::chrono::steady_clock::now() + deadline;
    for (;;) {
      if (pred(counters()))
        return true;
      if (std::chrono::steady_clock::now() > until)
        return false;
      std::this_thread::sleep_for(2ms);
    }
  }

  /// The running child `child_id` of supervisor `sup`.
  caf::actor child(const caf::actor& sup, const std::string& child_id) {
    auto xs = warren::sup::which_children(*sys, sup);
    REQUIRE(xs);
    for (auto& x : *xs)
      if (x.id == child_id)
        return x.handle;
    return {};
  }
};

/// Warren's log, captured while it lives (`level` and above). Make it after the
/// fixture: the fixture sets the level to critical.
struct captured_log {
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink =
      std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(256);
  explicit captured_log(spdlog::level::level_enum level = spdlog::level::warn) {
    auto logger = std::make_shared<spdlog::logger>("warren", sink);
    logger->set_pattern("%l %v");
    warren::set_logger(logger);
    warren::set_log_level(level);
  }
  ~captured_log() {
    auto logger =
        std::make_shared<spdlog::logger>("warren", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    logger->set_level(spdlog::level::critical);
    warren::set_logger(logger);
  }
  /// The lines that contain `text`.
  std::vector<std::string> lines_with(const std::string& text) {
    std::vector<std::string> out;
    for (auto& l : sink->last_formatted())
      if (l.find(text) != std::string::npos)
        out.push_back(l);
    return out;
  }
};

} // namespace net_test
