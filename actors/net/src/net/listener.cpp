#include <warren/net/listener.hpp>

#include "listener_state.hpp"

#include <warren/exit.hpp>
#include <warren/log.hpp>
#include <warren/net/acceptor.hpp>
#include <warren/net/endpoint.hpp>
#include <warren/registry.hpp>
#include <warren/supervisor.hpp>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <caf/all.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <map>

namespace warren::net {

caf::error make_error(net_errc x, std::string text) {
  return caf::error{static_cast<uint8_t>(x), net_error_category, caf::make_message(std::move(text))};
}

std::size_t connection_budget() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY)
    return 1 << 20;
  auto soft = static_cast<std::size_t>(lim.rlim_cur);
  auto reserve = std::max<std::size_t>(64, soft / 16);
  return soft > reserve ? soft - reserve : 1;
}

std::string listener_name(const std::string& id) {
  return "warren.net.listener." + id;
}

namespace detail {

listener_counters atomic_counters::snapshot() const {
  auto ld = [](const std::atomic<uint64_t>& x) { return x.load(std::memory_order_relaxed); };
  listener_counters r;
  r.accepted = ld(accepted);
  r.active = ld(active);
  r.closed = ld(closed);
  r.handshake_timeout = ld(hs_timeout);
  r.handshake_tls_error = ld(hs_tls_error);
  r.handshake_peer_closed = ld(hs_peer_closed);
  r.frames_in = ld(frames_in);
  r.frames_out = ld(frames_out);
  r.bytes_in = ld(bytes_in);
  r.bytes_out = ld(bytes_out);
  r.overflow_closes = ld(overflow_closes);
  r.frame_errors = ld(frame_errors);
  r.idle_closes = ld(idle_closes);
  r.accept_errors = ld(accept_errors);
  r.close_timeouts = ld(close_timeouts);
  r.refused = ld(refused);
  r.hello_timeouts = ld(hello_timeouts);
  return r;
}

void listener_state::bind() {
  // Every listen socket needs an acceptor, or the connections the kernel hashes to
  // it would wait forever: never more sockets than acceptors. Default: one, shared by
  // every acceptor (Ranch's design): one kernel queue, so no connection waits behind
  // a busy or full acceptor while another could take it.
  std::size_t n = opts.num_listen_sockets == 0 ? 1 : opts.num_listen_sockets;
  n = std::max<std::size_t>(1, std::min(n, num_acceptors()));
  sockets.clear();
  for (std::size_t i = 0; i < n; ++i)
    sockets.push_back(std::make_shared<asio::ip::tcp::acceptor>(pool->at(i)));
  if (!suspended.load())
    open_sockets();
}

namespace {

/// Runs `f` on `s`'s loop and waits for it; rethrows what it threw.
template <class F>
void on_loop(const std::shared_ptr<asio::ip::tcp::acceptor>& s, F f) {
  std::promise<void> done;
  asio::post(s->get_executor(), [&] {
    try {
      f();
      done.set_value();
    } catch (...) {
      done.set_exception(std::current_exception());
    }
  });
  done.get_future().get();
}

} // namespace

void listener_state::open_sockets() {
  using asio::ip::tcp;
  auto addr = asio::ip::make_address(opts.bind_address);
  uint16_t p = port != 0 ? port : opts.port;
  for (auto& a : sockets) {
    on_loop(a, [&] {
      if (a->is_open())
        return;
      tcp::endpoint ep{addr, p};
      a->open(ep.protocol());
      a->set_option(tcp::acceptor::reuse_address(true));
      // SO_REUSEPORT: several listen sockets of ours, or a second gateway process on
      // the same port during a rolling restart (docs/operations.md).
      a->set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true));
      try {
        a->bind(ep);
        a->listen(opts.backlog);
      } catch (...) {
        asio::error_code ec;
        a->close(ec);
        throw;
      }
      if (p == 0)
        p = a->local_endpoint().port(); // the others join the ephemeral port
    });
  }
  port = p;
}

void listener_state::close_sockets() {
  for (auto& s : sockets)
    asio::post(s->get_executor(), [s] {
      asio::error_code ec;
      s->close(ec);
    });
}

void listener_state::suspend() {
  suspended.store(true);
  for (auto& s : sockets)
    on_loop(s, [&] {
      asio::error_code ec;
      s->close(ec); // pending accepts end with operation_aborted
    });
}

namespace {

using drain_deadline_atom = caf::atom_constant<caf::atom("ndrdead")>;
using summary_atom = caf::atom_constant<caf::atom("nsummary")>;

/// The listener's first child: keeps the listen sockets open while it runs and
/// answers the control API.
class ctl_actor : public caf::event_based_actor {
public:
  ctl_actor(caf::actor_config& cfg, state_ptr st) : caf::event_based_actor(cfg), st_(std::move(st)) {}

  caf::behavior make_behavior() override {
    st_->set_ctl(caf::actor_cast<caf::weak_actor_ptr>(this));
    logged_ = st_->c.snapshot(); // a restarted ctl summarises from now
    arm_summary();
    return {
        [this](port_atom) { return st_->port; },
        [this](counters_atom) { return st_->c.snapshot(); },
        [this](suspend_atom) {
          st_->suspend();
          return caf::ok_atom::value;
        },
        [this](resume_atom) -> caf::result<caf::ok_atom> {
          try {
            st_->open_sockets(); // on the same port (another process may share it)
          } catch (const std::exception& e) {
            return make_error(net_errc::bind_failed, e.what());
          }
          st_->suspended.store(false);
          wake_acceptors();
          return caf::ok_atom::value;
        },
        [this](max_conns_atom, uint64_t n) -> caf::result<caf::ok_atom> {
          if (n == 0)
            return caf::make_error(caf::sec::invalid_argument, "max_connections must be at least 1");
          st_->max_connections.store(n);
          wake_acceptors(); // a raised limit lets waiting acceptors accept again
          return caf::ok_atom::value;
        },
        [this](drain_atom, caf::timespan deadline) -> caf::result<uint64_t> {
          st_->suspend();
          auto id = next_drain_++;
          auto& d = drains_[id];
          d.rp = make_response_promise<uint64_t>();
          d.timer = start_deadline(deadline, id);
          // seq_cst store, then check_idle's seq_cst loads; listener_state::on_conn_closed
          // does the mirror image: a connection that ends now either sees `draining` and
          // tells us, or we see it gone here.
          st_->draining.store(true);
          check_idle();
          return caf::delegated<uint64_t>{};
        },
        [this](drain_check_atom) { check_idle(); },
        [this](drain_deadline_atom, uint64_t id) { on_deadline(id); },
        [this](summary_atom, uint64_t) {
          log_summary();
          arm_summary();
        },
    };
  }

  void on_exit() override {
    if (st_) {
      st_->draining.store(false);
      st_->close_sockets();
    }
    // A drain still waiting gets an answer: its caller must not hang on a stopped listener.
    for (auto& [id, d] : drains_) {
      cancel(d.timer);
      d.rp.deliver(make_error(sup_errc::noproc, "listener stopped during drain"));
    }
    drains_.clear();
    cancel(summary_timer_);
    st_.reset();
  }

private:
  struct pending_drain {
    caf::typed_response_promise<uint64_t> rp;
    std::shared_ptr<asio::steady_timer> timer;
    bool closing = false; ///< deadline passed: waiting for close_all's count
  };

  void wake_acceptors() {
    for (std::size_t i = 0; i < st_->num_acceptors(); ++i)
      if (auto a = st_->acceptor(i))
        send(a, resume_atom::value);
  }

  /// Sends us `{atom, id}` after `delay`, from a timer on an io loop: CAF's delayed
  /// messages would keep this actor alive until a long deadline passed, even after the
  /// listener stopped.
  template <class Atom>
  std::shared_ptr<asio::steady_timer> start_timer(caf::timespan delay, Atom atom, uint64_t id) {
    auto t = std::make_shared<asio::steady_timer>(st_->pool->at(0));
    auto self = caf::actor_cast<caf::weak_actor_ptr>(this);
    auto d = std::chrono::duration_cast<asio::steady_timer::duration>(std::max(delay, caf::timespan{0}));
    asio::post(t->get_executor(), [t, d, self, atom, id] {
      t->expires_after(d);
      t->async_wait([t, self, atom, id](const asio::error_code& ec) {
        if (ec)
          return;
        if (auto p = self.lock())
          caf::anon_send(caf::actor_cast<caf::actor>(p), atom, id);
      });
    });
    return t;
  }

  /// The deadline of drain `id`.
  std::shared_ptr<asio::steady_timer> start_deadline(caf::timespan deadline, uint64_t id) {
    return start_timer(deadline, drain_deadline_atom::value, id);
  }

  void arm_summary() {
    if (st_->opts.log_interval.count() > 0)
      summary_timer_ = start_timer(st_->opts.log_interval, summary_atom::value, uint64_t{0});
  }

  /// Once per log_interval, at info, what is too frequent to log one by one: the
  /// handshake timeouts and overflow closes since the last line (none: no line).
  void log_summary() {
    auto now = st_->c.snapshot();
    auto timeouts = now.handshake_timeout - logged_.handshake_timeout;
    auto hello = now.hello_timeouts - logged_.hello_timeouts;
    auto overflows = now.overflow_closes - logged_.overflow_closes;
    if (timeouts != 0 || overflows != 0)
      log().info(
          "listener {}: in the last {} ms: {} handshake timeouts ({} of them without a whole ClientHello), "
          "{} overflow closes; since start {} and {}",
          st_->id, std::chrono::duration_cast<std::chrono::milliseconds>(st_->opts.log_interval).count(),
          timeouts, hello, overflows, now.handshake_timeout, now.overflow_closes);
    logged_ = now;
  }

  static void cancel(const std::shared_ptr<asio::steady_timer>& t) {
    if (t)
      asio::post(t->get_executor(), [t] { t->cancel(); });
  }

  void update_flag() {
    if (drains_.empty())
      st_->draining.store(false);
  }

  /// Event-driven: called when a drain starts and whenever the last connection ends
  /// (listener_state::on_conn_closed). Answers every drain still waiting.
  void check_idle() {
    if (drains_.empty() || !st_->idle())
      return;
    for (auto i = drains_.begin(); i != drains_.end();) {
      if (i->second.closing) { // its close_all answers it with the count
        ++i;
        continue;
      }
      cancel(i->second.timer);
      i->second.rp.deliver(uint64_t{0});
      i = drains_.erase(i);
    }
    update_flag();
  }

  void on_deadline(uint64_t id) {
    auto i = drains_.find(id);
    if (i == drains_.end() || i->second.closing)
      return;
    i->second.closing = true;
    close_all(id);
  }

  // Deadline: close the rest, as the supervisor would (shutdown, no flush), and answer
  // drain `id` with how many were closed.
  void close_all(uint64_t id) {
    auto pending = std::make_shared<std::size_t>(st_->num_acceptors());
    auto total = std::make_shared<uint64_t>(0);
    auto done = [this, id, pending, total] {
      if (--*pending != 0)
        return;
      if (auto i = drains_.find(id); i != drains_.end()) {
        i->second.rp.deliver(*total);
        drains_.erase(i);
      }
      update_flag();
    };
    for (std::size_t i = 0; i < st_->num_acceptors(); ++i) {
      request(st_->conns(i), caf::infinite, which_children_atom::value)
          .then(
              [this, done, total](const std::vector<child_info>& xs) {
                for (auto& x : xs)
                  if (x.handle) {
                    send_exit(x.handle, caf::exit_reason::user_shutdown);
                    ++*total;
                  }
                done();
              },
              [done](const caf::error&) { done(); });
    }
  }

  std::map<uint64_t, pending_drain> drains_;
  uint64_t next_drain_ = 0;
  std::shared_ptr<asio::steady_timer> summary_timer_;
  listener_counters logged_; ///< the counters at the last summary
  state_ptr st_;
};

} // namespace
} // namespace detail

child_spec listener_child(std::string id, io_pool& pool, listener_options opts, protocol_factory factory) {
  child_spec spec;
  spec.id = id;
  spec.type = child_type::supervisor;
  spec.shutdown = shutdown_spec::infinity();
  spec.start = [id, pool = &pool, opts, factory](const start_context& ctx) -> start_result {
    using namespace detail;
    // Fresh state per start: a restarted listener rebinds and counts from zero.
    auto st = std::make_shared<listener_state>();
    st->id = id;
    st->pool = pool;
    st->opts = opts;
    st->factory = factory;
    st->max_connections.store(opts.max_connections != 0 ? opts.max_connections : connection_budget());
    if (opts.max_connections == 0)
      log().info("listener {}: max_connections {} (from the open-file limit)", id,
                 st->max_connections.load());
    if (opts.tls)
      st->max_handshakes = opts.max_handshakes != 0 ? opts.max_handshakes : 128 * pool->size();
    std::size_t n = opts.num_acceptors;
    if (n == 0)
      n = std::max(pool->size(), opts.num_listen_sockets);
    for (std::size_t i = 0; i < n; ++i)
      st->slots.push_back(std::make_unique<slot>());
    try {
      if (opts.tls)
        st->tls = make_server_context(*opts.tls);
    } catch (const std::exception& e) {
      return make_error(net_errc::bind_failed, std::string{"tls setup: "} + e.what());
    }

    std::vector<child_spec> children;
    child_spec ctl;
    ctl.id = "ctl";
    ctl.name = listener_name(id);
    ctl.start = [st](const start_context& c) -> start_result {
      try {
        // A restarted ctl rebinds (its predecessor closed the sockets), on the same
        // port when it was ephemeral. The acceptors restart after it (rest_for_one).
        st->bind(); // stays closed while suspended
      } catch (const std::exception& e) {
        return make_error(net_errc::bind_failed, e.what());
      }
      return caf::actor{c.system().spawn<ctl_actor>(st)};
    };
    children.push_back(std::move(ctl));

    for (std::size_t i = 0; i < n; ++i) {
      child_spec tmpl;
      tmpl.id = "endpoint";
      tmpl.restart = restart_type::temporary; // a disconnect storm never escalates
      tmpl.shutdown = shutdown_spec::timeout(std::chrono::seconds(1));
      tmpl.start = endpoint_template(st, i);
      supervisor_flags f;
      f.strategy = restart_strategy::simple_one_for_one;
      auto conns = supervisor_child("conns_" + std::to_string(i), f, {tmpl});
      conns.start = [st, i, inner = conns.start](const start_context& c) -> start_result {
        auto r = inner(c);
        if (r.started())
          st->set_conns(i, r.actor());
        return r;
      };
      children.push_back(std::move(conns));
    }

    std::vector<child_spec> acceptors;
    for (std::size_t i = 0; i < n; ++i) {
      child_spec a;
      a.id = "acceptor_" + std::to_string(i);
      a.start = acceptor_start(st, i);
      a.shutdown = shutdown_spec::brutal_kill(); // holds nothing but a pending accept
      acceptors.push_back(std::move(a));
    }
    supervisor_flags af;
    af.intensity = 10;
    af.period = std::chrono::seconds(10);
    children.push_back(supervisor_child("acceptors", af, std::move(acceptors)));

    supervisor_flags lf;
    lf.strategy = restart_strategy::rest_for_one;
    lf.intensity = 5;
    lf.period = std::chrono::seconds(10);
    return supervisor_child(id, lf, std::move(children)).start(ctx);
  };
  return spec;
}

namespace listener {

namespace {

/// How long a blocking control call waits for the ctl beyond the work it asked for:
/// a safety net, so that a lost answer is an error (request_timeout), never a hang.
constexpr auto ctl_grace = std::chrono::seconds(30);

template <class T, class... Ts>
caf::expected<T> ask_within(caf::actor_system& sys, const std::string& id, caf::timespan timeout, Ts... xs) {
  auto ctl = whereis(sys, listener_name(id));
  if (!ctl)
    return make_error(sup_errc::noproc, "no listener " + id);
  caf::scoped_actor self{sys};
  caf::expected<T> result{caf::error{}};
  self->request(ctl, timeout, xs...)
      .receive([&](T& x) { result = std::move(x); }, [&](caf::error& err) { result = std::move(err); });
  return result;
}

template <class T, class... Ts>
caf::expected<T> ask(caf::actor_system& sys, const std::string& id, Ts... xs) {
  return ask_within<T>(sys, id, ctl_grace, xs...);
}

} // namespace

caf::expected<uint16_t> port(caf::actor_system& sys, const std::string& id) {
  return ask<uint16_t>(sys, id, port_atom::value);
}

caf::expected<listener_counters> counters(caf::actor_system& sys, const std::string& id) {
  return ask<listener_counters>(sys, id, counters_atom::value);
}

caf::error suspend(caf::actor_system& sys, const std::string& id) {
  auto r = ask<caf::ok_atom>(sys, id, suspend_atom::value);
  return r ? caf::error{} : r.error();
}

caf::error resume(caf::actor_system& sys, const std::string& id) {
  auto r = ask<caf::ok_atom>(sys, id, resume_atom::value);
  return r ? caf::error{} : r.error();
}

caf::expected<uint64_t> drain(caf::actor_system& sys, const std::string& id, caf::timespan deadline) {
  // Clamped so that a "forever" deadline (timespan::max) cannot overflow the sum.
  auto wait = std::min(deadline, caf::timespan{std::chrono::hours(24 * 365)}) + ctl_grace;
  return ask_within<uint64_t>(sys, id, wait, drain_atom::value, deadline);
}

caf::error set_max_connections(caf::actor_system& sys, const std::string& id, std::size_t n) {
  auto r = ask<caf::ok_atom>(sys, id, max_conns_atom::value, uint64_t{n});
  return r ? caf::error{} : r.error();
}

} // namespace listener
} // namespace warren::net
