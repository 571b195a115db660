// Internal: what a listener's actors share. Created by the listener's start function,
// released with the last actor of the listener tree.
#pragma once

#include <warren/net/listener.hpp>

#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_control_block.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/send.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <vector>

namespace warren::net::detail {

/// A freshly accepted socket on its way from acceptor to endpoint (CAF messages must
/// be copyable, a socket is not).
using socket_ptr = std::shared_ptr<asio::ip::tcp::socket>;

using accepted_atom = caf::atom_constant<caf::atom("nacc")>;
using accept_err_atom = caf::atom_constant<caf::atom("naccerr")>;
using slot_free_atom = caf::atom_constant<caf::atom("nslotfree")>;
using retry_atom = caf::atom_constant<caf::atom("nretry")>;
using drain_check_atom = caf::atom_constant<caf::atom("ndrchk")>;

struct atomic_counters {
  std::atomic<uint64_t> accepted{0}, active{0}, closed{0}, hs_timeout{0}, hs_tls_error{0}, hs_peer_closed{0},
      frames_in{0}, frames_out{0}, bytes_in{0}, bytes_out{0}, overflow_closes{0}, frame_errors{0},
      idle_closes{0}, accept_errors{0}, close_timeouts{0}, refused{0}, hello_timeouts{0};
  listener_counters snapshot() const;
};

inline void bump(std::atomic<uint64_t>& x, uint64_t n = 1) {
  x.fetch_add(n, std::memory_order_relaxed);
}

/// atomic_counters plus the endpoints' handshake-reason and codec frame counters.
/// Its snapshot() hides the base one (defined in listener.cpp) and adds them.
struct connection_counters : atomic_counters {
  std::atomic<uint64_t> hs_not_tls{0}, hs_unsupported_version{0}, hs_no_shared_cipher{0},
      hs_client_cert_required{0}, hs_bad_client_cert{0}, hs_other{0}, acks_out{0}, pushes_acked{0},
      pings_in{0};
  listener_counters snapshot() const {
    auto ld = [](const std::atomic<uint64_t>& x) { return x.load(std::memory_order_relaxed); };
    listener_counters r = atomic_counters::snapshot();
    r.handshake_not_tls = ld(hs_not_tls);
    r.handshake_unsupported_version = ld(hs_unsupported_version);
    r.handshake_no_shared_cipher = ld(hs_no_shared_cipher);
    r.handshake_client_cert_required = ld(hs_client_cert_required);
    r.handshake_bad_client_cert = ld(hs_bad_client_cert);
    r.handshake_other = ld(hs_other);
    r.acks_out = ld(acks_out);
    r.pushes_acked = ld(pushes_acked);
    r.pings_in = ld(pings_in);
    return r;
  }
};

/// One acceptor and its connection supervisor.
struct slot {
  caf::actor conns;    ///< guarded by listener_state::mu
  caf::actor acceptor; ///< guarded by listener_state::mu
};

/// At most one log line per interval for a frequent event; the line carries how many
/// were left out since the last one. Any thread.
class log_limiter {
public:
  /// True if this occurrence may be logged; `skipped` is then how many were not since.
  bool allow(caf::timespan interval, uint64_t& skipped) {
    auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    auto next = next_.load(std::memory_order_relaxed);
    if (now < next || !next_.compare_exchange_strong(next, now + interval.count())) {
      skipped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    skipped = skipped_.exchange(0, std::memory_order_relaxed);
    return true;
  }

private:
  std::atomic<int64_t> next_{0};
  std::atomic<uint64_t> skipped_{0};
};

struct listener_state {
  std::string id;
  io_pool* pool = nullptr;
  listener_options opts;
  protocol_factory factory;
  std::shared_ptr<asio::ssl::context> tls;
  connection_counters c;
  std::atomic<bool> suspended{false};
  std::atomic<std::size_t> max_connections{0}; ///< of the listener; opts.max_connections, changed at run time
  /// Sockets accepted and not yet closed: endpoints plus sockets on their way to one.
  std::atomic<std::size_t> open{0};
  log_limiter refused_log, accept_error_log;
  // TLS handshake admission (listener_options::max_handshakes): slots taken by pending
  // accepts and by handshakes past their ClientHello. The acceptors take one before
  // each accept and stop at the bound (`parked`); endpoint.cpp gives them back.
  std::size_t max_handshakes = 0; ///< set at start; 0 for plain TCP (no slots)
  std::atomic<std::size_t> handshakes{0};
  std::atomic<bool> parked{false};   ///< an acceptor waits for a slot
  std::atomic<bool> draining{false}; ///< a drain waits for the connections to end
  std::atomic<uint64_t> next_conn_id{1};
  uint16_t port = 0; // set by bind(), read-only afterwards

  std::vector<std::shared_ptr<asio::ip::tcp::acceptor>> sockets;
  std::vector<std::unique_ptr<slot>> slots;

  std::mutex mu;
  caf::weak_actor_ptr ctl; ///< guarded by mu; the running ctl actor
  caf::actor conns(std::size_t i) {
    std::lock_guard<std::mutex> g{mu};
    return slots[i]->conns;
  }
  caf::actor acceptor(std::size_t i) {
    std::lock_guard<std::mutex> g{mu};
    return slots[i]->acceptor;
  }
  void set_conns(std::size_t i, caf::actor a) {
    std::lock_guard<std::mutex> g{mu};
    slots[i]->conns = std::move(a);
  }
  void set_acceptor(std::size_t i, caf::actor a) {
    std::lock_guard<std::mutex> g{mu};
    slots[i]->acceptor = std::move(a);
  }
  void set_ctl(caf::weak_actor_ptr a) {
    std::lock_guard<std::mutex> g{mu};
    ctl = std::move(a);
  }

  /// No connection alive and none on its way from an acceptor.
  bool idle() const { return c.active.load() == 0 && open.load() == 0; }

  /// Counts a new connection in `open` unless the listener is at max_connections.
  bool admit() {
    if (open.fetch_add(1) < max_connections.load(std::memory_order_relaxed))
      return true;
    open.fetch_sub(1); // seq_cst: see on_conn_closed
    on_conn_closed();
    return false;
  }

  /// Called once a connection (or a socket on its way) is gone, after its counters
  /// dropped: wakes a pending drain when the last one ends. O(1) unless draining.
  void on_conn_closed() {
    // The caller's seq_cst decrement, then this seq_cst load; the ctl stores
    // `draining` then loads the counters, all seq_cst: either we see the flag, or
    // the ctl sees our decrement (no lost wake-up). No fences: ThreadSanitizer
    // models atomic operations, not fences; on x86 both cost the same.
    if (!draining.load() || !idle())
      return;
    caf::weak_actor_ptr w;
    {
      std::lock_guard<std::mutex> g{mu};
      w = ctl;
    }
    if (auto p = w.lock())
      caf::anon_send(caf::actor_cast<caf::actor>(p), drain_check_atom::value);
  }

  /// A handshake slot if one is free (below max_handshakes).
  bool take_handshake() {
    if (handshakes.fetch_add(1) < max_handshakes)
      return true;
    handshakes.fetch_sub(1); // the count was at the bound before: nothing freed, nobody to wake
    return false;
  }

  /// A slot for a connection admitted earlier whose ClientHello has now arrived: taken
  /// even at the bound (it waited once; it does not queue again), the acceptors then
  /// wait until the count is below it.
  void count_handshake() { handshakes.fetch_add(1); }

  /// Gives a slot back and wakes the acceptors if one waits for it. O(1) unless one does.
  void end_handshake() {
    // seq_cst decrement then flag; the parking acceptor sets the flag then loads the
    // count (acceptor.cpp): either it sees the free slot or we see the flag.
    handshakes.fetch_sub(1);
    if (!parked.load() || !parked.exchange(false))
      return;
    std::vector<caf::actor> xs;
    {
      std::lock_guard<std::mutex> g{mu};
      for (auto& s : slots)
        if (s->acceptor)
          xs.push_back(s->acceptor);
    }
    for (auto& a : xs)
      caf::anon_send(a, slot_free_atom::value);
  }

  std::size_t num_acceptors() const { return slots.size(); }
  /// Creates the listen sockets and, unless suspended, opens them (listen()).
  /// Throws std::system_error.
  void bind();
  /// Opens, binds and listens on every listen socket (closed ones), on their loops;
  /// returns when done. Throws std::system_error.
  void open_sockets();
  /// Closes the listen sockets (posted to their loops).
  void close_sockets();
  /// Ranch's suspend: sets the flag (acceptors stay idle) and closes the listen
  /// sockets on their loops, returning once they are closed: from then on the kernel
  /// refuses new connections, or hands them to another process on the same port
  /// (SO_REUSEPORT), instead of queueing them where nobody accepts.
  void suspend();
};

using state_ptr = std::shared_ptr<listener_state>;

} // namespace warren::net::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(warren::net::detail::socket_ptr)
