#include <warren/net/listener.hpp>

#include "listener_state.hpp"

#include <warren/exit.hpp>
#include <warren/log.hpp>
#include <warren/net/acceptor.hpp>
#include <warren/net/endpoint.hpp>
#include <warren/registry.hpp>
#include <warren/supervisor.hpp>

#include <asio/post.hpp>
#include <caf/all.hpp>

#include <algorithm>

namespace warren::net {

caf::error make_error(net_errc x, std::string text) {
  return caf::error{static_cast<uint8_t>(x), net_error_category, caf::make_message(std::move(text))};
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
  return r;
}

void listener_state::bind() {
  using asio::ip::tcp;
  auto addr = asio::ip::make_address(opts.bind_address);
  // Every listen socket needs an acceptor, or the connections the kernel hashes to
  // it would wait forever: never more sockets than acceptors.
  std::size_t n = opts.num_listen_sockets == 0 ? pool->size() : opts.num_listen_sockets;
  n = std::max<std::size_t>(1, std::min(n, num_acceptors()));
  uint16_t p = port != 0 ? port : opts.port;
  for (std::size_t i = 0; i < n; ++i) {
    auto a = std::make_shared<tcp::acceptor>(pool->at(i));
    tcp::endpoint ep{addr, p};
    a->open(ep.protocol());
    a->set_option(tcp::acceptor::reuse_address(true));
    // SO_REUSEPORT: one kernel accept queue per socket, so the loops do not contend.
    a->set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true));
    a->bind(ep);
    a->listen(opts.backlog);
    if (p == 0)
      p = a->local_endpoint().port(); // the others join the ephemeral port
    sockets.push_back(std::move(a));
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
    asio::post(s->get_executor(), [s] {
      asio::error_code ec;
      s->cancel(ec);
    });
}

namespace {

using drain_tick_atom = caf::atom_constant<caf::atom("ndrtick")>;

/// The listener's first child: keeps the listen sockets open while it runs and
/// answers the control API.
class ctl_actor : public caf::event_based_actor {
public:
  ctl_actor(caf::actor_config& cfg, state_ptr st) : caf::event_based_actor(cfg), st_(std::move(st)) {}

  caf::behavior make_behavior() override {
    return {
        [this](port_atom) { return st_->port; },
        [this](counters_atom) { return st_->c.snapshot(); },
        [this](suspend_atom) {
          st_->suspend();
          return caf::ok_atom::value;
        },
        [this](resume_atom) {
          st_->suspended.store(false);
          for (std::size_t i = 0; i < st_->num_acceptors(); ++i)
            if (auto a = st_->acceptor(i))
              send(a, resume_atom::value);
          return caf::ok_atom::value;
        },
        [this](drain_atom, caf::timespan deadline) -> caf::result<uint64_t> {
          st_->suspend();
          auto rp = make_response_promise<uint64_t>();
          drains_.push_back({std::move(rp), caf::make_timestamp() + deadline});
          if (drains_.size() == 1)
            drain_tick();
          return caf::delegated<uint64_t>{};
        },
        [this](drain_tick_atom) { drain_tick(); },
    };
  }

  void on_exit() override {
    if (st_)
      st_->close_sockets();
    st_.reset();
  }

private:
  struct pending_drain {
    caf::typed_response_promise<uint64_t> rp;
    caf::timestamp until;
  };

  // Polls the active count every 10 ms until zero or the deadline: a drain is rare,
  // and this keeps the per-connection close path free of drain bookkeeping.
  void drain_tick() {
    auto now = caf::make_timestamp();
    bool idle = st_->c.active.load() == 0;
    std::vector<pending_drain> expired;
    for (auto i = drains_.begin(); i != drains_.end();) {
      if (idle) {
        i->rp.deliver(uint64_t{0});
        i = drains_.erase(i);
      } else if (now >= i->until) {
        expired.push_back(std::move(*i));
        i = drains_.erase(i);
      } else {
        ++i;
      }
    }
    if (!drains_.empty())
      delayed_send(this, std::chrono::milliseconds(10), drain_tick_atom::value);
    if (!expired.empty())
      close_all(std::move(expired));
  }

  // Deadline: close the rest, as the supervisor would (shutdown, no flush).
  void close_all(std::vector<pending_drain> waiting) {
    auto rps = std::make_shared<std::vector<pending_drain>>(std::move(waiting));
    auto pending = std::make_shared<std::size_t>(st_->num_acceptors());
    auto total = std::make_shared<uint64_t>(0);
    auto done = [rps, pending, total] {
      if (--*pending == 0)
        for (auto& d : *rps)
          d.rp.deliver(*total);
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

  std::vector<pending_drain> drains_;
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
    std::size_t n = opts.num_acceptors;
    if (n == 0)
      n = opts.num_listen_sockets == 0 ? pool->size() : opts.num_listen_sockets;
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
        st->sockets.clear();
        st->bind();
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

template <class T, class... Ts>
caf::expected<T> ask(caf::actor_system& sys, const std::string& id, Ts... xs) {
  auto ctl = whereis(sys, listener_name(id));
  if (!ctl)
    return make_error(sup_errc::noproc, "no listener " + id);
  caf::scoped_actor self{sys};
  caf::expected<T> result{caf::error{}};
  self->request(ctl, caf::infinite, xs...)
      .receive([&](T& x) { result = std::move(x); }, [&](caf::error& err) { result = std::move(err); });
  return result;
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
  return ask<uint64_t>(sys, id, drain_atom::value, deadline);
}

} // namespace listener
} // namespace warren::net
