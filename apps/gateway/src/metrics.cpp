#include "metrics.hpp"
#include "cluster_directory.hpp"
#include "registry.hpp"

#include <warren/net/listener.hpp>

#include <fmt/format.h>

namespace warren::gateway {

void prometheus_metric(std::string& out, const char* name, const char* help, uint64_t value,
                       const char* type) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, value);
}

namespace {

void counter(std::string& out, const char* name, const char* help, uint64_t value,
             const char* type = "counter") {
  prometheus_metric(out, name, help, value, type);
}

} // namespace

std::string render_prometheus(const gateway_metrics& m, const session_registry& reg,
                              const std::vector<std::pair<std::string, net::listener_counters>>& listeners,
                              const cluster_directory* cluster) {
  std::string out;
  out.reserve(8192);
  auto ld = [](const std::atomic<uint64_t>& x) { return x.load(std::memory_order_relaxed); };
  counter(out, "warren_gateway_sessions", "Device sessions registered now.", reg.connections(), "gauge");
  counter(out, "warren_gateway_devices", "Identified devices connected now.", reg.devices(), "gauge");
  counter(out, "warren_gateway_sessions_opened_total", "Sessions opened.", ld(m.sessions_opened));
  counter(out, "warren_gateway_sessions_closed_total", "Sessions closed.", ld(m.sessions_closed));
  counter(out, "warren_gateway_messages_in_total", "Device messages published to the backend.",
          ld(m.messages_in));
  counter(out, "warren_gateway_batches_in_total", "Publish batches (one per socket read).", ld(m.batches_in));
  counter(out, "warren_gateway_messages_out_total", "Backend messages queued to devices.",
          ld(m.messages_out));
  counter(out, "warren_gateway_backend_accepted_total", "Device messages the backend accepted.",
          ld(m.backend_accepted));
  counter(out, "warren_gateway_undeliverable_total",
          "Backend messages not delivered (no such device, session closing).", ld(m.undeliverable));
  counter(out, "warren_gateway_takeovers_total", "Sessions closed because their device reconnected.",
          ld(m.takeovers));
  counter(out, "warren_gateway_gap_skips_total", "to_device_seq gaps skipped.", ld(m.gap_skips));
  counter(out, "warren_gateway_reordered_total", "Backend messages held behind a to_device_seq gap.",
          ld(m.reordered));
  counter(out, "warren_gateway_reads_held_total", "Times a session reached max_unaccepted.",
          ld(m.reads_held));
  counter(out, "warren_gateway_republished_total", "Batches published again to a restarted producer.",
          ld(m.republished));
  counter(out, "warren_gateway_identify_failures_total", "Sessions closed for want of a device id.",
          ld(m.identify_failures));
  if (cluster) {
    auto& c = cluster->counters();
    auto& n = cluster->node().counters();
    counter(out, "warren_cluster_nats_connected", "1 while the NATS link is up.",
            cluster->node().connected() ? 1 : 0, "gauge");
    counter(out, "warren_cluster_nats_disconnects_total", "NATS links lost.", ld(n.disconnects));
    counter(out, "warren_cluster_nats_reconnects_total", "NATS links restored.", ld(n.reconnects));
    counter(out, "warren_cluster_publish_refused_total", "Publishes refused (NATS down).",
            ld(n.publish_refused));
    counter(out, "warren_cluster_nats_async_errors_total", "Errors libnats reported (slow consumer, ...).",
            ld(n.async_errors));
    counter(out, "warren_cluster_deliveries_out_total", "Deliveries sent to devices on other nodes.",
            ld(c.requests_out));
    counter(out, "warren_cluster_delivered_out_total", "... that the owning session accepted.",
            ld(c.delivered_out));
    counter(out, "warren_cluster_refused_out_total", "... that the owning session refused.",
            ld(c.refused_out));
    counter(out, "warren_cluster_no_responders_total", "Deliveries for devices connected on no node.",
            ld(c.no_responders));
    counter(out, "warren_cluster_request_timeouts_total",
            "Requests to other nodes without an answer in time.", ld(c.timeouts));
    counter(out, "warren_cluster_unavailable_total", "Requests not sent: NATS unreachable.",
            ld(c.unavailable));
    counter(out, "warren_cluster_deliveries_in_total", "Deliveries from other nodes to sessions here.",
            ld(c.requests_in));
    counter(out, "warren_cluster_takeovers_out_total", "Devices taken over from another node.",
            ld(c.takeovers_out));
    counter(out, "warren_cluster_takeovers_in_total", "Devices another node took over from this one.",
            ld(c.takeovers_in));
    counter(out, "warren_cluster_claims_lost_total",
            "Sessions closed: a newer claim elsewhere owns the device.", ld(c.claims_lost));
    counter(out, "warren_cluster_bad_input_total", "Malformed messages on warren subjects, dropped.",
            ld(c.bad_input));
    counter(out, "warren_cluster_name_conflicts_total",
            "Heartbeats of another process under this node's name (node_name must be unique).",
            ld(c.name_conflicts));
  }
  struct field {
    const char* name;
    const char* help;
    uint64_t net::listener_counters::*member;
    const char* type;
  };
  static const field fields[] = {
      {"accepted", "Connections accepted.", &net::listener_counters::accepted, "counter"},
      {"active", "Connections alive now.", &net::listener_counters::active, "gauge"},
      {"closed", "Connections closed.", &net::listener_counters::closed, "counter"},
      {"handshake_timeout", "TLS handshakes timed out.", &net::listener_counters::handshake_timeout,
       "counter"},
      {"hello_timeouts", "Of handshake_timeout: the ClientHello was not whole yet.",
       &net::listener_counters::hello_timeouts, "counter"},
      {"handshake_tls_error", "TLS handshakes failed.", &net::listener_counters::handshake_tls_error,
       "counter"},
      {"handshake_peer_closed", "Peers gone during the handshake.",
       &net::listener_counters::handshake_peer_closed, "counter"},
      {"frames_in", "Messages received.", &net::listener_counters::frames_in, "counter"},
      {"frames_out", "Messages sent.", &net::listener_counters::frames_out, "counter"},
      {"bytes_in", "Bytes received.", &net::listener_counters::bytes_in, "counter"},
      {"bytes_out", "Bytes sent.", &net::listener_counters::bytes_out, "counter"},
      {"overflow_closes", "Connections closed on outbound overflow.",
       &net::listener_counters::overflow_closes, "counter"},
      {"frame_errors", "Connections closed for an invalid frame.", &net::listener_counters::frame_errors,
       "counter"},
      {"idle_closes", "Connections closed idle.", &net::listener_counters::idle_closes, "counter"},
      {"accept_errors", "accept() errors.", &net::listener_counters::accept_errors, "counter"},
      {"refused", "Connections closed at once: max_connections reached.", &net::listener_counters::refused,
       "counter"},
      {"close_timeouts", "Connections closed after close_timeout with messages unacknowledged.",
       &net::listener_counters::close_timeouts, "counter"},
      {"acks_out", "codec frame: ACK frames sent.", &net::listener_counters::acks_out, "counter"},
      {"pushes_acked", "codec frame: PUSH frames acknowledged.", &net::listener_counters::pushes_acked,
       "counter"},
      {"pings_in", "codec frame: PINGs answered.", &net::listener_counters::pings_in, "counter"},
  };
  for (auto& f : fields) {
    auto name =
        fmt::format("warren_listener_{}{}", f.name, std::string_view{f.type} == "counter" ? "_total" : "");
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, f.help, name, f.type);
    for (auto& [id, c] : listeners)
      out += fmt::format("{}{{listener=\"{}\"}} {}\n", name, id, c.*(f.member));
  }
  // Every failed handshake once, by reason: the reasons of the endpoint's exit reason
  // "handshake_failed: R" plus timeout. Their sum is listener_counters::handshake_failures();
  // handshake_tls_error above is the sum of the six TLS ones.
  struct reason {
    const char* name;
    uint64_t net::listener_counters::*member;
  };
  static const reason reasons[] = {
      {"timeout", &net::listener_counters::handshake_timeout},
      {"peer_closed", &net::listener_counters::handshake_peer_closed},
      {"not_tls", &net::listener_counters::handshake_not_tls},
      {"unsupported_version", &net::listener_counters::handshake_unsupported_version},
      {"no_shared_cipher", &net::listener_counters::handshake_no_shared_cipher},
      {"client_cert_required", &net::listener_counters::handshake_client_cert_required},
      {"bad_client_cert", &net::listener_counters::handshake_bad_client_cert},
      {"other", &net::listener_counters::handshake_other},
  };
  const char* hs = "warren_listener_handshake_failures_total";
  out += fmt::format("# HELP {} Failed handshakes by reason.\n# TYPE {} counter\n", hs, hs);
  for (auto& [id, c] : listeners)
    for (auto& r : reasons)
      out += fmt::format("{}{{listener=\"{}\",reason=\"{}\"}} {}\n", hs, id, r.name, c.*(r.member));
  return out;
}

} // namespace warren::gateway
