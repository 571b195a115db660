// A consumer: an actor that routes deliveries to sessions and a thread that owns its
// AMQP connection (basic.qos + basic.consume on the to-device queue) and carries out
// the actor's ack / nack / reject decisions.
#include "actors.hpp"
#include "connection.hpp"

#include <warren/backend/control.hpp>
#include <warren/log.hpp>

#include <algorithm>
#include <charconv>
#include <mutex>
#include <poll.h>
#include <thread>

namespace warren::amqp::detail {

namespace {

using clock = std::chrono::steady_clock;

struct command {
  enum kind_t : uint8_t { ack, requeue, reject } kind;
  uint64_t generation;
  uint64_t tag;
};

std::optional<std::string> string_value(const amqp_field_value_t& v) {
  if (v.kind == AMQP_FIELD_KIND_UTF8 || v.kind == AMQP_FIELD_KIND_BYTES)
    return std::string{view(v.value.bytes)};
  return std::nullopt;
}

std::optional<uint64_t> integer_value(const amqp_field_value_t& v) {
  switch (v.kind) {
    case AMQP_FIELD_KIND_I8:
      return v.value.i8 < 0 ? std::nullopt : std::optional<uint64_t>(v.value.i8);
    case AMQP_FIELD_KIND_U8:
      return v.value.u8;
    case AMQP_FIELD_KIND_I16:
      return v.value.i16 < 0 ? std::nullopt : std::optional<uint64_t>(v.value.i16);
    case AMQP_FIELD_KIND_U16:
      return v.value.u16;
    case AMQP_FIELD_KIND_I32:
      return v.value.i32 < 0 ? std::nullopt : std::optional<uint64_t>(v.value.i32);
    case AMQP_FIELD_KIND_U32:
      return v.value.u32;
    case AMQP_FIELD_KIND_I64:
      return v.value.i64 < 0 ? std::nullopt : std::optional<uint64_t>(v.value.i64);
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP:
      return v.value.u64;
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES: {
      auto s = view(v.value.bytes);
      uint64_t x = 0;
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
      if (ec != std::errc{} || p != s.data() + s.size() || s.empty())
        return std::nullopt;
      return x;
    }
    default:
      return std::nullopt;
  }
}

/// Reads the target and order of a delivery from its headers.
delivery parse(const amqp_envelope_t& env, uint64_t generation) {
  delivery d;
  d.generation = generation;
  d.tag = env.delivery_tag;
  d.redelivered = env.redelivered != 0;
  d.msg.payload.assign(static_cast<const char*>(env.message.body.bytes), env.message.body.len);
  std::optional<std::string> device, conn;
  bool bad_seq = false;
  const auto& props = env.message.properties;
  if (props._flags & AMQP_BASIC_HEADERS_FLAG) {
    for (int i = 0; i < props.headers.num_entries; ++i) {
      const auto& e = props.headers.entries[i];
      auto key = view(e.key);
      if (key == "device_id") {
        device = string_value(e.value);
      } else if (key == "connection_id") {
        conn = string_value(e.value);
      } else if (key == "to_device_seq") {
        d.msg.to_device_seq = integer_value(e.value);
        bad_seq = !d.msg.to_device_seq;
      }
    }
  }
  if (conn && !conn->empty()) {
    d.msg.kind = backend::address_kind::connection;
    d.msg.target = std::move(*conn);
  } else if (device && !device->empty()) {
    d.msg.kind = backend::address_kind::device;
    d.msg.target = std::move(*device);
  } else {
    d.error = "no device_id or connection_id header (a string)";
  }
  if (bad_seq && d.error.empty())
    d.error = "to_device_seq is not a non-negative integer";
  return d;
}

// -- the connection thread -------------------------------------------------------

class consumer_io {
public:
  consumer_io(options opts, caf::weak_actor_ptr owner, unsigned index)
    : opts_(std::move(opts)), stats_(opts_.stats), owner_(std::move(owner)), index_(index),
      backoff_(opts_.reconnect_initial, opts_.reconnect_max) {}

  ~consumer_io() {
    stop_.store(true);
    waker_.wake();
    if (thread_.joinable())
      thread_.join();
  }

  void start() {
    thread_ = std::thread([this] { run(); });
  }

  void post(command cmd) {
    {
      std::lock_guard guard{mtx_};
      commands_.push_back(cmd);
    }
    if (!signalled_.exchange(true))
      waker_.wake();
  }

private:
  void run() {
    std::vector<command> cmds;
    while (!stop_.load()) {
      if (!conn_.is_open()) {
        auto now = clock::now();
        if (now < next_attempt_) {
          wait_wake(next_attempt_ - now);
          continue;
        }
        connect();
        continue;
      }
      signalled_.store(false);
      {
        std::lock_guard guard{mtx_};
        cmds.swap(commands_);
      }
      for (auto& c : cmds) {
        if (c.generation != generation_ || !conn_.is_open())
          continue; // from an older connection: the broker redelivers those
        int st = AMQP_STATUS_OK;
        switch (c.kind) {
          case command::ack:
            st = amqp_basic_ack(conn_.get(), channel_no, c.tag, 0);
            break;
          case command::requeue:
            st = amqp_basic_nack(conn_.get(), channel_no, c.tag, 0, 1);
            break;
          case command::reject:
            st = amqp_basic_reject(conn_.get(), channel_no, c.tag, 0);
            break;
        }
        if (st != AMQP_STATUS_OK)
          lost("ack/nack/reject: " + describe_status(st));
      }
      cmds.clear();
      if (!conn_.is_open())
        continue;
      pollfd ps[2] = {{conn_.fd(), POLLIN, 0}, {waker_.fd(), POLLIN, 0}};
      ::poll(ps, 2, conn_.has_buffered() ? 0 : 200);
      if (ps[1].revents & POLLIN)
        waker_.drain();
      read_deliveries();
    }
    conn_.close();
    set_connected(false);
  }

  void wait_wake(clock::duration d) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    pollfd p{waker_.fd(), POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(std::clamp<int64_t>(ms, 0, 1000)));
    if (p.revents & POLLIN)
      waker_.drain();
  }

  std::string who() const { return "amqp consumer-" + std::to_string(index_); }
  std::string where() const { return opts_.host + ":" + std::to_string(opts_.port); }

  void set_connected(bool up) {
    if (up == connected_)
      return;
    connected_ = up;
    if (stats_)
      stats_->consumers_connected.fetch_add(up ? 1 : -1, std::memory_order_relaxed);
  }

  void connect() {
    auto err = conn_.open(opts_);
    if (err.empty())
      err = conn_.declare_to_device(opts_);
    if (err.empty()) {
      amqp_basic_qos(conn_.get(), channel_no, 0, opts_.prefetch, 0);
      auto r = amqp_get_rpc_reply(conn_.get());
      if (r.reply_type != AMQP_RESPONSE_NORMAL)
        err = describe_reply(r, "basic.qos");
    }
    if (err.empty()) {
      amqp_basic_consume(conn_.get(), channel_no, bytes(opts_.to_device_queue), amqp_empty_bytes, 0, 0, 0,
                         amqp_empty_table);
      auto r = amqp_get_rpc_reply(conn_.get());
      if (r.reply_type != AMQP_RESPONSE_NORMAL)
        err = describe_reply(r, "basic.consume " + opts_.to_device_queue);
    }
    if (!err.empty()) {
      conn_.destroy();
      ++failures_;
      if (failures_ == 1 || err != last_error_)
        log().warn("{}: cannot connect to {}: {}; retrying with backoff", who(), where(), err);
      else
        log().debug("{}: attempt {} failed: {}", who(), failures_, err);
      last_error_ = std::move(err);
      next_attempt_ = clock::now() + backoff_.next();
      return;
    }
    ++generation_;
    backoff_.reset();
    set_connected(true);
    if (stats_)
      stats_->consumer_connects.fetch_add(1, std::memory_order_relaxed);
    if (failures_ > 0 || generation_ > 1)
      log().info("{}: connected to {} (after {} failed attempts), consuming {}", who(), where(), failures_,
                 opts_.to_device_queue);
    else
      log().debug("{}: connected to {}, consuming {}", who(), where(), opts_.to_device_queue);
    failures_ = 0;
    last_error_.clear();
  }

  void lost(const std::string& why) {
    conn_.destroy();
    set_connected(false);
    if (stats_)
      stats_->consumer_disconnects.fetch_add(1, std::memory_order_relaxed);
    log().warn("{}: lost the connection to {}: {}; unacked deliveries go back to the queue, reconnecting",
               who(), where(), why);
    last_error_ = why;
    failures_ = 0;
    next_attempt_ = clock::now() + backoff_.next();
  }

  void read_deliveries() {
    std::vector<delivery> batch;
    while (conn_.is_open()) {
      amqp_maybe_release_buffers(conn_.get());
      amqp_envelope_t env;
      timeval zero{0, 0};
      auto r = amqp_consume_message(conn_.get(), &env, &zero, 0);
      if (r.reply_type == AMQP_RESPONSE_NORMAL) {
        batch.push_back(parse(env, generation_));
        amqp_destroy_envelope(&env);
        continue;
      }
      if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
        break;
      if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
          r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
        // Not a delivery: a close, a cancel, or something to ignore.
        amqp_frame_t frame;
        timeval wait{1, 0};
        if (int st = amqp_simple_wait_frame_noblock(conn_.get(), &frame, &wait); st != AMQP_STATUS_OK) {
          lost(describe_status(st));
          break;
        }
        if (auto err = conn_.handle_method(frame); !err.empty()) {
          lost(err);
          break;
        }
        continue;
      }
      lost(describe_reply(r, "basic.deliver"));
      break;
    }
    if (batch.empty())
      return;
    if (stats_)
      stats_->deliveries.fetch_add(batch.size(), std::memory_order_relaxed);
    if (auto strong = owner_.lock())
      caf::anon_send(caf::actor_cast<caf::actor>(strong), deliveries_atom::value, std::move(batch));
  }

  options opts_;
  std::shared_ptr<counters> stats_;
  caf::weak_actor_ptr owner_;
  unsigned index_;

  std::mutex mtx_;
  std::vector<command> commands_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> signalled_{false};
  waker waker_;
  std::thread thread_;

  connection conn_;
  backoff backoff_;
  clock::time_point next_attempt_{};
  unsigned failures_ = 0;
  std::string last_error_;
  uint64_t generation_ = 0;
  bool connected_ = false;
};

// -- the actor -------------------------------------------------------------------

class consumer_actor : public caf::event_based_actor {
public:
  consumer_actor(caf::actor_config& cfg, options opts, std::shared_ptr<backend::router> router,
                 unsigned index)
    : caf::event_based_actor(cfg), opts_(std::move(opts)), stats_(opts_.stats), router_(std::move(router)),
      index_(index) {}

  const char* name() const override { return "warren.amqp.consumer"; }

  caf::behavior make_behavior() override {
    io_ = std::make_unique<consumer_io>(opts_, caf::actor_cast<caf::weak_actor_ptr>(this), index_);
    io_->start();
    return {
        [this](deliveries_atom, std::vector<delivery>& ds) {
          for (auto& d : ds)
            route(std::move(d));
        },
        [this](requeue_atom, uint64_t generation, uint64_t tag) {
          io_->post(command{command::requeue, generation, tag});
        },
    };
  }

  void on_exit() override {
    io_.reset(); // closes the channel: the broker requeues what we did not ack
  }

private:
  void dead_letter(const delivery& d, std::string_view why) {
    log().debug("amqp consumer-{}: dead-lettering a message for {} {}: {}", index_,
                backend::to_string(d.msg.kind), d.msg.target, why);
    if (stats_)
      stats_->dead_lettered.fetch_add(1, std::memory_order_relaxed);
    io_->post(command{command::reject, d.generation, d.tag});
  }

  void route(delivery d) {
    if (!d.error.empty()) {
      log().warn("amqp consumer-{}: dead-lettering a malformed message: {}", index_, d.error);
      dead_letter(d, d.error);
      return;
    }
    auto session = router_ ? router_->route(d.msg.kind, d.msg.target) : caf::actor{};
    if (!session) {
      dead_letter(d, "not connected");
      return;
    }
    auto generation = d.generation;
    auto tag = d.tag;
    auto kind = d.msg.kind;
    auto target = d.msg.target;
    request(session, opts_.deliver_timeout, backend::deliver_atom::value, std::move(d.msg))
        .then(
            [this, generation, tag](backend::delivered_atom) {
              if (stats_)
                stats_->acked.fetch_add(1, std::memory_order_relaxed);
              io_->post(command{command::ack, generation, tag});
            },
            [this, generation, tag, kind, target](caf::error& err) {
              // No session anywhere (no node of the cluster has it), or the local one
              // is gone and there is no cluster to look further, or the device's
              // connection cannot carry it (bad_message: over max_frame, LF in a
              // line; no retry changes that): dead-letter it. Any other failure
              // (closing, a cluster outage, no answer in time) requeues: it may not
              // have been delivered.
              auto code = backend::backend_error(err);
              if (code == backend::backend_errc::no_such_device ||
                  code == backend::backend_errc::bad_message || !router_ || !router_->route(kind, target)) {
                if (code == backend::backend_errc::bad_message) {
                  static warren::log_limit limit;
                  if (uint64_t held = 0; limit.allow(held))
                    log().warn(
                        "amqp consumer-{}: dead-lettering a message {} {}'s connection cannot carry: {} "
                        "({} more since the last report)",
                        index_, backend::to_string(kind), target, to_string(err), held);
                }
                if (stats_)
                  stats_->dead_lettered.fetch_add(1, std::memory_order_relaxed);
                io_->post(command{command::reject, generation, tag});
                return;
              }
              log().debug("amqp consumer-{}: {} {} did not take a message ({}); requeueing it", index_,
                          backend::to_string(kind), target, to_string(err));
              if (stats_)
                stats_->requeued.fetch_add(1, std::memory_order_relaxed);
              delayed_send(this, opts_.requeue_delay, requeue_atom::value, generation, tag);
            });
  }

  options opts_;
  std::shared_ptr<counters> stats_;
  std::shared_ptr<backend::router> router_;
  unsigned index_;
  std::unique_ptr<consumer_io> io_;
};

} // namespace

caf::actor spawn_consumer(caf::actor_system& sys, const options& opts,
                          std::shared_ptr<backend::router> router, unsigned index) {
  return sys.spawn<consumer_actor>(opts, std::move(router), index);
}

} // namespace warren::amqp::detail
