// The producer: an actor that takes batches from sessions and a thread that owns the
// AMQP connection, publishes (persistent, confirm mode, pipelined) and reports
// confirms back. The actor turns confirms into cumulative accepted_atom per session.
#include "actors.hpp"
#include "connection.hpp"

#include <warren/backend/control.hpp>

#include <warren/exit.hpp>
#include <warren/log.hpp>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <poll.h>
#include <thread>
#include <unordered_map>

namespace warren::amqp::detail {

namespace {

using clock = std::chrono::steady_clock;

/// One message to publish: message `index` of `batch` (a shared copy of the batch the
/// session published: no payload copy).
struct outgoing {
  uint64_t id = 0; // the producer's sequence: publish order
  backend::device_batch batch;
  std::size_t index = 0;
};

std::string routing_key_for(const std::string& pattern, const backend::device_batch& b) {
  auto device_id = b.device_id();
  std::string out;
  out.reserve(pattern.size() + device_id.size());
  for (size_t i = 0; i < pattern.size();) {
    if (pattern.compare(i, 11, "{device_id}") == 0) {
      out += device_id.empty() ? std::string_view{"-"} : device_id;
      i += 11;
    } else if (pattern.compare(i, 15, "{connection_id}") == 0) {
      out += b.connection_id();
      i += 15;
    } else {
      out += pattern[i++];
    }
  }
  return out;
}

/// The AMQP message_id property: the same for every copy of one device message, so a
/// consumer can drop duplicates (docs/gateway.md, "Duplicates"). An identified device's
/// codec frame message is its device id and DATA id, which the device keeps when it
/// resends after a reconnect; anything else is its connection and from_device_seq,
/// which a republish (broker reconnect, nack, restarted producer) keeps.
std::string message_id_property(std::string_view device_id, std::string_view conn_id,
                                const backend::device_message_view& m) {
  if (!device_id.empty() && m.message_id)
    return "d/" + std::string{device_id} + "/" + std::to_string(*m.message_id);
  return "c/" + std::string{conn_id} + "/" + std::to_string(m.from_device_seq);
}

amqp_field_value_t longstr(std::string_view s) {
  amqp_field_value_t v;
  v.kind = AMQP_FIELD_KIND_UTF8;
  v.value.bytes = bytes(s);
  return v;
}

amqp_field_value_t long_long(uint64_t x) {
  amqp_field_value_t v;
  v.kind = AMQP_FIELD_KIND_I64;
  v.value.i64 = static_cast<int64_t>(x);
  return v;
}

// -- the connection thread -------------------------------------------------------

class producer_io {
public:
  producer_io(options opts, caf::weak_actor_ptr owner)
    : opts_(std::move(opts)), stats_(opts_.stats), owner_(std::move(owner)),
      backoff_(opts_.reconnect_initial, opts_.reconnect_max) {}

  ~producer_io() { stop_now(); }

  void start() {
    thread_ = std::thread([this] { run(); });
  }

  /// From the actor: messages to publish, in order.
  void push(std::vector<outgoing>&& batch) {
    {
      std::lock_guard guard{mtx_};
      if (inbox_.empty())
        inbox_ = std::move(batch);
      else
        std::move(batch.begin(), batch.end(), std::back_inserter(inbox_));
    }
    wake();
  }

  /// From the actor: finish what is pending (up to `within`), close, report flushed_atom.
  void flush(caf::timespan within) {
    {
      std::lock_guard guard{mtx_};
      flushing_ = true;
      flush_deadline_ = clock::now() + within;
    }
    wake();
  }

  /// Stops at once (no flush) and joins.
  void stop_now() {
    stop_.store(true);
    waker_.wake();
    if (thread_.joinable())
      thread_.join();
  }

private:
  void wake() {
    if (!signalled_.exchange(true))
      waker_.wake();
  }

  std::string where() const { return opts_.host + ":" + std::to_string(opts_.port); }

  void post(caf::message msg) {
    if (auto strong = owner_.lock())
      caf::anon_send(caf::actor_cast<caf::actor>(strong), std::move(msg));
  }

  // -- the loop ------------------------------------------------------------------

  void run() {
    bool flushing = false;
    auto deadline = clock::time_point::max();
    while (!stop_.load()) {
      signalled_.store(false);
      {
        std::lock_guard guard{mtx_};
        for (auto& x : inbox_)
          to_send_.push_back(std::move(x));
        inbox_.clear();
        flushing = flushing_;
        deadline = flush_deadline_;
      }
      auto now = clock::now();
      if (flushing && ((to_send_.empty() && in_flight_.empty()) || now >= deadline))
        break;
      if (!conn_.is_open()) {
        if (now < next_attempt_) {
          wait_wake(std::min(next_attempt_, deadline) - now);
          continue;
        }
        connect();
        continue;
      }
      publish_pending();
      if (!conn_.is_open())
        continue;
      wait_io();
      if (conn_.is_open())
        read_frames();
      if (conn_.is_open())
        amqp_maybe_release_buffers(conn_.get());
      report();
    }
    auto left = to_send_.size() + in_flight_.size();
    if (stop_.load()) {
      conn_.destroy();
    } else {
      conn_.close();
    }
    set_connected(false);
    if (left > 0)
      log().warn("amqp producer: stopping with {} unconfirmed messages (not acknowledged to devices; they "
                 "will resend them)",
                 left);
    if (flushing && !stop_.load())
      post(caf::make_message(flushed_atom::value, static_cast<uint64_t>(left)));
  }

  void wait_wake(clock::duration d) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    pollfd p{waker_.fd(), POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(std::clamp<int64_t>(ms, 0, 1000)));
    if (p.revents & POLLIN)
      waker_.drain();
  }

  void wait_io() {
    pollfd ps[2] = {{conn_.fd(), POLLIN, 0}, {waker_.fd(), POLLIN, 0}};
    bool more_to_send = !to_send_.empty() && in_flight_.size() < opts_.max_in_flight;
    int timeout = (conn_.has_buffered() || more_to_send) ? 0 : 200;
    ::poll(ps, 2, timeout);
    if (ps[1].revents & POLLIN)
      waker_.drain();
  }

  void set_connected(bool up) {
    if (stats_)
      stats_->producer_connected.store(up ? 1 : 0, std::memory_order_relaxed);
  }

  void connect() {
    auto err = conn_.open(opts_);
    if (err.empty())
      err = conn_.declare_from_device(opts_);
    if (err.empty()) {
      amqp_confirm_select(conn_.get(), channel_no);
      auto r = amqp_get_rpc_reply(conn_.get());
      if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        err = describe_reply(r, "confirm.select");
        conn_.destroy();
      }
    }
    if (!err.empty()) {
      ++failures_;
      auto delay = backoff_.next();
      if (failures_ == 1 || err != last_error_)
        log().warn(
            "amqp producer: cannot connect to {}: {}; retrying with backoff (up to {} ms), {} messages "
            "waiting",
            where(), err, std::chrono::duration_cast<std::chrono::milliseconds>(opts_.reconnect_max).count(),
            to_send_.size());
      else
        log().debug("amqp producer: attempt {} to connect to {} failed: {}", failures_, where(), err);
      last_error_ = std::move(err);
      next_attempt_ = clock::now() + delay;
      return;
    }
    next_tag_ = 1;
    backoff_.reset();
    if (stats_)
      stats_->producer_connects.fetch_add(1, std::memory_order_relaxed);
    set_connected(true);
    if (failures_ > 0 || ever_connected_)
      log().info("amqp producer: connected to {} (after {} failed attempts); {} unconfirmed messages to "
                 "(re)publish",
                 where(), failures_, to_send_.size());
    else
      log().info("amqp producer: connected to {}, exchange {} ({})", where(), opts_.exchange,
                 opts_.exchange_type);
    ever_connected_ = true;
    failures_ = 0;
    last_error_.clear();
  }

  /// The connection failed: everything in flight goes back to the send queue, in
  /// order, to be published again on the next connection.
  void lost(const std::string& why) {
    conn_.destroy();
    set_connected(false);
    if (stats_)
      stats_->producer_disconnects.fetch_add(1, std::memory_order_relaxed);
    auto n = in_flight_.size();
    requeue_in_flight(in_flight_.begin(), in_flight_.end());
    if (stats_)
      stats_->republished.fetch_add(n, std::memory_order_relaxed);
    log().warn("amqp producer: lost the connection to {}: {}; {} unconfirmed messages kept for republishing, "
               "reconnecting",
               where(), why, to_send_.size());
    last_error_ = why;
    failures_ = 0;
    next_attempt_ = clock::now() + backoff_.next();
  }

  /// Moves in-flight entries [first, last) back into to_send_, keeping it sorted by id.
  void requeue_in_flight(std::map<uint64_t, outgoing>::iterator first,
                         std::map<uint64_t, outgoing>::iterator last) {
    std::vector<outgoing> back;
    for (auto i = first; i != last; ++i)
      back.push_back(std::move(i->second));
    in_flight_.erase(first, last);
    if (back.empty())
      return;
    std::sort(back.begin(), back.end(), [](const auto& x, const auto& y) { return x.id < y.id; });
    std::deque<outgoing> merged;
    std::merge(std::make_move_iterator(back.begin()), std::make_move_iterator(back.end()),
               std::make_move_iterator(to_send_.begin()), std::make_move_iterator(to_send_.end()),
               std::back_inserter(merged), [](const auto& x, const auto& y) { return x.id < y.id; });
    to_send_ = std::move(merged);
  }

  void publish_pending() {
    while (!to_send_.empty() && in_flight_.size() < opts_.max_in_flight) {
      auto& x = to_send_.front();
      if (int st = publish(x); st != AMQP_STATUS_OK) {
        lost("basic.publish: " + describe_status(st));
        return;
      }
      in_flight_.emplace(next_tag_++, std::move(x));
      to_send_.pop_front();
      if (stats_)
        stats_->published.fetch_add(1, std::memory_order_relaxed);
    }
  }

  int publish(const outgoing& x) {
    auto m = x.batch[x.index];
    auto conn_id = x.batch.connection_id();
    amqp_table_entry_t entries[4];
    int n = 0;
    entries[n].key = bytes("connection_id");
    entries[n++].value = longstr(conn_id);
    entries[n].key = bytes("device_id");
    entries[n++].value = longstr(x.batch.device_id());
    entries[n].key = bytes("from_device_seq");
    entries[n++].value = long_long(m.from_device_seq);
    if (m.message_id) {
      entries[n].key = bytes("message_id");
      entries[n++].value = long_long(*m.message_id);
    }
    auto msg_id = message_id_property(x.batch.device_id(), conn_id, m);
    amqp_basic_properties_t props;
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG |
                   AMQP_BASIC_MESSAGE_ID_FLAG;
    props.delivery_mode = 2; // persistent
    props.content_type = bytes("application/octet-stream");
    props.message_id = bytes(msg_id);
    props.headers.num_entries = n;
    props.headers.entries = entries;
    auto key = routing_key_for(opts_.routing_key, x.batch);
    return amqp_basic_publish(conn_.get(), channel_no, bytes(opts_.exchange), bytes(key), 0, 0, &props,
                              bytes(m.payload));
  }

  void read_frames() {
    for (;;) {
      amqp_frame_t frame;
      timeval zero{0, 0};
      int st = amqp_simple_wait_frame_noblock(conn_.get(), &frame, &zero);
      if (st == AMQP_STATUS_TIMEOUT)
        return;
      if (st != AMQP_STATUS_OK) {
        lost(describe_status(st));
        return;
      }
      if (frame.frame_type != AMQP_FRAME_METHOD)
        continue;
      switch (frame.payload.method.id) {
        case AMQP_BASIC_ACK_METHOD: {
          auto* m = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
          on_ack(m->delivery_tag, m->multiple != 0);
          break;
        }
        case AMQP_BASIC_NACK_METHOD: {
          auto* m = static_cast<amqp_basic_nack_t*>(frame.payload.method.decoded);
          on_nack(m->delivery_tag, m->multiple != 0);
          break;
        }
        default:
          if (auto err = conn_.handle_method(frame); !err.empty()) {
            lost(err);
            return;
          }
      }
    }
  }

  std::pair<std::map<uint64_t, outgoing>::iterator, std::map<uint64_t, outgoing>::iterator>
  range_of(uint64_t tag, bool multiple) {
    if (multiple)
      return {in_flight_.begin(), in_flight_.upper_bound(tag)};
    auto i = in_flight_.find(tag);
    return {i, i == in_flight_.end() ? i : std::next(i)};
  }

  void on_ack(uint64_t tag, bool multiple) {
    auto [first, last] = range_of(tag, multiple);
    size_t n = 0;
    for (auto i = first; i != last; ++i, ++n)
      confirmed_.push_back(i->second.id);
    in_flight_.erase(first, last);
    if (stats_)
      stats_->confirmed.fetch_add(n, std::memory_order_relaxed);
  }

  void on_nack(uint64_t tag, bool multiple) {
    auto [first, last] = range_of(tag, multiple);
    auto n = static_cast<size_t>(std::distance(first, last));
    requeue_in_flight(first, last);
    if (stats_)
      stats_->nacked.fetch_add(n, std::memory_order_relaxed);
    log().warn("amqp producer: the broker nacked {} messages; publishing them again", n);
  }

  void report() {
    if (confirmed_.empty())
      return;
    post(caf::make_message(confirmed_atom::value, std::move(confirmed_)));
    confirmed_ = {};
  }

  options opts_;
  std::shared_ptr<counters> stats_;
  caf::weak_actor_ptr owner_;

  // shared with the actor
  std::mutex mtx_;
  std::vector<outgoing> inbox_;
  bool flushing_ = false;
  clock::time_point flush_deadline_ = clock::time_point::max();
  std::atomic<bool> stop_{false};
  std::atomic<bool> signalled_{false};
  waker waker_;
  std::thread thread_;

  // the thread's own
  connection conn_;
  backoff backoff_;
  clock::time_point next_attempt_{};
  unsigned failures_ = 0;
  bool ever_connected_ = false;
  std::string last_error_;
  std::deque<outgoing> to_send_;           // by id
  std::map<uint64_t, outgoing> in_flight_; // by delivery tag (publish order)
  uint64_t next_tag_ = 1;
  std::vector<uint64_t> confirmed_;
};

// -- the actor -------------------------------------------------------------------

class producer_actor : public caf::event_based_actor {
public:
  producer_actor(caf::actor_config& cfg, options opts) : caf::event_based_actor(cfg), opts_(std::move(opts)) {
    stats_ = opts_.stats;
  }

  const char* name() const override { return "warren.amqp.producer"; }

  caf::behavior make_behavior() override {
    io_ = std::make_unique<producer_io>(opts_, caf::actor_cast<caf::weak_actor_ptr>(this));
    io_->start();
    set_exit_handler([this](caf::exit_msg& msg) { begin_shutdown(std::move(msg.reason)); });
    return {
        // const: the session keeps the message until accepted; the batch is shared.
        [this](backend::publish_atom, const backend::device_batch& batch) {
          on_publish(current_sender(), batch);
        },
        [this](confirmed_atom, std::vector<uint64_t>& ids) {
          on_confirmed(ids);
          admit_deferred();
          check_flushes();
        },
        [this](backend::flush_atom) -> caf::result<caf::unit_t> {
          // Answered once everything taken (or held back) so far is confirmed.
          auto watermark = next_id_ - 1 + deferred_count_;
          if (lowest_outstanding() > watermark)
            return caf::unit;
          auto rp = make_response_promise<caf::unit_t>();
          flushes_.push_back({watermark, rp});
          delayed_send(this, opts_.flush_timeout, flush_expire_atom::value, watermark);
          return rp;
        },
        [this](flush_expire_atom, uint64_t watermark) {
          for (auto i = flushes_.begin(); i != flushes_.end();) {
            if (i->watermark == watermark) {
              log().warn("amqp producer: flush timed out with {} messages unconfirmed", buffered_);
              i->rp.deliver(caf::make_error(caf::sec::request_timeout));
              i = flushes_.erase(i);
            } else {
              ++i;
            }
          }
        },
        [this](flushed_atom, uint64_t) { quit(exit_reason_); },
        [this](flush_timeout_atom) { quit(exit_reason_); },
    };
  }

  void on_exit() override {
    io_.reset(); // stops and joins the thread (no-op after a flush)
    if (stats_) {
      stats_->buffered.fetch_sub(buffered_, std::memory_order_relaxed);
      stats_->deferred.fetch_sub(deferred_count_, std::memory_order_relaxed);
    }
    entries_.clear();
    id_order_.clear();
    sessions_.clear();
    deferred_.clear();
    for (auto& f : flushes_)
      f.rp.deliver(caf::make_error(caf::sec::request_receiver_down));
    flushes_.clear();
  }

private:
  struct entry {
    caf::actor_id session = 0;
    uint64_t seq = 0;
    bool confirmed = false;
  };

  struct session_state {
    caf::strong_actor_ptr handle;
    std::deque<uint64_t> order; // ids in publish order
    uint64_t accepted = 0;      // highest seq reported
  };

  struct pending_flush {
    uint64_t watermark; // every id up to it must be confirmed
    caf::response_promise rp;
  };

  /// The lowest id not yet confirmed (next_id_ when none is).
  uint64_t lowest_outstanding() {
    while (!id_order_.empty() && entries_.count(id_order_.front()) == 0)
      id_order_.pop_front();
    return id_order_.empty() ? next_id_ : id_order_.front();
  }

  void check_flushes() {
    if (flushes_.empty())
      return;
    auto low = lowest_outstanding();
    for (auto i = flushes_.begin(); i != flushes_.end();) {
      if (i->watermark < low) {
        i->rp.deliver(caf::unit);
        i = flushes_.erase(i);
      } else {
        ++i;
      }
    }
  }

  void begin_shutdown(caf::error reason) {
    if (stopping_)
      return;
    stopping_ = true;
    exit_reason_ = std::move(reason);
    if (buffered_ > 0)
      log().info("amqp producer: stopping, waiting up to {} ms for {} confirms",
                 std::chrono::duration_cast<std::chrono::milliseconds>(opts_.flush_timeout).count(),
                 buffered_);
    io_->flush(opts_.flush_timeout);
    delayed_send(this, opts_.flush_timeout + std::chrono::seconds(1), flush_timeout_atom::value);
  }

  void on_publish(caf::strong_actor_ptr sender, const backend::device_batch& msgs) {
    if (msgs.empty())
      return;
    if (stopping_) {
      log().debug("amqp producer: stopping, {} messages not taken", msgs.size());
      return;
    }
    if (buffered_ >= opts_.max_buffered || !deferred_.empty()) {
      if (deferred_.empty())
        log().warn("amqp producer: {} messages wait for the broker (max_buffered {}); holding device ACKs",
                   buffered_, opts_.max_buffered);
      deferred_count_ += msgs.size();
      if (stats_)
        stats_->deferred.fetch_add(msgs.size(), std::memory_order_relaxed);
      deferred_.emplace_back(std::move(sender), msgs);
      return;
    }
    accept(std::move(sender), msgs);
  }

  void admit_deferred() {
    bool had = !deferred_.empty();
    while (!deferred_.empty() && buffered_ < opts_.max_buffered && !stopping_) {
      auto [sender, msgs] = std::move(deferred_.front());
      deferred_.pop_front();
      deferred_count_ -= msgs.size();
      if (stats_)
        stats_->deferred.fetch_sub(msgs.size(), std::memory_order_relaxed);
      accept(std::move(sender), msgs);
    }
    if (had && deferred_.empty())
      log().info("amqp producer: buffer below max_buffered again; taking new messages");
  }

  void accept(caf::strong_actor_ptr sender, const backend::device_batch& msgs) {
    caf::actor_id key = sender ? sender->id() : 0;
    auto& s = sessions_[key];
    if (!s.handle)
      s.handle = std::move(sender);
    std::vector<outgoing> batch;
    batch.reserve(msgs.size());
    for (std::size_t i = 0; i < msgs.size(); ++i) {
      auto id = next_id_++;
      entries_.emplace(id, entry{key, msgs[i].from_device_seq, false});
      id_order_.push_back(id);
      s.order.push_back(id);
      batch.push_back(outgoing{id, msgs, i});
    }
    buffered_ += batch.size();
    if (stats_)
      stats_->buffered.fetch_add(batch.size(), std::memory_order_relaxed);
    io_->push(std::move(batch));
  }

  void on_confirmed(const std::vector<uint64_t>& ids) {
    touched_.clear();
    for (auto id : ids) {
      auto i = entries_.find(id);
      if (i == entries_.end())
        continue;
      i->second.confirmed = true;
      if (touched_.empty() || touched_.back() != i->second.session)
        touched_.push_back(i->second.session);
    }
    std::sort(touched_.begin(), touched_.end());
    touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
    size_t done = 0;
    for (auto key : touched_) {
      auto si = sessions_.find(key);
      if (si == sessions_.end())
        continue;
      auto& s = si->second;
      bool any = false;
      while (!s.order.empty()) {
        auto e = entries_.find(s.order.front());
        if (e == entries_.end() || !e->second.confirmed)
          break;
        s.accepted = std::max(s.accepted, e->second.seq);
        any = true;
        entries_.erase(e);
        s.order.pop_front();
        ++done;
      }
      if (any && s.handle)
        send(caf::actor_cast<caf::actor>(s.handle), backend::accepted_atom::value, s.accepted);
      if (s.order.empty())
        sessions_.erase(si);
    }
    buffered_ -= done;
    if (stats_)
      stats_->buffered.fetch_sub(done, std::memory_order_relaxed);
    lowest_outstanding(); // trims id_order_
  }

  options opts_;
  std::shared_ptr<counters> stats_;
  std::unique_ptr<producer_io> io_;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, entry> entries_;
  std::deque<uint64_t> id_order_; // ids in order; confirmed ones are dropped lazily
  std::vector<pending_flush> flushes_;
  std::unordered_map<caf::actor_id, session_state> sessions_;
  std::vector<caf::actor_id> touched_;
  std::deque<std::pair<caf::strong_actor_ptr, backend::device_batch>> deferred_; // shared, not copied
  size_t deferred_count_ = 0;
  size_t buffered_ = 0;
  bool stopping_ = false;
  caf::error exit_reason_;
};

} // namespace

caf::actor spawn_producer(caf::actor_system& sys, const options& opts) {
  return sys.spawn<producer_actor>(opts);
}

} // namespace warren::amqp::detail
