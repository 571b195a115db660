// How a Warren node reaches its NATS servers (docs/cluster.md, "Running it").
#pragma once

#include <caf/timespan.hpp>

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace warren::cluster {

struct tls_options {
  bool enabled = false;  ///< also implied by a tls:// URL
  std::string ca_file;   ///< PEM CAs that sign the servers' certificates (empty: the system's)
  std::string cert_file; ///< client certificate (PEM), for servers that verify clients
  std::string key_file;  ///< its private key (PEM)
};

struct options {
  /// This node's name, unique in the cluster: shown by GET /v1/cluster, part of every
  /// claim (docs/cluster.md). 1-64 letters, digits, '_', '-' or '.'.
  std::string node_name;
  /// NATS servers, e.g. nats://127.0.0.1:4222 (normally the one on this host first).
  std::vector<std::string> urls{"nats://127.0.0.1:4222"};
  std::string user, password;   ///< user/password authentication, or
  std::string token;            ///< token authentication, or
  std::string credentials_file; ///< a NATS .creds file (JWT + NKey seed)
  tls_options tls;
  /// Servers learnt from the cluster (gossip) are used too when the listed ones fail;
  /// false: only `urls`.
  bool discover_servers = true;
  /// A request to another node (a delivery, a claim) that has no answer by then is
  /// reported as not delivered.
  caf::timespan request_timeout = std::chrono::seconds(2);
  /// Client pings: a server that stops answering max_pings_out pings in a row is left
  /// for another one (a frozen NATS server is detected in about
  /// ping_interval * (max_pings_out + 1)).
  caf::timespan ping_interval = std::chrono::seconds(1);
  int max_pings_out = 2;
  /// Every publish is written to the socket at once by the publishing thread. false:
  /// libnats's flusher thread writes what accumulated, after sleeping 1 ms each time, which
  /// batches more under load but adds about 1 ms to every request and reply.
  bool send_asap = true;
  /// Reconnect backoff: the first wait, doubled after each failed attempt up to the
  /// maximum, each with up to 50% random jitter.
  caf::timespan reconnect_wait = std::chrono::milliseconds(100);
  caf::timespan reconnect_wait_max = std::chrono::seconds(2);
  caf::timespan connect_timeout = std::chrono::seconds(2);
  /// libnats's shared delivery pool: every subscription's callbacks run on one of
  /// these threads (none is created per subscription). Process-wide: the first node
  /// of a process sets it.
  std::size_t delivery_threads = 2;
  /// First token of every Warren subject.
  std::string prefix = "warren";
};

/// What is wrong with `o` (empty when nothing is): a missing or invalid node name, no
/// URL, a URL that is not nats:// or tls://, half of a client certificate.
std::string options_problem(const options& o);

} // namespace warren::cluster
