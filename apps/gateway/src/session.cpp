#include "session.hpp"

#include "cluster_directory.hpp"
#include "producer_watch.hpp"

#include <warren/backend/control.hpp>
#include <warren/backend/messages.hpp>
#include <warren/exit.hpp>
#include <warren/log.hpp>
#include <warren/net/identity.hpp>
#include <warren/registry.hpp>

#include <caf/all.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <stdexcept>
#include <vector>

namespace warren::gateway {

std::string to_string(identify_mode x) {
  switch (x) {
    case identify_mode::none:
      return "none";
    case identify_mode::cert:
      return "cert";
    case identify_mode::first_message:
      return "first_message";
  }
  return "none";
}

bool from_string(std::string_view s, identify_mode& out) {
  if (s == "none")
    out = identify_mode::none;
  else if (s == "cert")
    out = identify_mode::cert;
  else if (s == "first_message")
    out = identify_mode::first_message;
  else
    return false;
  return true;
}

namespace {

using takeover_atom = caf::atom_constant<caf::atom("gwtakeover")>;

constexpr uint64_t gap_timer = 1;
constexpr uint64_t settle_timer = 2; ///< cluster: verify the claim once more

/// What every session of a listener reads and none changes.
struct shared_options {
  session_options opts;
  session_env env;
  /// The actor system's name service, set by the first session (a name service is
  /// installed before the gateway starts, never while it runs).
  mutable std::atomic<name_service*> names{nullptr};
};

/// The messages held behind a to_device_seq gap, by to_device_seq. Allocated only
/// while there are any: an empty std::map is 48 bytes, in every idle session.
class held_messages {
public:
  using map = std::map<uint64_t, std::string>;
  bool empty() const { return !m_ || m_->empty(); }
  std::size_t size() const { return m_ ? m_->size() : 0; }
  void insert_or_assign(uint64_t seq, std::string payload) {
    if (!m_)
      m_ = std::make_unique<map>();
    m_->insert_or_assign(seq, std::move(payload));
  }
  map::iterator begin() { return m_->begin(); } ///< only when !empty()
  void erase(map::iterator i) {
    m_->erase(i);
    if (m_->empty())
      m_.reset();
  }

private:
  std::unique_ptr<map> m_;
};

class device_session final : public net::protocol {
public:
  explicit device_session(std::shared_ptr<const shared_options> shared) : shared_(std::move(shared)) {}

  // The registry entry points into this object: gone before it is, on close or here
  // (whatever ended the endpoint, kill and a throwing callback included).
  ~device_session() override {
    if (registered_)
      env().registry->release(id());
  }

  void on_connect(net::connection_context& ctx) override {
    auto self = ctx.self();
    self_ = caf::actor_cast<caf::local_actor*>(self);
    if (shared_->names.load(std::memory_order_acquire) == nullptr) // the same for every session
      shared_->names.store(&warren::names(self->home_system()), std::memory_order_release);
    write_uuid_v4(conn_id_);
    auto& pool = opts().producer_names;
    producer_name_ = &pool[backend::producer_index(id(), pool.size())];
    session_registry::session_entry e;
    e.session = self;
    e.info = &ctx.info(); // valid as long as we are (protocol.hpp)
    e.listener = &opts().listener;
    e.connected_since_ms = unix_ms();
    e.stats = &stats_;
    env().registry->add_connection(id(), std::move(e));
    registered_ = true;
    env().metrics->sessions_opened.fetch_add(1, std::memory_order_relaxed);
    if (opts().identify == identify_mode::first_message)
      offset_ = 1;
    else if (opts().identify == identify_mode::cert && !ctx.info().verified_subject.empty() &&
             identity_accepted(ctx, ctx.info().verified_subject, "the certificate CN"))
      claim(ctx.info().verified_subject);
  }

  void on_frames(net::connection_context& ctx, std::span<const std::string_view> frames) override {
    if (frames.empty())
      return;
    uint64_t first_seq = ctx.frames_in() - frames.size() + 1; // endpoint numbering
    std::size_t i = 0;
    if (offset_ == 1 && !identified_) {
      // identify = first_message: the first line/frame is the device id, under the
      // rules a certificate CN follows (net/identity.hpp): it is logged and shown.
      if (!identity_accepted(ctx, frames[0], "the first message"))
        return;
      claim(std::string{frames[0]});
      ctx.ack(first_seq);
      i = 1;
      if (frames.size() == 1)
        return;
    }
    // One batch per read: the ids once, the payloads in one buffer (messages.hpp).
    std::size_t bytes = 0;
    for (std::size_t j = i; j < frames.size(); ++j)
      bytes += frames[j].size();
    backend::device_batch::builder b{id(), device_id_, frames.size() - i, bytes};
    bool framed = ctx.codec() == net::codec_kind::frame;
    for (; i < frames.size(); ++i) {
      auto seq = first_seq + i;
      std::optional<uint64_t> message_id;
      if (framed)
        message_id = ctx.message_id(seq);
      b.add(seq - offset_, message_id, frames[i]);
    }
    auto batch = std::move(b).done();
    auto n = batch.size();
    auto last = batch.last_seq();
    publish(last, caf::make_message(backend::publish_atom::value, std::move(batch)));
    stats_.seq_in.store(last, std::memory_order_relaxed);
    env().metrics->messages_in.fetch_add(n, std::memory_order_relaxed);
    env().metrics->batches_in.fetch_add(1, std::memory_order_relaxed);
    if (last - accepted_ > opts().max_unaccepted && !holding_) {
      // Backpressure: no more reads until the backend accepted down to half the bound
      // (on_accepted); the device fills its TCP window meanwhile.
      holding_ = true;
      ctx.pause_reading();
      env().metrics->reads_held.fetch_add(1, std::memory_order_relaxed);
      log().debug("session {}: {} device messages wait for the backend; reading held", id(),
                  last - accepted_);
    }
  }

  bool on_message(net::connection_context& ctx, caf::message& msg) override {
    using batch_t = std::vector<backend::to_device_message>;
    if (msg.match_elements<backend::accepted_atom, uint64_t>()) {
      on_accepted(ctx, msg.get_as<uint64_t>(1));
      return true;
    }
    if (msg.match_elements<backend::deliver_atom, backend::device_batch, backend::accepted_atom,
                           uint64_t>()) {
      // Our own published batch back (the echo), then its acceptance.
      on_echo(ctx, msg.get_as<backend::device_batch>(1));
      on_accepted(ctx, msg.get_as<uint64_t>(3));
      return true;
    }
    if (msg.match_elements<backend::deliver_atom, backend::device_batch>()) {
      on_echo(ctx, msg.get_as<backend::device_batch>(1));
      return true;
    }
    if (msg.match_elements<backend::deliver_atom, batch_t, backend::accepted_atom, uint64_t>()) {
      // A producer that is also the consumer: the batch, then its acceptance.
      on_deliver_batch(ctx, msg.get_mutable_as<batch_t>(1));
      on_accepted(ctx, msg.get_as<uint64_t>(3));
      return true;
    }
    if (msg.match_elements<backend::deliver_atom, batch_t>()) {
      on_deliver_batch(ctx, msg.get_mutable_as<batch_t>(1));
      return true;
    }
    if (msg.match_elements<backend::deliver_atom, backend::to_device_message>()) {
      on_deliver(ctx, msg.get_mutable_as<backend::to_device_message>(1));
      return true;
    }
    if (msg.match_elements<producer_changed_atom>()) {
      // A device that went quiet with batches the old producer never accepted.
      if (!pending_.empty())
        if (auto prod = names()->whereis(*producer_name_); prod && prod != producer_)
          republish(std::move(prod));
      return true;
    }
    if (msg.match_elements<cluster_deliver_atom, backend::to_device_message, std::string>()) {
      on_remote_deliver(ctx, msg.get_mutable_as<backend::to_device_message>(1), msg.get_as<std::string>(2));
      return true;
    }
    if (msg.match_elements<cluster_claim_atom, std::string, std::string>()) {
      on_remote_claim(ctx, msg.get_as<std::string>(1), msg.get_as<std::string>(2));
      return true;
    }
    if (msg.match_elements<claim_atom, std::string, uint64_t, bool>()) {
      on_claim_result(ctx, msg.get_as<std::string>(1), msg.get_as<uint64_t>(2), msg.get_as<bool>(3));
      return true;
    }
    if (msg.match_elements<reverify_atom, int64_t>()) {
      if (claim_since_us_ != 0 && claim_since_us_ >= msg.get_as<int64_t>(1) && !claim_pending_)
        ask_claim(true);
      return true;
    }
    if (msg.match_elements<takeover_atom>()) {
      env().metrics->takeovers.fetch_add(1, std::memory_order_relaxed);
      log().info("session {} (device {}): taken over by a new connection", id(), device_id_);
      ctx.close(shutdown_with("takeover"));
      return true;
    }
    return false;
  }

  void on_timer(net::connection_context& ctx, uint64_t id) override {
    if (id == settle_timer) {
      ask_claim(true);
      return;
    }
    if ((id & 3) == gap_timer) {
      if ((id >> 2) == gap_gen_)
        on_gap_timeout(ctx);
      report_out(ctx);
    }
  }

  void on_close(const caf::error&) override {
    if (std::exchange(registered_, false))
      env().registry->release(id());
    env().metrics->sessions_closed.fetch_add(1, std::memory_order_relaxed);
  }

private:
  // -- device -> backend -------------------------------------------------------------

  /// Whether `device_id` is one under this listener's identity profile; if not, the
  /// connection is closed with {shutdown, identify_failed}, logged and counted. A
  /// certificate CN passed the unicode rules already (net::certificate_cn).
  bool identity_accepted(net::connection_context& ctx, std::string_view device_id, const char* source) {
    auto problem = net::identity_problem(device_id, opts().identity_profile);
    if (problem.empty())
      return true;
    env().metrics->identify_failures.fetch_add(1, std::memory_order_relaxed);
    log().info("session {} ({}): closed: {} is no device id: it {}", id(), ctx.info().peer, source, problem);
    ctx.close(shutdown_with("identify_failed"));
    return false;
  }

  void claim(std::string device_id) {
    device_id_ = std::move(device_id);
    identified_ = true;
    bool subscribed = false;
    auto previous = env().registry->claim_device(device_id_, id(), caf::actor_cast<caf::actor>(self_),
                                                 device_state_, subscribed);
    if (previous)
      caf::anon_send(previous, takeover_atom::value);
    if (!env().cluster)
      return;
    claim_since_us_ = unix_us(); // a local takeover is a newer claim too
    // Cluster-wide: ask the device's owner elsewhere (if any) to hand it over before we
    // subscribe its subject (docs/cluster.md, "Claims"). After a local takeover the
    // subscription is ours already.
    if (!subscribed)
      ask_claim(false);
  }

  // -- cluster -----------------------------------------------------------------------

  wire::claim_key my_claim() const { return env().cluster->claim(id(), claim_since_us_); }

  /// Sends our claim to the device's agent; the answer comes as (claim_atom, status,
  /// next_seq, verify). A first claim (not `verify`) subscribes once answered.
  void ask_claim(bool verify) {
    auto agent = env().cluster->agent_for(device_id_);
    if (!agent) { // restarting: subscribe anyway; a later verification settles it
      if (!verify)
        env().registry->subscribe_device(device_id_, id());
      return;
    }
    claim_pending_ = true;
    enqueue(agent, caf::make_message(claim_atom::value, device_id_, wire::to_string(my_claim()), verify));
  }

  void on_claim_result(net::connection_context& ctx, const std::string& status, uint64_t next_seq,
                       bool verify) {
    claim_pending_ = false;
    auto& c = env().cluster->counters();
    if (status == "refused") {
      c.claims_lost.fetch_add(1, std::memory_order_relaxed);
      log().info("session {} (device {}): a newer claim on another node owns the device; closing", id(),
                 device_id_);
      ctx.close(shutdown_with("takeover"));
      return;
    }
    if (status == "yielded") {
      c.takeovers_out.fetch_add(1, std::memory_order_relaxed);
      log().info("session {} (device {}): took the device over from another node (next to_device_seq {})",
                 id(), device_id_, next_seq);
      if (next_seq > order().next_to_device_seq.load(std::memory_order_relaxed)) {
        order().next_to_device_seq.store(next_seq, std::memory_order_relaxed);
        flush_held(ctx);
        report_out(ctx);
      }
    }
    if (!verify) {
      env().registry->subscribe_device(device_id_, id());
      ctx.start_timer(settle_timer, env().cluster->cfg().claim_settle);
    }
  }

  /// Another node claims our device.
  void on_remote_claim(net::connection_context& ctx, const std::string& claim, const std::string& reply) {
    auto theirs = wire::parse_claim(claim);
    auto mine = my_claim();
    if (!theirs || *theirs < mine || closing_) {
      auto text = wire::to_string(mine);
      cluster::header hs[2] = {{wire::status, closing_ ? "gone" : "refused"}, {wire::claim, text}};
      env().cluster->reply(reply, {hs, closing_ ? 1u : 2u});
      return;
    }
    closing_ = true;
    auto next = std::to_string(order().next_to_device_seq.load(std::memory_order_relaxed));
    cluster::header hs[2] = {{wire::status, "yielded"}, {wire::next_seq, next}};
    env().cluster->reply(reply, hs);
    env().cluster->counters().takeovers_in.fetch_add(1, std::memory_order_relaxed);
    env().metrics->takeovers.fetch_add(1, std::memory_order_relaxed);
    log().info("session {} (device {}): taken over by node {}", id(), device_id_, theirs->node);
    ctx.close(shutdown_with("takeover"));
  }

  /// A delivery from another node: as a local one, answered over NATS.
  void on_remote_deliver(net::connection_context& ctx, backend::to_device_message& m,
                         const std::string& reply) {
    bool held = false;
    bool ok = !closing_ && deliver(ctx, m, held);
    if (held)
      after_hold(ctx);
    report_out(ctx);
    if (!ok)
      env().metrics->undeliverable.fetch_add(1, std::memory_order_relaxed);
    cluster::header hs[1] = {{wire::status, ok ? "delivered"
                                            : refusal(ctx) == backend::backend_errc::bad_message
                                                ? "bad_message"
                                                : "closing"}};
    env().cluster->reply(reply, hs);
  }

  void enqueue(const caf::actor& dest, const caf::message& msg) {
    dest->enqueue(
        caf::make_mailbox_element(caf::strong_actor_ptr{self_->ctrl()}, caf::make_message_id(), {}, msg),
        self_->context());
  }

  void publish(uint64_t last, caf::message msg) {
    auto prod = names()->whereis(*producer_name_); // one shard lookup per read
    if (prod) {
      // Another producer than last time (a restart): the batches the old one never
      // accepted go first, in order. Its successor's acceptance is cumulative, so
      // they must not be skipped.
      if (prod != producer_ && !pending_.empty())
        republish(prod);
      enqueue(prod, msg);
      producer_ = std::move(prod);
    } else if (!warned_no_producer_) {
      warned_no_producer_ = true;
      log().warn("session {}: no backend producer running; device messages wait", id());
    }
    pending_.emplace_back(last, std::move(msg));
  }

  /// Publishes every batch not yet accepted to `prod`, the producer from now on.
  void republish(caf::actor prod) {
    log().info("session {}: backend producer replaced; publishing {} batches again", id(), pending_.size());
    for (auto& [seq, m] : pending_)
      enqueue(prod, m);
    env().metrics->republished.fetch_add(pending_.size(), std::memory_order_relaxed);
    producer_ = std::move(prod);
  }

  void on_accepted(net::connection_context& ctx, uint64_t seq) {
    if (seq <= accepted_)
      return;
    env().metrics->backend_accepted.fetch_add(seq - accepted_, std::memory_order_relaxed);
    accepted_ = seq;
    auto done =
        std::find_if(pending_.begin(), pending_.end(), [seq](const auto& p) { return p.first > seq; });
    pending_.erase(pending_.begin(), done);
    ctx.ack(seq + offset_); // codec frame: the device may forget these now
    if (holding_ && stats_.seq_in.load(std::memory_order_relaxed) - accepted_ <= opts().max_unaccepted / 2) {
      holding_ = false;
      ctx.resume_reading();
    }
  }

  // -- backend -> device -------------------------------------------------------------

  /// Queues one message; the figures are published once per callback (report_out).
  bool send_out(net::connection_context& ctx, std::string_view payload) {
    if (!ctx.send(payload))
      return false;
    ++unreported_out_;
    return true;
  }

  /// After every callback that may have queued messages: one store, one atomic add.
  void report_out(net::connection_context& ctx) {
    if (unreported_out_ == 0)
      return;
    stats_.seq_out.store(ctx.frames_out(), std::memory_order_relaxed);
    env().metrics->messages_out.fetch_add(unreported_out_, std::memory_order_relaxed);
    unreported_out_ = 0;
  }

  /// Why a message was not queued: the connection is closing (or yielded to a newer
  /// claim), or ctx.send() could not encode it (a line with LF, a payload over
  /// max_frame), which no retry changes.
  backend::backend_errc refusal(const net::connection_context& ctx) const {
    return closing_ || ctx.closing() ? backend::backend_errc::closing : backend::backend_errc::bad_message;
  }

  void reply(net::connection_context& ctx, caf::response_promise& rp, bool ok) {
    if (!ok)
      env().metrics->undeliverable.fetch_add(1, std::memory_order_relaxed);
    if (!rp.pending())
      return;
    if (ok) {
      rp.deliver(backend::delivered_atom::value);
      return;
    }
    auto why = refusal(ctx);
    rp.deliver(backend::make_error(why, why == backend::backend_errc::closing
                                            ? "not queued: connection " + std::string{id()} + " is closing"
                                            : "not queued: the message cannot be encoded for connection " +
                                                  std::string{id()} + " (max_frame, or LF in a line)"));
  }

  void on_deliver(net::connection_context& ctx, backend::to_device_message& m) {
    auto rp = ctx.make_response_promise(); // invalid for a plain send: no reply then
    bool held = false;
    bool ok = deliver(ctx, m, held);
    if (held)
      after_hold(ctx);
    report_out(ctx); // before the answer: a requester that got it sees the figures
    reply(ctx, rp, ok);
  }

  /// One pass over a one-way batch: every message queued (or held) in order, the
  /// figures published once; the endpoint flushes once when on_message returns.
  void on_deliver_batch(net::connection_context& ctx, std::vector<backend::to_device_message>& batch) {
    uint64_t refused = 0;
    bool held = false;
    for (auto& m : batch) {
      bool h = false;
      if (!deliver(ctx, m, h))
        ++refused;
      if (h) {
        held = true;
        // The same bound as for single messages, checked as they come.
        if (held_.size() > opts().max_reorder)
          after_hold(ctx);
      }
    }
    if (held)
      after_hold(ctx);
    if (refused > 0)
      env().metrics->undeliverable.fetch_add(refused, std::memory_order_relaxed);
    report_out(ctx);
  }

  /// A device batch back (echo): every payload queued in order, as messages without
  /// to_device_seq; the figures published once.
  void on_echo(net::connection_context& ctx, const backend::device_batch& batch) {
    uint64_t refused = 0;
    for (auto m : batch)
      if (!send_out(ctx, m.payload))
        ++refused;
    if (refused > 0)
      env().metrics->undeliverable.fetch_add(refused, std::memory_order_relaxed);
    report_out(ctx);
  }

  /// Queues `m` (or holds it behind a to_device_seq gap: `held`); false when it could
  /// not be queued. A hold is followed by after_hold().
  bool deliver(net::connection_context& ctx, backend::to_device_message& m, bool& held) {
    if (!m.to_device_seq)
      return send_out(ctx, m.payload);
    auto seq = *m.to_device_seq;
    auto next = order().next_to_device_seq.load(std::memory_order_relaxed);
    if (seq < next) {
      // Late (its gap was skipped) or a redelivery: at-least-once, deliver it.
      log().debug("session {}: to_device_seq {} below the expected {}", id(), seq, next);
      return send_out(ctx, m.payload);
    }
    if (seq == next) {
      bool ok = send_out(ctx, m.payload);
      order().next_to_device_seq.store(next + 1, std::memory_order_relaxed);
      flush_held(ctx);
      return ok;
    }
    // A gap: hold it until the missing ones come or gap_timeout passes.
    held_.insert_or_assign(seq, std::move(m.payload));
    env().metrics->reordered.fetch_add(1, std::memory_order_relaxed);
    held = true;
    return true;
  }

  /// After a message was held: skip the gap when too many wait, else start its timer.
  void after_hold(net::connection_context& ctx) {
    if (held_.size() > opts().max_reorder) {
      skip_gap(ctx, "too many messages held");
    } else if (!gap_armed_ && !held_.empty()) {
      arm_gap_timer(ctx);
    }
  }

  void flush_held(net::connection_context& ctx) {
    auto next = order().next_to_device_seq.load(std::memory_order_relaxed);
    while (!held_.empty() && held_.begin()->first <= next) {
      auto it = held_.begin();
      send_out(ctx, it->second);
      if (it->first == next)
        ++next;
      held_.erase(it);
    }
    order().next_to_device_seq.store(next, std::memory_order_relaxed);
    if (held_.empty()) {
      gap_armed_ = false;
      ++gap_gen_; // a pending gap timer is stale now
    }
  }

  void arm_gap_timer(net::connection_context& ctx) {
    gap_armed_ = true;
    gap_for_ = order().next_to_device_seq.load(std::memory_order_relaxed);
    ++gap_gen_;
    ctx.start_timer((uint64_t{gap_gen_} << 2) | gap_timer, opts().gap_timeout);
  }

  void on_gap_timeout(net::connection_context& ctx) {
    gap_armed_ = false;
    if (held_.empty())
      return;
    auto next = order().next_to_device_seq.load(std::memory_order_relaxed);
    if (next == gap_for_)
      skip_gap(ctx, "gap_timeout");
    else if (!held_.empty())
      arm_gap_timer(ctx); // progress was made; a later gap gets its own full wait
  }

  void skip_gap(net::connection_context& ctx, const char* why) {
    auto next = order().next_to_device_seq.load(std::memory_order_relaxed);
    auto first = held_.begin()->first;
    log().warn("session {} (device {}): to_device_seq {}..{} missing ({}); skipped", id(), device_id_, next,
               first - 1, why);
    env().metrics->gap_skips.fetch_add(1, std::memory_order_relaxed);
    order().next_to_device_seq.store(first, std::memory_order_relaxed);
    flush_held(ctx);
    if (!held_.empty())
      arm_gap_timer(ctx);
  }

  const session_options& opts() const { return shared_->opts; }
  const session_env& env() const { return shared_->env; }
  std::string_view id() const { return {conn_id_, sizeof(conn_id_)}; }
  name_service* names() const { return shared_->names.load(std::memory_order_relaxed); }
  device_state& order() { return device_state_ ? *device_state_ : own_seq_; }

  // Ordered by size: an idle session is this object and its registry entry, nothing
  // else (no copy of what the endpoint or the listener holds already).
  std::shared_ptr<const shared_options> shared_; // one per listener
  caf::local_actor* self_ = nullptr;             // the endpoint: owns this protocol, so a raw pointer
  const std::string* producer_name_ = nullptr;   ///< the pool member this connection publishes to
  std::string device_id_;
  session_stats stats_;
  // to_device_seq state: our own until the device is identified, then the device's
  // (it survives a takeover).
  device_state own_seq_;
  std::shared_ptr<device_state> device_state_;
  // device -> backend
  caf::actor producer_;
  // Published, not yet accepted; oldest first. A vector: an empty std::deque already
  // holds ~600 bytes, in every idle session.
  std::vector<std::pair<uint64_t, caf::message>> pending_;
  uint64_t accepted_ = 0;
  // backend -> device
  held_messages held_; ///< behind a to_device_seq gap
  uint64_t gap_for_ = 0;
  uint32_t gap_gen_ = 0;
  uint32_t unreported_out_ = 0; ///< queued in this callback, not yet in the figures
  char conn_id_[36] = {};       ///< UUID v4, canonical text (id())
  uint8_t offset_ = 0;          ///< endpoint seq - from_device_seq (1 when the first message is the id)
  bool identified_ = false;
  bool registered_ = false;    ///< the registry has our entry
  bool claim_pending_ = false; ///< cluster: a claim is out, its answer not yet in
  bool closing_ = false;       ///< cluster: yielded to a newer claim
  int64_t claim_since_us_ = 0; ///< cluster: when we claimed the device (0: not claimed)
  bool holding_ = false;
  bool warned_no_producer_ = false;
  bool gap_armed_ = false;
};

} // namespace

net::protocol_factory session_factory(session_options opts, session_env env) {
  auto shared = std::make_shared<shared_options>();
  if (opts.producer_names.empty())
    throw std::invalid_argument("session_factory: no backend producer names");
  shared->opts = std::move(opts);
  shared->env = std::move(env);
  std::shared_ptr<const shared_options> cshared = std::move(shared);
  return [cshared] { return std::make_unique<device_session>(cshared); };
}

} // namespace warren::gateway
