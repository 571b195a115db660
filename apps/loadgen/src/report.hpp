// The end-of-run report: a human summary (stderr) and exactly one JSON object (stdout).
#pragma once

#include <nlohmann/json.hpp>

#include "options.hpp"
#include "stats.hpp"

namespace warren::loadgen {

struct RunInfo {
  double elapsed_s = 0;     // wall time of the whole run
  double active_s = 0;      // churn: start -> last echo; stream/idle: start -> last connection opened
  double message_s = 0;     // denominator of messages/s: churn as active_s; stream/idle: until stop
  std::uint64_t nofile = 0; // RLIMIT_NOFILE soft limit in force
  bool killed = false;      // the hard deadline had to stop io threads
};

nlohmann::json make_json(const Options& o, const Totals& t, const RunInfo& r);
void print_summary(const Options& o, const Totals& t, const RunInfo& r);

} // namespace warren::loadgen
