#include <warren/net/acceptor.hpp>

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
      ls_(st_->sockets[idx % st_->sockets.size()]), slot_(*st_->slots[idx]) {}

  caf::behavior make_behavior() override {
    arm();
    return {
        [this](accepted_atom, socket_ptr& sock) {
          // Counted in slot_.active by the accept loop already.
          bump(st_->c.accepted);
          auto conns = st_->conns(idx_);
          request(conns, caf::infinite, start_child_atom::value, caf::make_message(std::move(sock)))
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
          // EMFILE and friends: back off instead of spinning on a failing accept.
          bump(st_->c.accept_errors);
          log().warn("listener {}: acceptor {}: accept failed: {}; retrying in 100 ms", st_->id, idx_, what);
          backoff_ = true;
          delayed_send(this, std::chrono::milliseconds(100), retry_atom::value);
        },
        [this](retry_atom) {
          backoff_ = false;
          arm();
        },
        [this](conn_closed_atom) { arm(); },
        [this](resume_atom) { arm(); }, // resume, or max_connections raised
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
  /// Starts the accept loop unless it runs, we back off, are suspended, or our
  /// connection supervisor is full (max_connections). O(1): called on every close.
  void arm() {
    if (backoff_ || !may_accept(*st_, slot_) || accepting_->exchange(true))
      return;
    loop_ctx lc{st_, ls_, caf::actor_cast<caf::weak_actor_ptr>(this), &slot_, idx_, accepting_};
    asio::post(ls_->get_executor(), [lc = std::move(lc)] { accept_loop(lc); });
  }

  static bool may_accept(const listener_state& st, const slot& sl) {
    return !st.suspended.load() &&
           sl.active.load(std::memory_order_relaxed) < st.max_connections.load(std::memory_order_relaxed);
  }

  /// What the accept loop needs; it outlives the actor (the slot lives in `st`).
  struct loop_ctx {
    state_ptr st;
    std::shared_ptr<asio::ip::tcp::acceptor> ls;
    caf::weak_actor_ptr self;
    slot* sl;
    std::size_t idx;
    std::shared_ptr<std::atomic<bool>> accepting; // this acceptor instance's loop runs
  };

  /// A new connection's socket, counted in the slot's `active` until an endpoint
  /// takes it (moves it out; the endpoint's exit uncounts it then). A socket that
  /// never reaches one (the acceptor died with it in its mailbox, the start failed)
  /// is uncounted when the last reference goes, so max_connections never leaks.
  static socket_ptr accepted_socket(const loop_ctx& lc, asio::ip::tcp::socket sock) {
    lc.sl->active.fetch_add(1, std::memory_order_relaxed);
    return socket_ptr{new asio::ip::tcp::socket(std::move(sock)),
                      [st = lc.st, sl = lc.sl, idx = lc.idx](asio::ip::tcp::socket* s) {
                        bool untaken = s->is_open();
                        delete s;
                        if (!untaken)
                          return;
                        sl->active.fetch_sub(1); // seq_cst: see on_conn_closed
                        st->on_conn_closed();    // a drain may wait for this socket
                        if (auto a = st->acceptor(idx))
                          caf::anon_send(a, conn_closed_atom::value);
                      }};
  }

  /// Runs on the listen socket's loop: accepts, hands each socket to the acceptor
  /// actor and accepts again at once, as Ranch's acceptor loops, with no round trip
  /// through the actor per connection. Stops (clearing `accepting`) when suspended,
  /// at max_connections, on an error (the actor backs off) or when the actor is gone.
  static void accept_loop(const loop_ctx& lc) {
    // Checked on the socket's loop, where suspend() cancels: no accept slips by.
    if (!may_accept(*lc.st, *lc.sl)) {
      lc.accepting->store(false);
      // A close or resume between the check and the store found the loop running and
      // left it to us: look again.
      if (may_accept(*lc.st, *lc.sl) && !lc.accepting->exchange(true))
        accept_loop(lc);
      return;
    }
    asio::io_context& target = lc.st->pool->next(); // connections spread over the loops
    lc.ls->async_accept(target, [lc](const asio::error_code& ec, asio::ip::tcp::socket sock) {
      auto p = lc.self.lock();
      if (ec) {
        lc.accepting->store(false);
        if (p)
          caf::anon_send(caf::actor_cast<caf::actor>(p), accept_err_atom::value,
                         ec == asio::error::operation_aborted, ec.message());
        return;
      }
      if (!p) { // the acceptor is gone (its on_exit cancels us): so is the socket
        lc.accepting->store(false);
        return;
      }
      caf::anon_send(caf::actor_cast<caf::actor>(p), accepted_atom::value,
                     accepted_socket(lc, std::move(sock)));
      p.reset();
      accept_loop(lc);
    });
  }

  state_ptr st_;
  std::size_t idx_;
  std::shared_ptr<asio::ip::tcp::acceptor> ls_;
  slot& slot_;
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
