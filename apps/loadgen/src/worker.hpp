// One io thread: its own asio::io_context, its share of the connection rate, caps and in-flight bound,
// the live sessions, and its Stats. Workers share nothing but the read-only Options and TLS context.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <asio/io_context.hpp>
#include <asio/ip/address.hpp>
#include <asio/ssl/context.hpp>
#include <asio/steady_timer.hpp>

#include "options.hpp"
#include "session.hpp"
#include "stats.hpp"
#include "tls.hpp"

namespace warren::loadgen {

class Worker {
public:
  Worker(const Options& o, asio::ssl::context* tls, unsigned index, Clock::time_point start);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void run();  // thread body; returns when this worker is done
  void stop(); // thread-safe: stop launching (end of --duration)
  // Thread-safe last resort: abandon everything now (hard deadline).
  void kill() { io_.stop(); }
  bool done() const { return done_.load(std::memory_order_acquire); }

  Stats stats;
  Clock::time_point last_event{}; // time of the last completion/echo, for rates (read after join)

  // ---- used by Session ----
  const Options& opts;
  asio::io_context& io() { return io_; }
  asio::ssl::context* tls_context() const { return tls_; }
  SessionCache& session_cache() { return cache_; }
  bool stopping() const { return stopping_; }
  asio::ip::tcp::endpoint target() const { return target_; }
  // Next source address (127.0.0.1 .. 127.0.0.N in turn), or nullopt to let the kernel choose.
  bool next_source(asio::ip::address_v4& out);
  // Writes message `seq` (payload only) into `out`: --size bytes, seq in hex at the front.
  void payload(std::uint64_t seq, std::string& out) const;
  bool payload_matches(std::uint64_t seq, std::string_view p) const;
  void attempt_ended(); // an attempt left the in-flight set
  void link(Session* s);
  // --connect-log: one line per established connection (this thread's; written by main after join).
  std::string connect_log;
  void unlink(Session* s);

private:
  void begin();
  void launch_one();
  void fill(); // as fast as possible: top up to the in-flight bound
  void tick(); // rate mode: launch what the schedule says is due
  void arm_tick();
  void sweep();
  void arm_sweep();
  void on_stop();
  void abort_all(bool count_aborted);
  void maybe_finish();
  bool cap_reached() const { return cap_ && launched_ >= cap_; }
  double due(double t) const; // connections this worker should have launched t seconds in

  asio::ssl::context* tls_;
  unsigned index_;
  Clock::time_point start_;
  asio::ip::tcp::endpoint target_;
  std::string pattern_; // filler of payloads
  SessionCache cache_;

  // Shares of the global settings.
  double share_ = 1;      // fraction of the rate and caps for this worker
  std::uint64_t cap_ = 0; // 0 = no cap
  std::uint64_t max_inflight_ = 1;
  std::uint64_t launched_ = 0;
  std::uint64_t src_next_ = 0;

  Session* head_ = nullptr; // intrusive list of live sessions
  std::uint64_t live_ = 0;
  bool stopping_ = false;
  bool finished_ = false;
  bool tearing_down_ = false;
  bool fill_posted_ = false;
  std::atomic<bool> done_{false};

  // Declared after the list above: destroying the io_context destroys pending handlers and thus
  // sessions, which unlink themselves.
  asio::io_context io_{1};
  asio::steady_timer tick_timer_{io_};
  asio::steady_timer sweep_timer_{io_};
  asio::steady_timer drain_timer_{io_};
  std::chrono::nanoseconds sweep_every_{};
};

} // namespace warren::loadgen
