// The gateway as an object: builds the supervision tree from a config and runs it.
//
//   application "warren-gateway"
//   └─ top            rest_for_one
//      ├─ backend     the backend's supervisor (producer, consumers)
//      ├─ cluster     with [cluster]: the agents (requests to other nodes) and the
//      │              peers actor (heartbeats); the NATS link itself is the gateway's
//      ├─ listeners   one_for_one: one warren::net listener tree per [[listener]]
//      ├─ admin       the HTTP API (cpp-httplib threads)
//      └─ metrics     periodic summary in the log (metrics_log_interval)
//
// main.cpp adds the process concerns (signals, open-files limit); tests embed it.
#pragma once

#include "backends.hpp"
#include "config.hpp"
#include "metrics.hpp"
#include "registry.hpp"

#include <warren/application.hpp>
#include <warren/backend/local.hpp>
#include <warren/net/io_pool.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/expected.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace warren::gateway {

class gateway {
public:
  explicit gateway(config cfg);
  ~gateway();
  gateway(const gateway&) = delete;
  gateway& operator=(const gateway&) = delete;

  /// Prepares certificates and starts the tree. Errors are logged and returned.
  caf::error start();

  /// Blocks until the tree is gone: application::exit_stopped (0) after shutdown(),
  /// exit_failed when the tree died by itself.
  int run();

  /// Graceful stop, from any thread (once; later calls wait for the first):
  /// suspend every listener, drain connections up to drain_timeout, flush the
  /// producer, stop the tree.
  void shutdown();

  caf::actor_system& system() { return *sys_; }
  const config& cfg() const { return cfg_; }
  std::shared_ptr<session_registry> registry() const { return registry_; }
  std::shared_ptr<gateway_metrics> metrics() const { return metrics_; }
  /// The cluster link (null without [cluster]).
  std::shared_ptr<cluster_directory> cluster() const { return cluster_; }
  /// The local backend's subscribers (null with another backend).
  std::shared_ptr<backend::local_hub> hub() const { return hub_; }
  caf::actor top() const;
  /// Bound port of listener `name` (0 if unknown), of the admin API (0 if off).
  uint16_t port(const std::string& name) const;
  uint16_t admin_port() const { return admin_port_->load(); }
  /// The development certificate in use (empty if every listener has its own).
  const std::string& dev_cert_file() const { return dev_cert_; }

  /// Why this node should get no traffic now (empty: ready): draining, a listener
  /// not listening, a backend producer not running, the backend's own reasons (amqp:
  /// no broker connection). /readyz answers with it.
  std::vector<std::string> not_ready() const;

private:
  void write_ports_file() const;

  config cfg_;
  std::shared_ptr<session_registry> registry_;
  std::shared_ptr<gateway_metrics> metrics_;
  std::shared_ptr<cluster_directory> cluster_;
  std::shared_ptr<backend::local_hub> hub_;
  std::shared_ptr<std::atomic<uint16_t>> admin_port_;
  std::shared_ptr<std::atomic<bool>> draining_; ///< set when shutdown() starts (/readyz)
  std::string dev_cert_;
  std::map<std::string, uint16_t> ports_;
  std::vector<std::string> producer_names_; ///< the backend's pool (backend_spec::producer_names())
  backend_health backend_health_;           ///< its metrics and readiness (broker link)
  std::unique_ptr<net::io_pool> pool_;      // before the system: outlives it
  std::unique_ptr<caf::actor_system_config> sys_cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::unique_ptr<application> app_;
  std::once_flag shutdown_once_;
  std::atomic<bool> started_{false};
  bool ran_ = false;
};

/// Raises RLIMIT_NOFILE's soft limit to the hard limit and logs both.
void raise_nofile_limit();

/// The kernel's listen backlog cap (net.core.somaxconn), or -1 if unknown.
int somaxconn();

} // namespace warren::gateway
