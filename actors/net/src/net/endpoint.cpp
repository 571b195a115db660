#include <warren/net/endpoint.hpp>

#include "listener_state.hpp"

#include <warren/exit.hpp>
#include <warren/log.hpp>
#include <warren/net/codec/line.hpp>

#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/ssl/error.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <caf/all.hpp>

#include <list>
#include <optional>

namespace warren::net::detail {

namespace {

using hs_ok_atom = caf::atom_constant<caf::atom("nhsok")>;
using hs_fail_atom = caf::atom_constant<caf::atom("nhsfail")>;
using hs_timeout_atom = caf::atom_constant<caf::atom("nhstmo")>;
using data_atom = caf::atom_constant<caf::atom("ndata")>;
using eof_atom = caf::atom_constant<caf::atom("neof")>;
using sock_err_atom = caf::atom_constant<caf::atom("nsockerr")>;
using wrote_atom = caf::atom_constant<caf::atom("nwrote")>;
using idle_atom = caf::atom_constant<caf::atom("nidle")>;
using timer_atom = caf::atom_constant<caf::atom("ntimer")>;
using linger_atom = caf::atom_constant<caf::atom("nlinger")>;

enum hs_failure : int { hs_tls_error = 0, hs_peer_closed = 1 };

/// A reset or broken pipe is the peer going away (power loss, NAT timeout, a client
/// that closes with linger 0): routine for devices, so not a crash report each.
bool peer_gone(const asio::error_code& ec) {
  return ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::connection_aborted;
}

/// The socket side of a connection. Lives on the socket's loop: every member is
/// touched only by handlers posted there. The actor talks to it by posting, and it
/// answers with messages to the actor (a weak reference: no cycle, and nothing is
/// delivered once the actor is gone).
struct conn_io : std::enable_shared_from_this<conn_io> {
  asio::ip::tcp::socket sock;
  std::optional<asio::ssl::stream<asio::ip::tcp::socket>> tls;
  caf::weak_actor_ptr owner;
  std::string rbuf;
  std::string wbuf;

  conn_io(asio::ip::tcp::socket&& s, asio::ssl::context* ctx) : sock(std::move(s)) {
    if (ctx != nullptr)
      tls.emplace(std::move(sock), *ctx);
  }

  asio::ip::tcp::socket& lowest() { return tls ? tls->next_layer() : sock; }

  template <class... Ts>
  void tell(Ts&&... xs) {
    if (auto p = owner.lock())
      caf::anon_send(caf::actor_cast<caf::actor>(p), std::forward<Ts>(xs)...);
  }

  std::string peer() {
    asio::error_code ec;
    auto ep = lowest().remote_endpoint(ec);
    if (ec)
      return "?";
    return ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  void start() {
    if (!tls) {
      tell(hs_ok_atom::value, peer(), std::string{}, std::string{});
      return;
    }
    auto self = shared_from_this();
    tls->async_handshake(asio::ssl::stream_base::server, [self](const asio::error_code& ec) {
      if (ec == asio::error::operation_aborted)
        return;
      if (ec) {
        bool closed = ec == asio::error::eof || ec == asio::ssl::error::stream_truncated ||
                      ec == asio::error::connection_reset;
        self->tell(hs_fail_atom::value, closed ? int{hs_peer_closed} : int{hs_tls_error}, ec.message());
        return;
      }
      SSL* ssl = self->tls->native_handle();
      self->tell(hs_ok_atom::value, self->peer(), std::string{SSL_get_version(ssl)}, verified_subject(ssl));
    });
  }

  template <class F>
  void with_stream(F&& f) {
    if (tls)
      f(*tls);
    else
      f(sock);
  }

  void read(std::string buf, std::size_t size) {
    rbuf = std::move(buf);
    rbuf.resize(size);
    auto self = shared_from_this();
    with_stream([&](auto& s) {
      s.async_read_some(asio::buffer(rbuf), [self](const asio::error_code& ec, std::size_t n) {
        if (!ec) {
          self->rbuf.resize(n);
          self->tell(data_atom::value, std::move(self->rbuf));
        } else if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
          self->tell(eof_atom::value);
        } else if (ec != asio::error::operation_aborted) {
          self->tell(sock_err_atom::value, peer_gone(ec), ec.message());
        }
      });
    });
  }

  void write(std::string data) {
    wbuf = std::move(data);
    auto self = shared_from_this();
    with_stream([&](auto& s) {
      asio::async_write(s, asio::buffer(wbuf), [self](const asio::error_code& ec, std::size_t n) {
        if (!ec) {
          self->wbuf.clear(); // handed back for reuse
          self->tell(wrote_atom::value, n, std::move(self->wbuf));
        } else if (ec != asio::error::operation_aborted) {
          self->tell(sock_err_atom::value, peer_gone(ec), ec.message());
        }
      });
    });
  }

  /// Runs a timer on the loop and tells the actor when it fires. Timers live here,
  /// not in CAF's clock, because CAF's delayed messages hold a strong reference to
  /// the receiver: a closed connection would stay in memory until its idle timer
  /// fired. close() cancels them all, which releases everything at once.
  template <class... Ts>
  void after(caf::timespan delay, Ts... xs) {
    if (closed)
      return;
    auto it = timers.emplace(timers.end(), lowest().get_executor());
    it->expires_after(delay);
    auto self = shared_from_this();
    it->async_wait([self, it, xs...](const asio::error_code& ec) {
      self->timers.erase(it);
      if (!ec)
        self->tell(xs...);
    });
  }

  void close() {
    // No TLS close_notify: it needs a round trip a dead peer never completes, and
    // devices treat a closed TCP connection as the end anyway.
    closed = true;
    for (auto& t : timers)
      t.cancel();
    asio::error_code ec;
    lowest().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    lowest().close(ec);
  }

  std::list<asio::steady_timer> timers;
  bool closed = false;
};

class endpoint_actor : public caf::event_based_actor, public connection_context {
public:
  endpoint_actor(caf::actor_config& cfg, state_ptr st, socket_ptr sock)
    : caf::event_based_actor(cfg), st_(std::move(st)), decoder_(st_->opts.max_frame) {
    info_.id = st_->next_conn_id.fetch_add(1, std::memory_order_relaxed);
    info_.tls = st_->tls != nullptr;
    io_ = std::make_shared<conn_io>(std::move(*sock), st_->tls.get());
    io_->owner = caf::actor_cast<caf::weak_actor_ptr>(this);
  }

  caf::behavior make_behavior() override {
    set_exit_handler([this](caf::exit_msg& msg) {
      // Our supervisor (or a drain) asks us to stop: no flush, the peer may be gone.
      finish(msg.reason);
    });
    set_exception_handler([this](caf::scheduled_actor*, std::exception_ptr& e) -> caf::error {
      auto reason = exception_to_exit(e);
      log().warn("listener {}: connection {} ({}): protocol threw: {}", st_->id, info_.id, info_.peer,
                 describe_exit(reason));
      release(reason);
      return reason;
    });
    set_default_handler([this](caf::scheduled_actor*, caf::message_view& x) -> caf::result<caf::message> {
      // Messages from other actors go to the protocol once it is connected.
      if (!proto_ || done_)
        return caf::make_error(caf::sec::unexpected_message);
      auto msg = x.move_content_to_message();
      bool handled = proto_->on_message(*this, msg);
      after_callback();
      if (!handled)
        return caf::make_error(caf::sec::unexpected_message);
      return caf::message{};
    });
    post([](conn_io& io) { io.start(); });
    if (info_.tls)
      timer(st_->opts.handshake_timeout, hs_timeout_atom::value);
    return {
        [this](hs_ok_atom, std::string& peer, std::string& version, std::string& subject) {
          info_.peer = std::move(peer);
          info_.tls_version = std::move(version);
          info_.verified_subject = std::move(subject);
          connected();
        },
        [this](hs_fail_atom, int kind, const std::string& what) {
          bump(kind == hs_peer_closed ? st_->c.hs_peer_closed : st_->c.hs_tls_error);
          finish(shutdown_with("handshake_failed: " + what));
        },
        [this](hs_timeout_atom) {
          if (proto_)
            return;
          bump(st_->c.hs_timeout);
          finish(shutdown_with("handshake_timeout"));
        },
        [this](data_atom, std::string& chunk) { on_data(chunk); },
        [this](eof_atom) { finish(caf::error{}); },
        [this](sock_err_atom, bool gone, const std::string& what) {
          if (gone)
            finish(shutdown_with("connection_reset"));
          else
            finish(make_error(net_errc::socket_error, what));
        },
        [this](wrote_atom, std::size_t n, std::string& buf) { on_wrote(n, buf); },
        [this](idle_atom, uint64_t seen) { on_idle(seen); },
        [this](timer_atom, uint64_t id) {
          if (done_ || closing_)
            return;
          proto_->on_timer(*this, id);
          after_callback();
        },
        [this](linger_atom) { finish(close_reason_); },
    };
  }

  void on_exit() override {
    // Whatever ended us (kill included): the socket goes, the protocol hears of it.
    release(fail_state());
    // Drop the heavy parts now: the actor object itself may outlive this a little
    // (CAF keeps it while messages or handles refer to it).
    io_.reset();
    proto_.reset();
    decoder_.shrink();
    std::string{}.swap(out_);
    std::string{}.swap(spare_in_);
    std::string{}.swap(spare_out_);
    std::vector<std::string_view>{}.swap(batch_);
    st_.reset();
  }

  // -- connection_context -------------------------------------------------------

  bool send(std::string_view frame) override {
    if (done_ || closing_)
      return false;
    if (!codec::encode_line(out_, frame))
      return false;
    ++frames_out_;
    bump(st_->c.frames_out);
    std::size_t queued = out_.size() + in_flight_;
    if (queued > st_->opts.high_watermark) {
      if (st_->opts.on_overflow == overflow_policy::close) {
        bump(st_->c.overflow_closes);
        finish(shutdown_with("overflow"));
        return false;
      }
      paused_ = true;
    }
    return true;
  }

  void close(caf::error reason) override {
    if (done_ || closing_)
      return;
    closing_ = true;
    close_reason_ = std::move(reason);
    flush();
    if (!writing_) {
      finish(close_reason_);
      return;
    }
    // Bounded flush: a peer that does not read cannot keep us around.
    timer(st_->opts.handshake_timeout, linger_atom::value);
  }

  const connection_info& info() const override { return info_; }

  void start_timer(uint64_t id, caf::timespan delay) override {
    if (!done_)
      timer(delay, timer_atom::value, id);
  }

  uint64_t frames_in() const override { return frames_in_; }
  uint64_t frames_out() const override { return frames_out_; }
  caf::actor self() const override { return caf::actor_cast<caf::actor>(const_cast<endpoint_actor*>(this)); }

private:
  template <class F>
  void post(F f) {
    auto io = io_;
    asio::post(io->lowest().get_executor(), [io, f = std::move(f)]() mutable { f(*io); });
  }

  template <class... Ts>
  void timer(caf::timespan delay, Ts... xs) {
    post([delay, xs...](conn_io& io) { io.after(delay, xs...); });
  }

  void connected() {
    proto_ = st_->factory();
    proto_->on_connect(*this);
    if (st_->opts.idle_timeout.count() > 0)
      timer(st_->opts.idle_timeout, idle_atom::value, activity_);
    after_callback();
  }

  void on_data(std::string& chunk) {
    reading_ = false;
    ++activity_;
    bump(st_->c.bytes_in, chunk.size());
    batch_.clear();
    auto r = decoder_.feed(std::string_view{chunk}, batch_);
    if (!batch_.empty()) {
      frames_in_ += batch_.size();
      bump(st_->c.frames_in, batch_.size());
      proto_->on_frames(*this, batch_);
    }
    spare_in_ = std::move(chunk); // the decoder copied any partial line
    if (!r.ok() && !done_) {
      // The frames before the bad one were handled; their replies are flushed first.
      bump(st_->c.frame_errors);
      close(shutdown_with(std::string{codec::to_string(r.error)}));
      return;
    }
    after_callback();
  }

  void on_wrote(std::size_t n, std::string& buf) {
    writing_ = false;
    in_flight_ = 0;
    ++activity_;
    bump(st_->c.bytes_out, n);
    spare_out_ = std::move(buf);
    if (paused_ && out_.size() <= st_->opts.low_watermark)
      paused_ = false;
    flush();
    if (closing_ && !writing_) {
      finish(close_reason_);
      return;
    }
    read_more();
  }

  void on_idle(uint64_t seen) {
    if (done_)
      return;
    if (seen == activity_ && !writing_) {
      bump(st_->c.idle_closes);
      finish(shutdown_with("idle_timeout"));
      return;
    }
    timer(st_->opts.idle_timeout, idle_atom::value, activity_);
  }

  /// After every call into the protocol: write what it queued, then read on.
  void after_callback() {
    if (done_)
      return;
    flush();
    if (closing_ && !writing_) {
      finish(close_reason_);
      return;
    }
    read_more();
  }

  void flush() {
    if (writing_ || out_.empty() || done_)
      return;
    writing_ = true;
    in_flight_ = out_.size();
    std::string data = std::move(out_);
    out_ = std::move(spare_out_);
    out_.clear();
    post([data = std::move(data)](conn_io& io) mutable { io.write(std::move(data)); });
  }

  /// Active-once: at most one read in flight, started only after the previous batch
  /// was handled, so a flooding peer fills its TCP window, not our mailbox.
  void read_more() {
    if (reading_ || closing_ || done_ || paused_ || !proto_)
      return;
    reading_ = true;
    auto size = st_->opts.read_buffer;
    post([buf = std::move(spare_in_), size](conn_io& io) mutable { io.read(std::move(buf), size); });
  }

  /// Ends the connection now with `reason`.
  void finish(caf::error reason) {
    if (done_)
      return;
    release(reason);
    quit(std::move(reason));
  }

  /// Closes the socket and tells the protocol, once.
  void release(const caf::error& reason) {
    if (done_)
      return;
    done_ = true;
    if (io_)
      post([](conn_io& io) { io.close(); });
    if (proto_) {
      try {
        proto_->on_close(reason);
      } catch (...) {
        log().warn("listener {}: connection {}: on_close threw", st_->id, info_.id);
      }
    }
  }

  state_ptr st_;
  std::shared_ptr<conn_io> io_;
  codec::line_decoder decoder_;
  std::unique_ptr<protocol> proto_;
  connection_info info_;
  std::vector<std::string_view> batch_;
  std::string out_;       // queued output, not yet handed to the loop
  std::string spare_in_;  // read buffer handed back and forth (no allocation per read)
  std::string spare_out_; // write buffer handed back
  std::size_t in_flight_ = 0;
  uint64_t frames_in_ = 0;
  uint64_t frames_out_ = 0;
  uint64_t activity_ = 0;
  caf::error close_reason_;
  bool reading_ = false;
  bool writing_ = false;
  bool paused_ = false;
  bool closing_ = false;
  bool done_ = false;
};

} // namespace

start_fn endpoint_template(std::shared_ptr<listener_state> st, std::size_t idx) {
  return [st, idx](const start_context& ctx) -> start_result {
    const auto& args = ctx.args();
    if (!args.match_elements<socket_ptr>())
      return make_error(exit_code::bad_start, "endpoint expects a socket");
    auto sock = args.get_as<socket_ptr>(0);
    if (!sock || !sock->is_open())
      return make_error(exit_code::bad_start, "endpoint got no open socket");
    auto h = ctx.system().spawn<endpoint_actor>(st, sock);
    bump(st->c.active);
    // Runs however the endpoint ends (kill included): counters, and a wake-up for the
    // acceptor that may be waiting below max_connections. O(1) per connection.
    h->attach_functor([st, idx] {
      st->c.active.fetch_sub(1, std::memory_order_relaxed);
      bump(st->c.closed);
      st->slots[idx]->active.fetch_sub(1, std::memory_order_relaxed);
      if (auto a = st->acceptor(idx))
        caf::anon_send(a, conn_closed_atom::value);
      st->on_conn_closed(); // wakes a pending drain when this was the last connection
    });
    return caf::actor{h};
  };
}

} // namespace warren::net::detail
