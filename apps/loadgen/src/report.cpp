#include "report.hpp"

#include <cstdio>

namespace warren::loadgen {

namespace {
double ms(double us) {
  return us / 1000.0;
}

nlohmann::json latency_json(const Histogram& h) {
  return {{"count", h.count()},
          {"min", ms(double(h.min()))},
          {"mean", ms(h.mean())},
          {"p50", ms(h.quantile(0.50))},
          {"p90", ms(h.quantile(0.90))},
          {"p99", ms(h.quantile(0.99))},
          {"p999", ms(h.quantile(0.999))},
          {"max", ms(double(h.max()))}};
}

double per_s(std::uint64_t n, double s) {
  return s > 0 ? double(n) / s : 0;
}
} // namespace

nlohmann::json make_json(const Options& o, const Totals& t, const RunInfo& r) {
  nlohmann::json failed_by = nlohmann::json::object();
  for (std::size_t i = 0; i < kReasons; ++i)
    if (t.failures[i])
      failed_by[reason_name(static_cast<Reason>(i))] = t.failures[i];
  nlohmann::json viol = nlohmann::json::object();
  for (std::size_t i = 0; i < kViolations; ++i)
    if (t.violation_counts[i])
      viol[violation_name(static_cast<Violation>(i))] = t.violation_counts[i];

  nlohmann::json j;
  j["workload"] = to_string(o.workload);
  if (!o.tag.empty())
    j["tag"] = o.tag;
  j["config"] = {{"host", o.host},
                 {"port", o.port},
                 {"codec", to_string(o.codec)},
                 {"size", o.size},
                 {"tls", o.tls},
                 {"tls_version", o.tls ? to_string(o.tls_version) : "none"},
                 {"tls_resume", o.tls_resume},
                 {"rate", o.rate},
                 {"ramp", o.ramp},
                 {"ramp_from", o.ramp_from},
                 {"max_inflight", o.max_inflight},
                 {"connections", o.connections ? nlohmann::json(*o.connections) : nlohmann::json(nullptr)},
                 {"window", o.window},
                 {"threads", o.threads},
                 {"source_addrs", o.source_addrs},
                 {"duration_s", o.duration}};
  j["attempted"] = t.attempted;
  j["completed"] = t.completed;
  j["failed"] = t.failed;
  j["failed_by_reason"] = failed_by;
  j["aborted"] = t.aborted;
  j["skipped_launches"] = t.skipped;
  j["open_at_end"] = t.held;
  j["peak_open"] = t.peak_open;
  j["messages_sent"] = t.sent;
  j["messages_received"] = t.messages;
  j["tls_resumed"] = t.resumed;
  j["connections_per_s"] = per_s(t.completed, r.active_s);
  j["messages_per_s"] = per_s(t.messages, r.message_s);
  j["latency_ms"] = latency_json(t.latency);
  j["connect_ms"] = latency_json(t.connect);
  if (!o.device_id_prefix.empty()) {
    j["device_id_prefix"] = o.device_id_prefix;
    j["device_id_start"] = o.device_id_start;
    j["pushes_received"] = t.pushes;
    j["push_latency_ms"] = latency_json(t.push);
  }
  j["protocol_violations"] = t.violations;
  j["violations_by_kind"] = viol;
  j["duration_s"] = r.elapsed_s;
  j["active_s"] = r.active_s;
  j["message_s"] = r.message_s;
  j["nofile_limit"] = r.nofile;
  j["hard_stopped"] = r.killed;
  return j;
}

void print_summary(const Options& o, const Totals& t, const RunInfo& r) {
  std::fprintf(stderr, "\n== warren-loadgen %s: %s %s%s, %zu-byte messages, %u thread(s)\n",
               to_string(o.workload), to_string(o.codec), o.tls ? "TLS " : "plain TCP",
               o.tls ? to_string(o.tls_version) : "", o.size, o.threads);
  std::fprintf(stderr, "duration      %.2f s (connection rate over %.2f s, message rate over %.2f s)\n",
               r.elapsed_s, r.active_s, r.message_s);
  std::fprintf(stderr, "attempted     %llu\ncompleted     %llu\nfailed        %llu\n",
               static_cast<unsigned long long>(t.attempted), static_cast<unsigned long long>(t.completed),
               static_cast<unsigned long long>(t.failed));
  for (std::size_t i = 0; i < kReasons; ++i)
    if (t.failures[i])
      std::fprintf(stderr, "  %-20s %llu\n", reason_name(static_cast<Reason>(i)),
                   static_cast<unsigned long long>(t.failures[i]));
  if (t.aborted)
    std::fprintf(stderr, "aborted       %llu (still running when the drain grace ended)\n",
                 static_cast<unsigned long long>(t.aborted));
  if (t.skipped)
    std::fprintf(stderr, "skipped       %llu launches (--max-inflight bound hit: target rate not met)\n",
                 static_cast<unsigned long long>(t.skipped));
  std::fprintf(stderr, "open at end   %llu (peak %llu)\n", static_cast<unsigned long long>(t.held),
               static_cast<unsigned long long>(t.peak_open));
  std::fprintf(stderr, "%s %.1f\n", o.workload == Workload::churn ? "connections/s" : "opened/s     ",
               per_s(t.completed, r.active_s));
  std::fprintf(stderr, "messages      %llu sent, %llu received (%.1f/s)\n",
               static_cast<unsigned long long>(t.sent), static_cast<unsigned long long>(t.messages),
               per_s(t.messages, r.message_s));
  if (o.tls && o.tls_resume)
    std::fprintf(stderr, "tls resumed   %llu\n", static_cast<unsigned long long>(t.resumed));
  std::fprintf(stderr, "violations    %llu\n", static_cast<unsigned long long>(t.violations));
  for (std::size_t i = 0; i < kViolations; ++i)
    if (t.violation_counts[i])
      std::fprintf(stderr, "  %-20s %llu\n", violation_name(static_cast<Violation>(i)),
                   static_cast<unsigned long long>(t.violation_counts[i]));
  auto line = [](const char* name, const Histogram& h) {
    if (h.count() == 0)
      return;
    std::fprintf(stderr, "%-13s p50 %.3f  p90 %.3f  p99 %.3f  max %.3f ms (n=%llu)\n", name,
                 ms(h.quantile(0.5)), ms(h.quantile(0.9)), ms(h.quantile(0.99)), ms(double(h.max())),
                 static_cast<unsigned long long>(h.count()));
  };
  line(o.workload == Workload::churn    ? "latency"
       : o.workload == Workload::stream ? "msg latency"
                                        : "open latency",
       t.latency);
  line("connect", t.connect);
  if (!o.device_id_prefix.empty())
    std::fprintf(stderr, "pushes        %llu received\n", static_cast<unsigned long long>(t.pushes));
  line("push latency", t.push);
  if (r.killed)
    std::fprintf(stderr, "WARNING: hard deadline reached, io threads were stopped forcibly\n");
}

} // namespace warren::loadgen
