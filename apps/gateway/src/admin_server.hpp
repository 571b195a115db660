// The admin API's HTTP server: cpp-httplib parses requests and routes them, but the
// connections are ours. httplib gives each connection a pool thread for its whole
// life, so a few clients that trickle headers or sit idle between keep-alive requests
// hold every thread and /healthz times out. Here one poller thread holds every
// connection that is between requests (idle, or still sending its headers, with TLS
// already decrypted) and hands it to a worker only once its headers are complete;
// idle and header deadlines close the slow ones. Workers then run httplib's request
// handling on a stream over that connection.
//
// A handler may hand its connection to the stream writer (carry): one thread then
// writes every long-lived response (the live view's event streams) without
// blocking, so a stream never holds a worker and idle watchers cannot starve the
// probes. A stream whose client stops reading is closed after write_timeout.
//
// Also enforced here, before any handler runs: a cap on connections (a new one
// replaces the longest idle or slowest parked one), the request body
// limit (413, without reading the body), strict framing (one valid Content-Length or
// Transfer-Encoding: chunked alone; a body only on POST), no Content-Encoding (httplib
// would inflate gzip bodies), TCP_NODELAY, a real listen backlog, optional TLS. A
// request refused before its body is read closes its connection: the unread bytes
// must never be taken for the next request.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace warren::gateway {

struct admin_server_options {
  std::string bind = "127.0.0.1";
  uint16_t port = 0; ///< 0: any
  std::size_t threads = 4;
  std::size_t max_connections = 256;
  std::size_t body_limit = 1 << 20;               ///< request body bytes (413 above)
  std::size_t header_limit = 16384;               ///< request line and headers (431 above)
  std::size_t max_requests = 100;                 ///< per connection, then it closes
  std::chrono::milliseconds idle_timeout{5000};   ///< between requests
  std::chrono::milliseconds read_timeout{10000};  ///< first byte of a request to its last
  std::chrono::milliseconds write_timeout{10000}; ///< one response
  int backlog = 1024;
  std::string cert_file, key_file; ///< both set: TLS (1.2 or later)
};

struct admin_server_counters {
  std::atomic<uint64_t> connections{0};   ///< accepted
  std::atomic<uint64_t> refused{0};       ///< closed at once: max_connections open, all busy
  std::atomic<uint64_t> evicted{0};       ///< parked ones closed for a new one (max_connections)
  std::atomic<uint64_t> idle_closes{0};   ///< idle_timeout between requests
  std::atomic<uint64_t> read_timeouts{0}; ///< read_timeout (headers or body too slow)
  std::atomic<uint64_t> rejected{0};      ///< requests refused before routing (framing, limits)
  std::atomic<uint64_t> tls_failures{0};  ///< handshakes that failed
  std::atomic<uint64_t> streams{0};       ///< responses handed to the stream writer (carry)
  std::atomic<int64_t> streams_open{0};
  std::atomic<uint64_t> stream_stalls{0}; ///< streams closed: nothing written for write_timeout
};

class admin_server : public httplib::Server {
public:
  explicit admin_server(admin_server_options opts);
  ~admin_server() override;

  /// Binds and starts serving; an error text (empty on success). The port: port().
  std::string start();
  uint16_t port() const { return port_; }
  bool tls() const;
  const admin_server_counters& counters() const { return *counters_; }
  const admin_server_options& options() const { return opts_; }

  /// Runs before routing for requests whose framing passed (e.g. authentication), as
  /// httplib's pre-routing handler would. Set before start().
  void set_guard(HandlerWithResponse guard) { guard_ = std::move(guard); }

  /// From a handler: the connection closes after this response (its body is unread).
  static void close_after_reply();

  /// Fills a long-lived response, called on the stream writer's thread: append
  /// what is due (possibly nothing; it must not block); false: the response is
  /// complete, close once it is sent.
  using stream_pull = std::function<bool(std::string& out)>;

  /// From a handler: this connection leaves the workers for the stream writer,
  /// which sends `head` (a full status line and headers; the body is delimited by
  /// the close) and then what `pull` gives, every 50 ms, while the client reads.
  /// What the handler put in its response is not sent. False: not called from a
  /// handler of this server (nothing taken).
  static bool carry(std::string head, stream_pull pull);

private:
  class impl;
  bool process_and_close_socket(socket_t sock) override;

  admin_server_options opts_;
  std::shared_ptr<admin_server_counters> counters_;
  HandlerWithResponse guard_;
  std::unique_ptr<impl> impl_;
  uint16_t port_ = 0;
};

} // namespace warren::gateway
