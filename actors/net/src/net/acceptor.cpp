#include <warren/net/acceptor.hpp>

#include "listener_state.hpp"

#include <warren/log.hpp>
#include <warren/supervisor.hpp>

#include <asio/post.hpp>
#include <caf/all.hpp>

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
          waiting_ = false;
          bump(st_->c.accepted);
          slot_.active.fetch_add(1, std::memory_order_relaxed);
          auto conns = st_->conns(idx_);
          request(conns, caf::infinite, start_child_atom::value, caf::make_message(std::move(sock)))
              .then([](const caf::actor&) {},
                    [this](const caf::error& err) {
                      slot_.active.fetch_sub(1, std::memory_order_relaxed);
                      st_->on_conn_closed(); // a drain may wait for this socket
                      log().warn("listener {}: acceptor {}: start of endpoint failed: {}", st_->id, idx_,
                                 describe_exit(err));
                      arm();
                    });
          arm();
        },
        [this](accept_err_atom, bool aborted, const std::string& what) {
          waiting_ = false;
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
    if (waiting_) {
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
  /// Starts one accept unless one is pending, we back off, are suspended, or our
  /// connection supervisor is full (max_connections). O(1): called on every close.
  void arm() {
    if (waiting_ || backoff_ || st_->suspended.load() ||
        slot_.active.load(std::memory_order_relaxed) >= st_->max_connections.load(std::memory_order_relaxed))
      return;
    waiting_ = true;
    caf::weak_actor_ptr self = caf::actor_cast<caf::weak_actor_ptr>(this);
    auto st = st_;
    auto ls = ls_;
    asio::io_context& target = st_->pool->next();
    asio::post(ls->get_executor(), [st, ls, self, &target] {
      auto reply = [self](auto&&... xs) {
        if (auto p = self.lock())
          caf::anon_send(caf::actor_cast<caf::actor>(p), std::forward<decltype(xs)>(xs)...);
      };
      // Checked on the socket's loop, where suspend() cancels: no accept slips by.
      if (st->suspended.load()) {
        reply(accept_err_atom::value, true, std::string{});
        return;
      }
      ls->async_accept(target, [reply](const asio::error_code& ec, asio::ip::tcp::socket sock) {
        if (!ec)
          reply(accepted_atom::value, std::make_shared<asio::ip::tcp::socket>(std::move(sock)));
        else
          reply(accept_err_atom::value, ec == asio::error::operation_aborted, ec.message());
      });
    });
  }

  state_ptr st_;
  std::size_t idx_;
  std::shared_ptr<asio::ip::tcp::acceptor> ls_;
  slot& slot_;
  bool waiting_ = false;
  bool backoff_ = false;
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
