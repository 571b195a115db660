#include "worker.hpp"

#include <algorithm>
#include <cmath>

#include <asio/post.hpp>

namespace warren::loadgen {

namespace {
constexpr char kHex[] = "0123456789abcdef";
constexpr std::size_t kSeqChars = 16;
constexpr auto kTick = std::chrono::milliseconds(1);

std::chrono::nanoseconds seconds(double s) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(s));
}
} // namespace

Worker::Worker(const Options& o, asio::ssl::context* tls, unsigned index, Clock::time_point start)
  : opts(o), tls_(tls), index_(index), start_(start), target_(o.address, o.port) {
  const unsigned n = o.threads;
  share_ = 1.0 / n;
  if (o.connections) {
    cap_ = *o.connections / n + (index < *o.connections % n ? 1 : 0);
    if (cap_ == 0)
      cap_ = UINT64_MAX; // no share of the cap: mark as "reached" by never launching
  }
  max_inflight_ = std::max<std::uint64_t>(1, (o.max_inflight + n - 1) / n);
  src_next_ = index;
  pattern_.resize(o.size);
  for (std::size_t i = 0; i < o.size; ++i)
    pattern_[i] = static_cast<char>('a' + i % 26);
  const double min_timeout = std::min({o.connect_timeout, o.handshake_timeout, o.timeout});
  sweep_every_ = std::clamp<std::chrono::nanoseconds>(seconds(min_timeout / 4), std::chrono::milliseconds(1),
                                                      std::chrono::milliseconds(50));
}

Worker::~Worker() {
  tearing_down_ = true;
}

void Worker::run() {
  if (cap_ == UINT64_MAX) { // this thread got no share of --connections
    done_.store(true, std::memory_order_release);
    return;
  }
  asio::post(io_, [this] { begin(); });
  io_.run();
  done_.store(true, std::memory_order_release);
}

void Worker::stop() {
  asio::post(io_, [this] { on_stop(); });
}

void Worker::begin() {
  arm_sweep();
  if (opts.rate > 0)
    tick();
  else
    fill();
}

bool Worker::next_source(asio::ip::address_v4& out) {
  const unsigned n = opts.source_addrs;
  if (n == 0)
    return false;
  out = asio::ip::address_v4((127u << 24) | static_cast<unsigned>(1 + src_next_ % n));
  src_next_ += opts.threads; // threads interleave so that together they cover all N addresses evenly
  return true;
}

void Worker::payload(std::uint64_t seq, std::string& out) const {
  const std::size_t start = out.size();
  out.append(pattern_);
  const std::size_t k = std::min(kSeqChars, opts.size);
  for (std::size_t i = 0; i < k; ++i)
    out[start + k - 1 - i] = kHex[(seq >> (4 * i)) & 0xf];
}

bool Worker::payload_matches(std::uint64_t seq, std::string_view p) const {
  if (p.size() != opts.size)
    return false;
  const std::size_t k = std::min(kSeqChars, opts.size);
  for (std::size_t i = 0; i < k; ++i)
    if (p[k - 1 - i] != kHex[(seq >> (4 * i)) & 0xf])
      return false;
  return p.substr(k) == std::string_view(pattern_).substr(k);
}

void Worker::link(Session* s) {
  s->prev = nullptr;
  s->next = head_;
  if (head_)
    head_->prev = s;
  head_ = s;
  ++live_;
}

void Worker::unlink(Session* s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    head_ = s->next;
  if (s->next)
    s->next->prev = s->prev;
  --live_;
  if (!tearing_down_)
    maybe_finish();
}

void Worker::launch_one() {
  // Threads interleave the numbers as they do the source addresses.
  const std::uint64_t number = opts.device_id_start + index_ + launched_ * opts.threads;
  ++launched_;
  auto s = std::make_shared<Session>(*this, number);
  s->start();
}

void Worker::attempt_ended() {
  // As fast as possible: refill the in-flight set (posted, so that sessions never recurse into each other).
  if (opts.rate > 0 || stopping_ || cap_reached() || fill_posted_)
    return;
  fill_posted_ = true;
  asio::post(io_, [this] {
    fill_posted_ = false;
    fill();
  });
}

void Worker::fill() {
  // Bounded per call: attempts that fail at once (e.g. out of descriptors) must not spin here forever.
  for (std::uint64_t n = 0;
       n < max_inflight_ && !stopping_ && !cap_reached() && stats.inflight.get() < max_inflight_; ++n)
    launch_one();
  maybe_finish();
}

double Worker::due(double t) const {
  // Integral of the rate: linear ramp from ramp_from to rate over `ramp` seconds, then constant.
  const double r0 = opts.ramp_from, r1 = opts.rate, T = opts.ramp;
  double n;
  if (T <= 0)
    n = r1 * t;
  else if (t < T)
    n = r0 * t + (r1 - r0) * t * t / (2 * T);
  else
    n = (r0 + r1) * T / 2 + r1 * (t - T);
  return n * share_;
}

void Worker::tick() {
  if (stopping_ || cap_reached()) {
    maybe_finish();
    return;
  }
  const double t = std::chrono::duration<double>(Clock::now() - start_).count();
  const auto target = static_cast<std::uint64_t>(std::floor(due(t) + (index_ == 0 ? 0.5 : 0.0)));
  std::uint64_t accounted = launched_ + stats.skipped.get();
  while (accounted < target && !cap_reached()) {
    if (stats.inflight.get() >= max_inflight_)
      stats.skipped.add(); // the target can't be met within the in-flight bound
    else
      launch_one();
    ++accounted;
  }
  arm_tick();
}

void Worker::arm_tick() {
  tick_timer_.expires_after(kTick);
  tick_timer_.async_wait([this](const asio::error_code& ec) {
    if (!ec)
      tick();
  });
}

void Worker::sweep() {
  const auto now = Clock::now();
  for (Session* s = head_; s;) {
    Session* next = s->next; // a session may unlink itself only when its last owner goes, never here
    s->sweep(now);
    s = next;
  }
  arm_sweep();
}

void Worker::arm_sweep() {
  if (finished_)
    return;
  sweep_timer_.expires_after(sweep_every_);
  sweep_timer_.async_wait([this](const asio::error_code& ec) {
    if (!ec)
      sweep();
  });
}

void Worker::on_stop() {
  if (stopping_ || finished_)
    return;
  stopping_ = true;
  stats.held.add(stats.open.get());
  tick_timer_.cancel();
  if (opts.workload == Workload::churn && live_ > 0) {
    drain_timer_.expires_after(seconds(opts.drain));
    drain_timer_.async_wait([this](const asio::error_code& ec) {
      if (!ec)
        abort_all(true);
    });
  } else {
    abort_all(true);
  }
  maybe_finish();
}

void Worker::abort_all(bool count_aborted) {
  for (Session* s = head_; s;) {
    Session* next = s->next;
    s->abort(count_aborted);
    s = next;
  }
}

void Worker::maybe_finish() {
  if (finished_ || live_ > 0)
    return;
  // Churn ends when the cap is reached and everything finished; stream/idle end early only when every
  // connection they were to open is gone (all failed).
  if (!stopping_ && !cap_reached())
    return;
  finished_ = true;
  stopping_ = true;
  tick_timer_.cancel();
  sweep_timer_.cancel();
  drain_timer_.cancel();
}

} // namespace warren::loadgen
