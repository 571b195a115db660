// The admin HTTP API (cpp-httplib on its own threads) as a supervised child: the
// server binds when the child starts (a taken port fails the start) and stops, with
// its threads joined, when the child exits.
//
//   POST /v1/devices/{id}/messages       body = payload; ?to_device_seq=N; 202 / 404
//   POST /v1/connections/{id}/messages   same, by connection id
//   GET  /v1/connections                 JSON list of sessions (?scope=cluster: of every node;
//                                        ?q=: device or connection id contains it; ?limit=)
//   GET  /v1/cluster                     this node, its NATS link, the nodes that answer
//   GET  /v1/tree                        the supervision tree (JSON)
//   GET  /v1/stats                       listeners, sessions, backend, cluster (the live view's panels)
//   GET  /                               the live view (warren/observer): the page, /ui/ files,
//                                        /v1/tree/stream, /v1/tree/children, POST /v1/tree/kill
//   GET  /metrics                        Prometheus text
//   GET  /healthz                        {"status":"ok",...} (liveness)
//   GET  /readyz                         200 ready / 503 with the reasons (draining, listeners, backend)
//
// With [admin] token set, every route but /healthz, /readyz and the page (/, /ui/) needs
// "Authorization: Bearer <token>"; with cert_file and key_file, HTTPS only.
// The HTTP server itself (limits, timeouts, framing, TLS): admin_server.hpp.
#pragma once

#include "config.hpp"
#include "metrics.hpp"
#include "registry.hpp"

#include <warren/child_spec.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace warren::gateway {

struct admin_env {
  admin_config cfg;
  std::shared_ptr<session_registry> registry;
  std::shared_ptr<gateway_metrics> metrics;
  std::shared_ptr<cluster_directory> cluster;        ///< null: one node
  std::vector<std::string> listeners;                ///< listener ids (for /metrics)
  std::size_t consumers = 0;                         ///< local backend consumers to route through (0: direct)
  std::function<caf::actor()> top;                   ///< the top supervisor (for /v1/tree)
  std::shared_ptr<std::atomic<uint16_t>> bound_port; ///< set once listening
  /// Why this node should get no traffic now (empty: ready), for /readyz.
  std::function<std::vector<std::string>()> not_ready;
  /// Appends the backend's own metrics to /metrics (unset: none).
  std::function<void(std::string&)> backend_metrics;
  std::string backend_kind; ///< [backend] kind, for /v1/stats
};

child_spec admin_child(admin_env env);

/// {"node": ..., "total": N, "sessions": [...]}: at most `limit` of the registry's
/// sessions, as GET /v1/connections lists them, each with its node.
std::string sessions_json(const session_registry& reg, const std::string& node, std::size_t limit);

} // namespace warren::gateway
