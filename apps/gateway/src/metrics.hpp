// The gateway's own counters (listener counters come from warren::net). Updated
// once per batch with relaxed atomics; rendered as Prometheus text by the admin API.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace warren::net {
struct listener_counters;
}

namespace warren::gateway {

class session_registry;
class cluster_directory;

struct gateway_metrics {
  std::atomic<uint64_t> sessions_opened{0};
  std::atomic<uint64_t> sessions_closed{0};
  std::atomic<uint64_t> messages_in{0};        ///< device -> backend, published
  std::atomic<uint64_t> batches_in{0};         ///< publish batches (one per read)
  std::atomic<uint64_t> messages_out{0};       ///< backend -> device, queued to a connection
  std::atomic<uint64_t> backend_accepted{0};   ///< device messages the backend accepted
  std::atomic<uint64_t> undeliverable{0};      ///< backend messages for an absent device / closing session
  std::atomic<uint64_t> takeovers{0};          ///< sessions closed because their device reconnected
  std::atomic<uint64_t> gap_skips{0};          ///< to_device_seq gaps skipped after gap_timeout
  std::atomic<uint64_t> reordered{0};          ///< backend messages held behind a gap
  std::atomic<uint64_t> reads_held{0};         ///< times a session reached max_unaccepted
  std::atomic<uint64_t> republished{0};        ///< batches sent again to a restarted producer
  std::atomic<uint64_t> identify_failures{0};  ///< sessions closed for lack of a device id
  std::atomic<uint64_t> admin_unauthorized{0}; ///< admin API requests without the bearer token
};

/// One metric in the Prometheus text format: HELP, TYPE and the sample.
void prometheus_metric(std::string& out, const char* name, const char* help, uint64_t value,
                       const char* type = "counter");

/// Prometheus text exposition (format 0.0.4) of the gateway counters, the registry
/// sizes and each listener's counters.
/// With a cluster, its link state and counters too.
std::string render_prometheus(const gateway_metrics& m, const session_registry& reg,
                              const std::vector<std::pair<std::string, net::listener_counters>>& listeners,
                              const cluster_directory* cluster = nullptr);

} // namespace warren::gateway
