#include "stats.hpp"

#include <algorithm>
#include <bit>

namespace warren::loadgen {

namespace {
constexpr std::size_t kLinear = std::size_t{1} << Histogram::kSubBits;
constexpr std::size_t kHalf = kLinear / 2;
constexpr std::size_t kBuckets = kLinear + Histogram::kMaxShift * kHalf;
} // namespace

Histogram::Histogram() : buckets_(kBuckets, 0) {}

std::size_t Histogram::index_of(std::uint64_t v) {
  if (v < kLinear)
    return static_cast<std::size_t>(v);
  const unsigned msb = static_cast<unsigned>(std::bit_width(v)) - 1; // >= kSubBits
  unsigned shift = msb - (kSubBits - 1);                             // >= 1
  if (shift > kMaxShift)
    return kBuckets - 1;
  const std::uint64_t sub = v >> shift; // in [kHalf, kLinear)
  return kLinear + (shift - 1) * kHalf + static_cast<std::size_t>(sub - kHalf);
}

std::uint64_t Histogram::lower_bound_of(std::size_t idx) {
  if (idx < kLinear)
    return idx;
  const std::size_t shift = (idx - kLinear) / kHalf + 1;
  const std::uint64_t sub = (idx - kLinear) % kHalf + kHalf;
  return sub << shift;
}

std::uint64_t Histogram::upper_bound_of(std::size_t idx) {
  if (idx < kLinear)
    return idx + 1;
  const std::size_t shift = (idx - kLinear) / kHalf + 1;
  return lower_bound_of(idx) + (std::uint64_t{1} << shift);
}

void Histogram::record(std::uint64_t us) {
  ++buckets_[index_of(us)];
  ++count_;
  sum_ += us;
  max_ = std::max(max_, us);
  min_ = std::min(min_, us);
}

void Histogram::merge(const Histogram& o) {
  for (std::size_t i = 0; i < buckets_.size(); ++i)
    buckets_[i] += o.buckets_[i];
  count_ += o.count_;
  sum_ += o.sum_;
  max_ = std::max(max_, o.max_);
  min_ = std::min(min_, o.min_);
}

double Histogram::quantile(double q) const {
  if (count_ == 0)
    return 0;
  if (q >= 1)
    return double(max_);
  // Rank of the sample wanted (1-based), as in HDR: ceil(q * count), at least 1.
  std::uint64_t rank = static_cast<std::uint64_t>(q * double(count_) + 0.999999999);
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (seen >= rank) {
      if (i < kLinear)
        return std::min(double(i), double(max_));
      const double mid = (double(lower_bound_of(i)) + double(upper_bound_of(i) - 1)) / 2;
      return std::min(mid, double(max_));
    }
  }
  return double(max_);
}

const char* reason_name(Reason r) {
  switch (r) {
    case Reason::connect_refused:
      return "connect_refused";
    case Reason::connect_timeout:
      return "connect_timeout";
    case Reason::addr_unavailable:
      return "addr_unavailable";
    case Reason::fd_exhausted:
      return "fd_exhausted";
    case Reason::connect_error:
      return "connect_error";
    case Reason::handshake_failed:
      return "handshake_failed";
    case Reason::handshake_timeout:
      return "handshake_timeout";
    case Reason::reset:
      return "reset";
    case Reason::closed:
      return "closed";
    case Reason::timeout:
      return "timeout";
    case Reason::protocol_violation:
      return "protocol_violation";
    case Reason::io_error:
      return "io_error";
    case Reason::count_:
      break;
  }
  return "?";
}

const char* violation_name(Violation v) {
  switch (v) {
    case Violation::ack_invariant:
      return "ack_invariant";
    case Violation::ack_beyond_sent:
      return "ack_beyond_sent";
    case Violation::push_out_of_order:
      return "push_out_of_order";
    case Violation::echo_mismatch:
      return "echo_mismatch";
    case Violation::unexpected_echo:
      return "unexpected_echo";
    case Violation::unexpected_frame:
      return "unexpected_frame";
    case Violation::pong_mismatch:
      return "pong_mismatch";
    case Violation::frame_too_large:
      return "frame_too_large";
    case Violation::unknown_frame_type:
      return "unknown_frame_type";
    case Violation::bad_fixed_length:
      return "bad_fixed_length";
    case Violation::count_:
      break;
  }
  return "?";
}

void Totals::add_counters(const Stats& s) {
  attempted += s.attempted.get();
  completed += s.completed.get();
  failed += s.failed.get();
  open += s.open.get();
  inflight += s.inflight.get();
  messages += s.messages.get();
  sent += s.sent.get();
  skipped += s.skipped.get();
  aborted += s.aborted.get();
  resumed += s.resumed.get();
  violations += s.violations.get();
  held += s.held.get();
  pushes += s.pushes.get();
  for (std::size_t i = 0; i < kReasons; ++i)
    failures[i] += s.failures[i].get();
  for (std::size_t i = 0; i < kViolations; ++i)
    violation_counts[i] += s.violation_counts[i].get();
}

void Totals::add_histograms(const Stats& s) {
  latency.merge(s.latency);
  connect.merge(s.connect);
  push.merge(s.push);
  peak_open += s.peak_open;
}

} // namespace warren::loadgen
