// Counters and latency histograms. Each io thread owns one Stats (single writer); the main thread reads
// the atomic counters for the progress line and merges everything after the threads have joined.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

namespace warren::loadgen {

// HDR-style log-bucket histogram of microsecond values: exact below 128 us, then 64 sub-buckets per
// power of two (relative error < 1.6%). Fixed memory (~18 KiB) whatever the sample count.
class Histogram {
public:
  static constexpr unsigned kSubBits = 7; // 2^7 = 128 linear buckets, then 64 per octave
  static constexpr unsigned kMaxShift = 40;

  Histogram();
  void record(std::uint64_t us);
  void merge(const Histogram& other);
  std::uint64_t count() const { return count_; }
  std::uint64_t max() const { return max_; }
  std::uint64_t min() const { return count_ ? min_ : 0; }
  double mean() const { return count_ ? double(sum_) / double(count_) : 0; }
  // Value (us) at quantile q in [0,1]: the middle of the bucket holding it (the exact max for q = 1).
  double quantile(double q) const;

  static std::size_t index_of(std::uint64_t v);
  static std::uint64_t lower_bound_of(std::size_t idx);
  static std::uint64_t upper_bound_of(std::size_t idx); // exclusive

private:
  std::vector<std::uint64_t> buckets_;
  std::uint64_t count_ = 0, sum_ = 0, max_ = 0, min_ = UINT64_MAX;
};

// Why a connection (or attempt) ended badly. Keep names in sync with reason_name().
enum class Reason : unsigned {
  connect_refused,
  connect_timeout,
  addr_unavailable, // EADDRNOTAVAIL / EADDRINUSE: out of ephemeral ports
  fd_exhausted,     // EMFILE / ENFILE
  connect_error,
  handshake_failed,
  handshake_timeout,
  reset,   // ECONNRESET / EPIPE
  closed,  // orderly close (EOF) by the peer before we were done
  timeout, // no echo / PONG within --timeout
  protocol_violation,
  io_error,
  count_
};
constexpr std::size_t kReasons = static_cast<std::size_t>(Reason::count_);
const char* reason_name(Reason r);

// Protocol checks made on what the gateway sends.
enum class Violation : unsigned {
  ack_invariant,      // previous_acked_id + skipped + 1 != id
  ack_beyond_sent,    // ACK for a DATA id not sent yet
  push_out_of_order,  // PUSH id != previous + 1
  echo_mismatch,      // echoed payload differs from what was sent
  unexpected_echo,    // an echo when none was outstanding
  unexpected_frame,   // a frame the gateway must not send (DATA, PUSH_ACK)
  pong_mismatch,      // PONG id != the PING id sent
  frame_too_large,    // decoder: line/frame longer than the limit
  unknown_frame_type, // decoder: type byte not 1..6
  bad_fixed_length,   // decoder: ACK len != 4 or PUSH_ACK/PING/PONG len != 0
  count_
};
constexpr std::size_t kViolations = static_cast<std::size_t>(Violation::count_);
const char* violation_name(Violation v);

// A counter with one writer thread and any number of reader threads.
class Counter {
public:
  void add(std::uint64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void sub(std::uint64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }
  std::uint64_t get() const { return v_.load(std::memory_order_relaxed); }

private:
  std::atomic<std::uint64_t> v_{0};
};

struct Stats {
  Counter attempted;  // connection attempts started
  Counter completed;  // churn: echo received; stream/idle: connection established
  Counter failed;     // sum of failures[]
  Counter open;       // currently established connections
  Counter inflight;   // attempts in progress (bounded by --max-inflight)
  Counter messages;   // echoes received (all workloads)
  Counter sent;       // messages sent
  Counter skipped;    // launches due by --rate but not made because of --max-inflight
  Counter aborted;    // churn attempts still running when the drain grace ran out
  Counter resumed;    // TLS handshakes that resumed a session
  Counter violations; // sum of violation_counts[]
  Counter held;       // connections open when the run was told to stop
  Counter pushes;     // idle with --device-id-prefix: lines the gateway sent on its own
  std::array<Counter, kReasons> failures;
  std::array<Counter, kViolations> violation_counts;

  // Written by the owning thread only; read after join.
  Histogram latency; // churn: connect start -> echo; stream: message sent -> echo; idle: connect+handshake
  Histogram connect; // connect start -> connection ready (after TLS handshake)
  Histogram push;    // pushes whose payload starts "t=<CLOCK_MONOTONIC ns>": that time -> received
  std::uint64_t peak_open = 0;

  void fail(Reason r) {
    failures[static_cast<std::size_t>(r)].add();
    failed.add();
  }
  void violation(Violation v) {
    violation_counts[static_cast<std::size_t>(v)].add();
    violations.add();
  }
  void opened() {
    open.add();
    if (open.get() > peak_open)
      peak_open = open.get();
  }
};

// A plain, mergeable snapshot of Stats.
struct Totals {
  std::uint64_t attempted = 0, completed = 0, failed = 0, open = 0, inflight = 0, messages = 0, sent = 0,
                skipped = 0, aborted = 0, resumed = 0, violations = 0, held = 0, peak_open = 0, pushes = 0;
  std::array<std::uint64_t, kReasons> failures{};
  std::array<std::uint64_t, kViolations> violation_counts{};
  Histogram latency, connect, push;

  void add_counters(const Stats& s);   // safe while the owner runs
  void add_histograms(const Stats& s); // only after the owner stopped
};

} // namespace warren::loadgen
