#include <warren/net/acceptor.hpp>

#include "client_hello.hpp"
#include "listener_state.hpp"

#include <warren/log.hpp>
#include <warren/supervisor.hpp>

#include <asio/post.hpp>
#include <caf/all.hpp>

#include <atomic>

namespace warren::net::detail {

namespace {

class acceptor_actor : public caf::event_based_actor {
public:
  acceptor_actor(caf::actor_config& cfg, state_ptr st, std::size_t idx)
    : caf::event_based_actor(cfg), st_(std::move(st)), idx_(idx),
      ls_(st_->sockets[idx % st_->sockets.size()]) {}

  caf::behavior make_behavior() override {
    arm();
    return {
        [this](accepted_atom, socket_ptr& sock, bool slot) {
          // Counted in st_->open by the accept loop already.
          bump(st_->c.accepted);
          auto conns = st_->conns(idx_);
          request(conns, caf::infinite, start_child_atom::value, caf::make_message(std::move(sock), slot))
              .then([](const caf::actor&) {},
                    [this](const caf::error& err) {
                      // The socket's count goes with the socket (accepted_socket()).
                      log().warn("listener {}: acceptor {}: start of endpoint failed: {}", st_->id, idx_,
                                 describe_exit(err));
                      arm();
                    });
          arm();
        },
        [this](accept_err_atom, bool aborted, const std::string& what) {
          if (aborted) { // suspend, or another acceptor on our socket went away
            arm();
            return;
          }
          // EMFILE and friends: back off instead of spinning on a failing accept, and
          // warn at most once per log_interval (an fd shortage fails every retry).
          bump(st_->c.accept_errors);
          uint64_t skipped = 0;
          if (st_->accept_error_log.allow(st_->opts.log_interval, skipped))
            log().warn("listener {}: accept failed: {}; retrying every 100 ms ({} more failures since the "
                       "last warning; at most one warning per {} ms)",
                       st_->id, what, skipped,
                       std::chrono::duration_cast<std::chrono::milliseconds>(st_->opts.log_interval).count());
          backoff_ = true;
          delayed_send(this, std::chrono::milliseconds(100), retry_atom::value);
        },
        [this](retry_atom) {
          backoff_ = false;
          arm();
        },
        [this](slot_free_atom) { arm(); }, // a handshake slot is free again
        [this](resume_atom) { arm(); },    // resume, or max_connections raised
    };
  }

  void on_exit() override {
    // A pending accept of ours would take the next connection and drop it: cancel the
    // socket's pending accepts (the other acceptors on it just arm again).
    if (accepting_->load()) {
      auto ls = ls_;
      asio::post(ls->get_executor(), [ls] {
        asio::error_code ec;
        ls->cancel(ec);
      });
    }
    ls_.reset();
    st_.reset();
  }

private:
  /// Starts the accept loop unless it runs, we back off or are suspended. O(1).
  void arm() {
    if (backoff_ || !may_accept(*st_) || accepting_->exchange(true))
      return;
    loop_ctx lc{st_, ls_, caf::actor_cast<caf::weak_actor_ptr>(this), idx_, accepting_};
    asio::post(ls_->get_executor(), [lc = std::move(lc)] { accept_loop(lc); });
  }

  static bool may_accept(const listener_state& st) { return !st.suspended.load(); }

  /// What the accept loop needs; it outlives the actor (the slot lives in `st`).
  struct loop_ctx {
    state_ptr st;
    std::shared_ptr<asio::ip::tcp::acceptor> ls;
    caf::weak_actor_ptr self;
    std::size_t idx;
    std::shared_ptr<std::atomic<bool>> accepting; // this acceptor instance's loop runs
  };

  /// A new connection's socket, counted in the listener's `open` (by admit()) until
  /// an endpoint takes it (moves it out; the endpoint's exit uncounts it then). A
  /// socket that never reaches one (the acceptor died with it in its mailbox, the
  /// start failed) is uncounted when the last reference goes, so max_connections
  /// never leaks.
  /// Over TLS it carries a handshake slot the same way (the endpoint's conn_io takes it).
  static socket_ptr accepted_socket(const loop_ctx& lc, asio::ip::tcp::socket sock, bool slot) {
    return socket_ptr{new asio::ip::tcp::socket(std::move(sock)),
                      [st = lc.st, slot](asio::ip::tcp::socket* s) {
                        bool untaken = s->is_open();
                        delete s;
                        if (!untaken)
                          return;
                        if (slot)
                          st->end_handshake();
                        st->open.fetch_sub(1); // seq_cst: see on_conn_closed
                        st->on_conn_closed();  // a drain may wait for this socket
                      }};
  }

  /// TLS: takes a handshake slot for the next accept. At the bound the loop stops until
  /// a slot is given back (end_handshake() wakes the acceptors): the connections wait in
  /// the kernel's accept queue meanwhile. False: parked.
  static bool take_slot(const loop_ctx& lc) {
    auto& st = *lc.st;
    if (st.max_handshakes == 0 || st.take_handshake())
      return true;
    lc.accepting->store(false);
    st.parked.store(true);
    // seq_cst: a slot given back before the flag was set is seen here (end_handshake).
    if (st.handshakes.load() < st.max_handshakes && !lc.accepting->exchange(true))
      return take_slot(lc);
    return false;
  }

  /// At max_connections: closes the new connection at once with an RST (linger 0: no
  /// TIME_WAIT left here by a refusal storm), counts and logs it (rate-limited).
  static void refuse(const loop_ctx& lc, asio::ip::tcp::socket& sock) {
    auto& st = *lc.st;
    bump(st.c.refused);
    uint64_t skipped = 0;
    if (st.refused_log.allow(st.opts.log_interval, skipped)) {
      asio::error_code ec;
      auto ep = sock.remote_endpoint(ec);
      log().warn(
          "listener {}: max_connections {} reached: refused {} ({} more refused since the last warning; "
          "at most one warning per {} ms)",
          st.id, st.max_connections.load(), ec ? std::string{"?"} : ep.address().to_string(), skipped,
          std::chrono::duration_cast<std::chrono::milliseconds>(st.opts.log_interval).count());
    }
    asio::error_code ec;
    sock.set_option(asio::socket_base::linger(true, 0), ec);
    sock.close(ec);
  }

  /// Runs on the listen socket's loop: accepts, hands each socket to the acceptor
  /// actor and accepts again at once, as Ranch's acceptor loops, with no round trip
  /// through the actor per connection (past max_connections it closes them: refuse()).
  /// Stops (clearing `accepting`) when suspended, on an error (the actor backs off) or
  /// when the actor is gone.
  static void accept_loop(const loop_ctx& lc) {
    // Checked on the socket's loop, where suspend() cancels: no accept slips by.
    if (!may_accept(*lc.st)) {
      lc.accepting->store(false);
      // A resume between the check and the store found the loop running and left it
      // to us: look again.
      if (may_accept(*lc.st) && !lc.accepting->exchange(true))
        accept_loop(lc);
      return;
    }
    if (!take_slot(lc))
      return;
    asio::io_context& target = lc.st->pool->next(); // connections spread over the loops
    lc.ls->async_accept(target, [lc](const asio::error_code& ec, asio::ip::tcp::socket sock) {
      auto p = lc.self.lock();
      bool tls = lc.st->max_handshakes != 0;
      // An error, or the acceptor is gone (its on_exit cancels us; the socket goes too).
      if (ec || !p) {
        if (tls)
          lc.st->end_handshake(); // the slot taken for this accept
        lc.accepting->store(false);
        if (p)
          caf::anon_send(caf::actor_cast<caf::actor>(p), accept_err_atom::value,
                         ec == asio::error::operation_aborted, ec.message());
        return;
      }
      if (lc.st->admit()) {
        // A ClientHello not whole yet (a slow client, or one accepted in the instant
        // between its connect and its first bytes) gives the slot back at once, not
        // only once its endpoint has started: slow clients never hold up accepting.
        bool slot = tls && peek_client_hello(static_cast<int>(sock.native_handle())) == hello_progress::ready;
        if (tls && !slot)
          lc.st->end_handshake();
        caf::anon_send(caf::actor_cast<caf::actor>(p), accepted_atom::value,
                       accepted_socket(lc, std::move(sock), slot), slot);
      } else {
        refuse(lc, sock);
        if (tls)
          lc.st->end_handshake();
      }
      p.reset();
      accept_loop(lc);
    });
  }

  state_ptr st_;
  std::size_t idx_;
  std::shared_ptr<asio::ip::tcp::acceptor> ls_;
  bool backoff_ = false;
  std::shared_ptr<std::atomic<bool>> accepting_ = std::make_shared<std::atomic<bool>>(false);
};

} // namespace

start_fn acceptor_start(std::shared_ptr<listener_state> st, std::size_t idx) {
  return [st, idx](const start_context& ctx) -> start_result {
    auto h = caf::actor{ctx.system().spawn<acceptor_actor>(st, idx)};
    st->set_acceptor(idx, h);
    return h;
  };
}

} // namespace warren::net::detail
