// The gateway's configuration: a TOML file (toml++) with command-line flags (CLI11)
// on top. docs/gateway.md documents every option.
#pragma once

#include "cluster_directory.hpp"
#include "session.hpp"

#include <warren/backend/local.hpp>
#include <warren/duration.hpp>
#include <warren/net/listener.hpp>

#include <caf/expected.hpp>
#include <toml++/toml.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace warren::gateway {

struct listener_config {
  std::string name;
  bool tls = true;
  std::string cert_file, key_file, ca_file; ///< empty cert: the development certificate
  bool verify_peer = false;
  std::string min_tls = "1.2";
  net::listener_options net; ///< bind_address, port, codec, limits
  session_options session;   ///< identify, gap_timeout, ...
};

struct admin_config {
  bool enabled = true;
  std::string bind = "127.0.0.1";
  uint16_t port = 8080;
  std::size_t threads = 4;
  caf::timespan request_timeout = std::chrono::seconds(5);
  std::size_t body_limit = 1 << 20;                      ///< request body bytes; larger: 413
  std::size_t max_connections = 256;                     ///< open at once; more are closed at accept
  std::size_t max_requests = 100;                        ///< per keep-alive connection
  caf::timespan idle_timeout = std::chrono::seconds(5);  ///< keep-alive idle, then close
  caf::timespan read_timeout = std::chrono::seconds(10); ///< a request's first byte to its last
  std::string token;               ///< set: every route but /healthz, /readyz needs "Bearer <token>"
  std::string cert_file, key_file; ///< both set: the admin API speaks HTTPS only
  std::size_t max_watchers = 64;   ///< live view event streams open at once; more: 503
  bool allow_kill = false;         ///< the live view may kill supervision tree children
};

struct backend_config {
  std::string kind = "local";
  backend::local_options local;
  toml::table amqp; ///< [backend.amqp], handed to the amqp backend as is
};

struct config {
  std::string data_dir = "warren-data";
  std::string log_level = "info";
  std::size_t io_threads = 0;        ///< 0: one per core
  std::size_t scheduler_threads = 0; ///< CAF workers; 0: CAF's default (one per core)
  /// CAF work-stealing: 50 µs naps of an idle worker before it blocks (CAF's own
  /// default 500); 0 suits workers sharing cores with io loops (net/scheduler.hpp).
  std::size_t scheduler_moderate_polls = 0;
  /// io loops and CAF workers under SCHED_BATCH: a thread woken by a hand-off does
  /// not preempt the one that handed off (net/scheduler.hpp).
  bool sched_batch = true;
  caf::timespan drain_timeout = std::chrono::seconds(10);
  caf::timespan metrics_log_interval{0}; ///< 0: off
  /// How often the producer watch checks whether a backend producer was replaced (not
  /// a config key: only tests change it).
  caf::timespan producer_check = std::chrono::milliseconds(200);
  bool raise_nofile = true;
  std::string ports_file; ///< when set: JSON with the bound ports, written at start
  std::vector<listener_config> listeners;
  admin_config admin;
  backend_config backend;
  cluster_config cluster;                      ///< off unless [cluster] or --nats / --node-name
  std::optional<std::filesystem::path> source; ///< the file it came from
};

/// The configuration used without a file: TLS on 127.0.0.1:8883 (line codec), the
/// local backend to stdout, the admin API on 127.0.0.1:8080.
config default_config();

/// Reads a TOML document (throws std::runtime_error with the position on errors).
config parse_config(std::string_view toml_text, std::string_view source = "config");

/// Rejects what parses but cannot work (throws std::runtime_error naming the listener
/// and the keys): a cluster without a valid node name or NATS URL; a TLS listener with verify_peer and no ca;
/// a listener name that is empty, longer than 64 characters or has characters other than letters, digits,
/// '_', '-' and '.' (it is a metric label, a tree node and part of registered names).
/// load_config and gateway::start call it.
void validate_config(const config& c);

/// What works but is likely not what was meant, one message each, logged as warnings
/// at start: verify_peer on a plain TCP listener (ignored); identify = cert on a
/// listener without client certificates (every device stays anonymous).
std::vector<std::string> config_warnings(const config& c);

/// Command line: `-c FILE` and the flags of docs/gateway.md over the file or the
/// defaults. Returns the exit code to use when it should not start (help: 0,
/// errors: 2), else nothing.
std::optional<int> load_config(int argc, const char* const* argv, config& out);

/// warren::parse_duration ("250ms", "1.5s", "2m", bare milliseconds), throwing
/// std::runtime_error with the text on a bad one.
caf::timespan require_duration(std::string_view text);

} // namespace warren::gateway
