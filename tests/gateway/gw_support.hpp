// Helpers for the gateway tests: an in-process gateway on ephemeral ports, and a
// blocking-with-deadline device client (plain or TLS, line or frame codec).
#pragma once

// GCC 12 at -O3 reports a false -Wrestrict in std::string's operator+ (GCC PR 105329).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

#include "config.hpp"
#include "gateway.hpp"

#include <warren/log.hpp>
#include <warren/net/codec/frame.hpp>
#include <warren/supervisor.hpp>

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <caf/all.hpp>
#include <doctest/doctest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace gw_test {

using namespace std::chrono_literals;
namespace gw = warren::gateway;
namespace net = warren::net;
namespace backend = warren::backend;

inline std::filesystem::path temp_dir(const char* tag) {
  std::string tmpl = std::string{"/tmp/warren-gw-"} + tag + "-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr)
    throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

/// A config with one plain listener "plain" on 127.0.0.1:0, the admin API on an
/// ephemeral port, and the local backend with no sink.
inline gw::config test_config(std::string backend_kind = "local") {
  gw::config c;
  gw::listener_config l;
  l.name = "plain";
  l.tls = false;
  l.net.bind_address = "127.0.0.1";
  l.net.port = 0;
  c.listeners.push_back(l);
  c.admin.port = 0;
  c.admin.threads = 4;
  c.backend.kind = std::move(backend_kind);
  c.backend.local.sink = "none";
  c.io_threads = 2;
  c.scheduler_threads = 4;
  c.drain_timeout = 2s;
  c.data_dir = temp_dir("data").string();
  return c;
}

/// Polls `pred` until it holds; the deadline is only a safety net.
template <class P>
bool eventually(P pred, std::chrono::milliseconds deadline = 10000ms) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until)
      return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

/// An in-process gateway, stopped gracefully at the end of the test.
struct running_gateway {
  std::unique_ptr<gw::gateway> gw;
  std::string data_dir;

  explicit running_gateway(gw::config cfg) {
    warren::set_log_level(spdlog::level::critical);
    data_dir = cfg.data_dir;
    gw = std::make_unique<gw::gateway>(std::move(cfg));
    REQUIRE(!gw->start());
  }
  ~running_gateway() {
    gw->shutdown();
    CHECK(gw->run() == 0);
    gw.reset();
    std::error_code ec;
    std::filesystem::remove_all(data_dir, ec);
  }
  gw::gateway* operator->() { return gw.get(); }
  uint16_t port(const std::string& name = "plain") { return gw->port(name); }
  httplib::Client http() {
    httplib::Client c{"127.0.0.1", gw->admin_port()};
    c.set_read_timeout(10, 0);
    return c;
  }
  /// The connection ids registered now.
  std::vector<gw::session_view> sessions() { return gw->registry()->list(); }
};

/// Collects what local-backend subscribers receive.
struct collector {
  std::mutex mtx;
  std::condition_variable cv;
  std::vector<backend::device_message> got;
  uint64_t token = 0;
  std::shared_ptr<backend::local_hub> hub;

  explicit collector(std::shared_ptr<backend::local_hub> h) : hub(std::move(h)) {
    token = hub->subscribe([this](const backend::device_message& m) {
      std::lock_guard<std::mutex> guard{mtx};
      got.push_back(m);
      cv.notify_all();
    });
  }
  ~collector() { hub->unsubscribe(token); }
  bool wait_for(std::size_t n, std::chrono::milliseconds deadline = 10000ms) {
    std::unique_lock<std::mutex> guard{mtx};
    return cv.wait_for(guard, deadline, [&] { return got.size() >= n; });
  }
  std::vector<backend::device_message> snapshot() {
    std::lock_guard<std::mutex> guard{mtx};
    return got;
  }
};

/// What a TLS device presents and trusts (for `client_tls`).
struct client_tls_options {
  std::string ca_file;   ///< verify the gateway's certificate against it; empty: no verification
  std::string cert_file; ///< client certificate (PEM) for mTLS; empty: none
  std::string key_file;  ///< its private key (PEM)
  int max_version = 0;   ///< e.g. TLS1_2_VERSION; 0: the library's maximum (TLS 1.3)
};

/// A TLS client context for `device`, optionally with a client certificate (mTLS).
inline std::shared_ptr<asio::ssl::context> client_tls(const client_tls_options& o) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  if (o.ca_file.empty()) {
    ctx->set_verify_mode(asio::ssl::verify_none);
  } else {
    ctx->set_verify_mode(asio::ssl::verify_peer);
    ctx->load_verify_file(o.ca_file);
  }
  if (o.max_version != 0)
    SSL_CTX_set_max_proto_version(ctx->native_handle(), o.max_version);
  if (!o.cert_file.empty()) {
    ctx->use_certificate_chain_file(o.cert_file);
    ctx->use_private_key_file(o.key_file, asio::ssl::context::pem);
  }
  return ctx;
}

/// One device connection driven from the test thread; every wait has a deadline.
class device {
public:
  explicit device(uint16_t port, std::shared_ptr<asio::ssl::context> tls = nullptr)
    : tls_ctx_(std::move(tls)) {
    asio::ip::tcp::socket s{io_};
    s.connect({asio::ip::make_address("127.0.0.1"), port});
    if (tls_ctx_)
      tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket>>(std::move(s), *tls_ctx_);
    else
      plain_ = std::make_unique<asio::ip::tcp::socket>(std::move(s));
  }

  bool handshake(std::chrono::milliseconds timeout = 10000ms) {
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
    run(10000ms, [&] { return result != asio::error::would_block; });
  }

  std::optional<std::string> read_line(std::chrono::milliseconds timeout = 10000ms) {
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

  struct frame {
    net::codec::frame_type type;
    uint64_t id;
    std::string payload;
  };

  std::optional<frame> read_frame(std::chrono::milliseconds timeout = 10000ms) {
    auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (buf_.size() >= net::codec::frame_header_size) {
        auto p = reinterpret_cast<const unsigned char*>(buf_.data());
        auto len = net::codec::detail::get_u32be(p + 9);
        if (buf_.size() >= net::codec::frame_header_size + len) {
          frame f{static_cast<net::codec::frame_type>(p[0]), net::codec::detail::get_u64be(p + 1),
                  buf_.substr(net::codec::frame_header_size, len)};
          buf_.erase(0, net::codec::frame_header_size + len);
          return f;
        }
      }
      if (closed_ || !read_some(until))
        return std::nullopt;
    }
  }

  bool wait_closed(std::chrono::milliseconds timeout = 10000ms) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (!closed_)
      if (!read_some(until))
        return closed_;
    return true;
  }
  /// The error that ended the connection (eof for a clean close).
  asio::error_code close_reason() const { return close_ec_; }

  void close() {
    asio::error_code ec;
    lowest().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    lowest().close(ec);
  }

private:
  asio::ip::tcp::socket& lowest() { return tls_ ? tls_->next_layer() : *plain_; }
  template <class F>
  void with(F&& f) {
    if (tls_)
      f(*tls_);
    else
      f(*plain_);
  }
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
    buf_.append(tmp, got);
    if (result) {
      closed_ = true;
      close_ec_ = result;
    }
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

/// The running child at `path` below the gateway's top supervisor, or null (quietly:
/// a restarting child has no handle for a while).
inline caf::actor child(running_gateway& g, const std::vector<std::string>& path) {
  caf::actor sup = g->top();
  for (auto& id : path) {
    if (!sup)
      return {};
    auto kids = warren::sup::which_children(g->system(), sup);
    if (!kids)
      return {};
    caf::actor next;
    for (auto& k : *kids)
      if (k.id == id)
        next = k.handle;
    sup = next;
  }
  return sup;
}

/// Starts the warren-gateway binary `bin` with config `conf`, writing its ports to
/// `ports_file`; returns its pid once that file exists (REQUIREd within 30 s).
inline pid_t spawn_gateway(const char* bin, const std::string& conf, const std::string& ports_file) {
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    execl(bin, bin, "-c", conf.c_str(), "--ports-file", ports_file.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  REQUIRE(eventually([&] { return std::filesystem::exists(ports_file); }, 30000ms));
  return pid;
}

/// The bound port of listener `listener` in a ports file (--ports-file).
inline uint16_t listener_port(const std::string& ports_file, const std::string& listener) {
  nlohmann::json j;
  std::ifstream{ports_file} >> j;
  return j["listeners"][listener].get<uint16_t>();
}

inline std::string data_frame(uint64_t id, std::string_view payload) {
  std::string out;
  net::codec::encode_data(out, id, payload);
  return out;
}

} // namespace gw_test
