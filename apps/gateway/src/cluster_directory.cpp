#include "cluster_directory.hpp"

#include <warren/backend/control.hpp>
#include <warren/cluster/pending.hpp>
#include <warren/cluster/subject.hpp>
#include <warren/log.hpp>
#include <warren/registry.hpp>
#include <warren/supervisor.hpp>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include <map>
#include <mutex>

namespace warren::gateway {

namespace {

using json = nlohmann::json;
using tick_atom = caf::atom_constant<caf::atom("cltick")>;
using heartbeat_atom = caf::atom_constant<caf::atom("clhb")>;
using link_atom = caf::atom_constant<caf::atom("cllink")>;

constexpr const char* peers_name = "warren.cluster.peers";

std::string_view status_of(const cluster::message& m) {
  return m.header(wire::status).value_or("");
}

/// What the answer `m` to a delivery request (or its `failure`, timeout or unavailable,
/// when there is none) means for the requester: none when the owning session took it.
/// Counted.
caf::error delivery_outcome(cluster_counters& c, const cluster::message* m, std::string_view failure) {
  using backend::backend_errc;
  if (!m)
    return backend::make_error(
        failure == "timeout" ? backend_errc::no_answer : backend_errc::cluster_unavailable,
        failure == "timeout" ? "no answer from the owning node in time" : "NATS unavailable");
  if (m->no_responders()) {
    c.no_responders.fetch_add(1, std::memory_order_relaxed);
    return backend::make_error(backend_errc::no_such_device, "connected on no node");
  }
  if (auto s = status_of(*m); s == "delivered") {
    c.delivered_out.fetch_add(1, std::memory_order_relaxed);
    return {};
  } else {
    c.refused_out.fetch_add(1, std::memory_order_relaxed);
    auto code = s == "bad_message" ? backend_errc::bad_message : backend_errc::closing;
    return backend::make_error(code, "refused by the owning node: " + std::string{s});
  }
}

/// The headers of a delivery request; `seq` holds the text of its to_device_seq.
std::size_t delivery_headers(const backend::to_device_message& m, std::string& seq,
                             cluster::header (&hs)[2]) {
  hs[0] = {wire::op, "deliver"};
  if (!m.to_device_seq)
    return 1;
  seq = std::to_string(*m.to_device_seq);
  hs[1] = {wire::seq, seq};
  return 2;
}

// -- agents: this node's requests to other nodes ---------------------------------------

class cluster_agent : public caf::event_based_actor {
public:
  cluster_agent(caf::actor_config& cfg, cluster_directory* dir, uint32_t slot)
    : caf::event_based_actor(cfg), dir_(dir), slot_(slot) {}

  const char* name() const override { return "warren.cluster.agent"; }

  caf::behavior make_behavior() override {
    dir_->node().set_reply_target(slot_, caf::actor_cast<caf::actor>(this));
    auto timeout = dir_->cfg().nats.request_timeout;
    tick_ = std::max<caf::timespan>(std::chrono::milliseconds(10), timeout / 10);
    return {
        [this](backend::deliver_atom, backend::to_device_message& m) { deliver(m); },
        [this](claim_atom, std::string& device_id, std::string& claim, bool verify) {
          ask_claim(device_id, claim, verify);
        },
        [this](cluster::reply_atom, uint64_t token, cluster::message& m) { on_reply(token, m); },
        [this](tick_atom) {
          ticking_ = false;
          pending_.expire(std::chrono::steady_clock::now(), [this](uint64_t, entry&& e) {
            dir_->counters().timeouts.fetch_add(1, std::memory_order_relaxed);
            finish(e, nullptr, "timeout");
          });
          arm();
        },
    };
  }

  void on_exit() override {
    dir_->node().set_reply_target(slot_, {});
    pending_.clear([this](uint64_t, entry&& e) { finish(e, nullptr, "unavailable"); });
  }

private:
  struct entry {
    bool claim = false;
    bool verify = false;
    caf::response_promise rp; ///< a delivery's requester
    caf::actor session;       ///< a claim's session
  };

  void arm() {
    if (ticking_ || pending_.empty())
      return;
    ticking_ = true;
    delayed_send(this, tick_, tick_atom::value);
  }

  uint64_t add(entry e) {
    auto token =
        pending_.add(std::move(e), std::chrono::steady_clock::now() + dir_->cfg().nats.request_timeout);
    arm();
    return token;
  }

  void deliver(backend::to_device_message& m) {
    auto rp = make_response_promise();
    auto& c = dir_->counters();
    if (!dir_->node().connected()) {
      c.unavailable.fetch_add(1, std::memory_order_relaxed);
      rp.deliver(backend::make_error(backend::backend_errc::cluster_unavailable,
                                     "NATS " + to_string(dir_->node().state())));
      return;
    }
    entry e;
    e.rp = std::move(rp);
    auto token = add(std::move(e));
    std::string seq;
    cluster::header hs[2];
    auto n = delivery_headers(m, seq, hs);
    c.requests_out.fetch_add(1, std::memory_order_relaxed);
    if (!dir_->node().publish(dir_->subject(m.kind, m.target), dir_->node().inbox(slot_, token), {hs, n},
                              m.payload)) {
      c.unavailable.fetch_add(1, std::memory_order_relaxed);
      if (auto p = pending_.take(token))
        p->rp.deliver(
            backend::make_error(backend::backend_errc::cluster_unavailable, "NATS refused the request"));
    }
  }

  void ask_claim(const std::string& device_id, const std::string& claim, bool verify) {
    entry e;
    e.claim = true;
    e.verify = verify;
    e.session = caf::actor_cast<caf::actor>(current_sender());
    if (!e.session)
      return;
    if (!dir_->node().connected()) {
      finish(e, nullptr, "unavailable");
      return;
    }
    auto token = add(std::move(e));
    cluster::header hs[3] = {{wire::op, "claim"}, {wire::claim, claim}, {wire::verify, "1"}};
    if (!dir_->node().publish(dir_->subject(backend::address_kind::device, device_id),
                              dir_->node().inbox(slot_, token), {hs, verify ? 3u : 2u}, {}))
      if (auto p = pending_.take(token))
        finish(*p, nullptr, "unavailable");
  }

  void on_reply(uint64_t token, const cluster::message& m) {
    auto e = pending_.take(token);
    if (!e)
      return; // timed out already
    finish(*e, &m, {});
  }

  /// Answers the request of `e`, with the reply `m`, or with `failure` (timeout,
  /// unavailable) when there is none.
  void finish(entry& e, const cluster::message* m, std::string_view failure) {
    auto& c = dir_->counters();
    if (e.claim) {
      std::string status;
      uint64_t next = 0;
      if (!m) {
        status = failure;
      } else if (m->no_responders()) {
        status = "free";
      } else {
        auto s = status_of(*m);
        if (s == "yielded") {
          status = "yielded";
          next = wire::parse_u64(m->header(wire::next_seq).value_or("")).value_or(0);
        } else if (s == "refused") {
          status = "refused";
        } else {
          status = "free"; // gone: the old session ended as we asked
        }
      }
      send(e.session, claim_atom::value, std::move(status), next, e.verify);
      return;
    }
    if (!e.rp.pending())
      return;
    if (auto err = delivery_outcome(c, m, failure))
      e.rp.deliver(std::move(err));
    else
      e.rp.deliver(backend::delivered_atom::value);
  }

  cluster_directory* dir_;
  uint32_t slot_;
  caf::timespan tick_{};
  bool ticking_ = false;
  cluster::pending_requests<entry> pending_;
};

// -- peers: heartbeats and re-verification ----------------------------------------------

class cluster_peers : public caf::event_based_actor {
public:
  cluster_peers(caf::actor_config& cfg, cluster_directory* dir) : caf::event_based_actor(cfg), dir_(dir) {}

  const char* name() const override { return peers_name; }

  caf::behavior make_behavior() override {
    // Not connected yet: claims made until the first connection are verified then.
    if (!dir_->node().connected())
      down_since_ = dir_->started_us();
    send(this, tick_atom::value);
    return {
        [this](tick_atom) {
          beat();
          delayed_send(this, dir_->cfg().heartbeat_interval, tick_atom::value);
        },
        [this](heartbeat_atom, cluster::message& m) { on_heartbeat(m); },
        [this](link_atom, uint8_t s) { on_link(static_cast<cluster::link_state>(s)); },
    };
  }

private:
  void beat() {
    json j{{"node", dir_->node_name()}, {"started_us", dir_->started_us()}};
    dir_->node().publish(dir_->cfg().nats.prefix + ".nodes.heartbeat", {}, {}, j.dump());
    dir_->mark_lost(std::chrono::steady_clock::now());
  }

  void on_heartbeat(const cluster::message& m) {
    auto j = json::parse(m.data(), nullptr, false);
    if (j.is_discarded() || !j.contains("node") || !j["node"].is_string() || !j.contains("started_us") ||
        !j["started_us"].is_number_integer()) {
      dir_->counters().bad_input.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    auto name = j["node"].get<std::string>();
    if (name == dir_->node_name()) {
      // Not our own (no_echo): another process runs under this node's name. Claims
      // are told apart by node name, so both nodes' sessions are at risk: say it loudly.
      if (j["started_us"].get<int64_t>() != dir_->started_us()) {
        dir_->counters().name_conflicts.fetch_add(1, std::memory_order_relaxed);
        static warren::log_limit limit;
        if (uint64_t held = 0; limit.allow(held))
          log().error("cluster: another node runs under this node's name {} (node_name must be unique in the "
                      "cluster; {} more heartbeats of it since the last report)",
                      name, held);
      }
      return;
    }
    if (auto since = dir_->saw_peer(name, j["started_us"].get<int64_t>())) {
      // Heard again after a silence (a split healed, a freeze ended), or for the first
      // time: claims made on either side meanwhile may overlap; both sides verify theirs.
      log().info("cluster: node {} heard (first time, or again after a silence); verifying the claims of "
                 "the last {} ms",
                 name, (unix_us() - *since) / 1000);
      reverify(*since);
    }
  }

  void on_link(cluster::link_state s) {
    if (s == cluster::link_state::reconnecting) {
      if (down_since_ == 0)
        down_since_ = unix_us();
    } else if (s == cluster::link_state::connected && down_since_ != 0) {
      // Devices claimed while cut off may have been claimed elsewhere too.
      reverify(std::exchange(down_since_, 0));
    }
  }

  void reverify(int64_t since_us) {
    auto margin = std::chrono::duration_cast<std::chrono::microseconds>(dir_->cfg().node_timeout).count();
    auto n = dir_->registry().broadcast(caf::make_message(reverify_atom::value, since_us - margin));
    log().debug("cluster: {} sessions asked to verify their claims", n);
  }

  cluster_directory* dir_;
  int64_t down_since_ = 0;
};

} // namespace

// -- the directory -------------------------------------------------------------------

cluster_directory::cluster_directory(cluster_config cfg, session_registry& registry)
  : cfg_(std::move(cfg)), registry_(&registry), bad_log_(std::chrono::seconds(10)) {
  node_ = std::make_unique<cluster::node>(cfg_.nats);
  auto agents = cfg_.agents == 0 ? 2 : std::min<std::size_t>(cfg_.agents, 64);
  for (std::size_t i = 0; i < agents; ++i)
    agent_names_.push_back(agent_name(i));
  dev_prefix_ = cfg_.nats.prefix + ".dev";
  conn_prefix_ = cfg_.nats.prefix + ".conn";
  dev_target_ = {&cluster_directory::on_device, this};
  conn_target_ = {&cluster_directory::on_connection, this};
  started_us_ = unix_us();
}

cluster_directory::~cluster_directory() {
  node_subs_.clear();
  node_.reset(); // no callback runs after this
}

std::string cluster_directory::agent_name(std::size_t i) {
  return "warren.cluster.agent." + std::to_string(i);
}

void cluster_directory::stop() {
  sys_.store(nullptr);
  node_subs_.clear();
  node_->close();
}

void cluster_directory::start(caf::actor_system& sys) {
  sys_ = &sys;
  node_->on_state([this](cluster::link_state s) {
    switch (s) {
      case cluster::link_state::connected:
        log().info("cluster: node {} connected to NATS {}", node_name(), node_->server_url());
        break;
      case cluster::link_state::reconnecting:
        log().warn("cluster: node {} lost NATS; reconnecting (deliveries to other nodes fail meanwhile)",
                   node_name());
        break;
      default:
        break;
    }
    if (auto sys = sys_.load())
      if (auto p = whereis(*sys, peers_name))
        caf::anon_send(p, link_atom::value, static_cast<uint8_t>(s));
  });
  node_->start();
  auto& prefix = cfg_.nats.prefix;
  node_targets_[0] = {[](void* ctx, cluster::message m) {
                        auto sys = static_cast<cluster_directory*>(ctx)->sys_.load();
                        if (auto p = sys ? whereis(*sys, peers_name) : caf::actor{})
                          caf::anon_send(p, heartbeat_atom::value, std::move(m));
                      },
                      this};
  node_targets_[1] = {[](void* ctx, cluster::message m) {
                        auto self = static_cast<cluster_directory*>(ctx);
                        self->reply(std::string{m.reply()}, {}, self->info_json());
                      },
                      this};
  node_targets_[2] = {[](void* ctx, cluster::message m) {
                        auto self = static_cast<cluster_directory*>(ctx);
                        auto limit = wire::parse_u64(m.data()).value_or(self->cfg_.list_limit);
                        limit = std::min<uint64_t>(limit, self->cfg_.list_limit);
                        self->reply(std::string{m.reply()}, {},
                                    self->list_sessions ? self->list_sessions(limit) : std::string{"{}"});
                      },
                      this};
  node_subs_.push_back(node_->subscribe(prefix + ".nodes.heartbeat", &node_targets_[0], 65536));
  node_subs_.push_back(node_->subscribe(prefix + ".nodes.info", &node_targets_[1]));
  node_subs_.push_back(node_->subscribe(prefix + ".nodes.connections", &node_targets_[2]));
}

std::string cluster_directory::subject(backend::address_kind kind, std::string_view id) const {
  return cluster::subject_for(kind == backend::address_kind::device ? dev_prefix_ : conn_prefix_, id);
}

cluster::subscription cluster_directory::subscribe(backend::address_kind kind, std::string_view id) {
  return node_->subscribe(subject(kind, id),
                          kind == backend::address_kind::device ? &dev_target_ : &conn_target_);
}

caf::actor cluster_directory::agent_for(std::string_view id) const {
  auto sys = sys_.load();
  if (!sys)
    return {};
  // One device's requests go through one agent, so they stay in order on the way;
  // while that one restarts, the next running one takes them rather than none (which
  // would read as "connected nowhere": 404, dead-letter).
  auto first = std::hash<std::string_view>{}(id) % agent_names_.size();
  for (std::size_t k = 0; k < agent_names_.size(); ++k)
    if (auto a = whereis(*sys, agent_names_[(first + k) % agent_names_.size()]))
      return a;
  return {};
}

caf::error cluster_directory::deliver_blocking(const backend::to_device_message& m) {
  auto& c = counters_;
  std::string seq;
  cluster::header hs[2];
  auto n = delivery_headers(m, seq, hs);
  c.requests_out.fetch_add(1, std::memory_order_relaxed);
  auto r = node_->request(subject(m.kind, m.target), {hs, n}, m.payload, cfg_.nats.request_timeout);
  switch (r.status) {
    case cluster::node::request_result::replied:
      return delivery_outcome(c, &r.reply, {});
    case cluster::node::request_result::timeout:
      c.timeouts.fetch_add(1, std::memory_order_relaxed);
      return delivery_outcome(c, nullptr, "timeout");
    case cluster::node::request_result::unavailable:
      break;
  }
  c.unavailable.fetch_add(1, std::memory_order_relaxed);
  return delivery_outcome(c, nullptr, "unavailable");
}

wire::claim_key cluster_directory::claim(std::string_view conn_id, int64_t since_us) const {
  return {since_us, node_name(), std::string{conn_id}};
}

void cluster_directory::reply(const std::string& to, std::span<const cluster::header> headers,
                              std::string_view data) {
  if (!to.empty())
    node_->publish(to, {}, headers, data);
}

void cluster_directory::on_device(void* ctx, cluster::message m) {
  static_cast<cluster_directory*>(ctx)->inbound(backend::address_kind::device, std::move(m));
}

void cluster_directory::on_connection(void* ctx, cluster::message m) {
  static_cast<cluster_directory*>(ctx)->inbound(backend::address_kind::connection, std::move(m));
}

void cluster_directory::bad_input(std::string_view subject, std::string_view why, const cluster::message& m) {
  counters_.bad_input.fetch_add(1, std::memory_order_relaxed);
  if (uint64_t held = 0; bad_log_.allow(held))
    log().warn("cluster: dropped a message on {}: {} ({} more since the last report)", subject, why, held);
  cluster::header hs[2] = {{wire::status, "bad_request"}, {wire::error, why}};
  reply(std::string{m.reply()}, hs);
}

void cluster_directory::inbound(backend::address_kind kind, cluster::message m) {
  auto subject = m.subject();
  auto& prefix = kind == backend::address_kind::device ? dev_prefix_ : conn_prefix_;
  auto id = cluster::decode_token(subject.substr(std::min(subject.size(), prefix.size() + 1)));
  if (!id) {
    bad_input(subject, "not a valid id token", m);
    return;
  }
  if (m.reply().empty()) {
    bad_input(subject, "no reply subject", m);
    return;
  }
  auto op = m.header(wire::op).value_or("");
  if (op == "deliver") {
    backend::to_device_message msg;
    msg.kind = kind;
    msg.target = std::move(*id);
    if (auto seq = m.header(wire::seq)) {
      auto v = wire::parse_u64(*seq);
      if (!v) {
        bad_input(subject, "Warren-Seq is no number", m);
        return;
      }
      msg.to_device_seq = *v;
    }
    msg.payload.assign(m.data());
    auto session = registry_->find(kind, msg.target);
    if (!session) {
      // Subscribed, but the session just ended: it may be on its way to another node.
      cluster::header hs[1] = {{wire::status, "closing"}};
      reply(std::string{m.reply()}, hs);
      return;
    }
    counters_.requests_in.fetch_add(1, std::memory_order_relaxed);
    caf::anon_send(session, cluster_deliver_atom::value, std::move(msg), std::string{m.reply()});
  } else if (op == "claim" && kind == backend::address_kind::device) {
    auto claim = m.header(wire::claim);
    if (!claim || !wire::parse_claim(*claim)) {
      bad_input(subject, "claim without a valid Warren-Claim", m);
      return;
    }
    auto session = registry_->find(kind, *id);
    if (!session) {
      cluster::header hs[1] = {{wire::status, "gone"}};
      reply(std::string{m.reply()}, hs);
      return;
    }
    caf::anon_send(session, cluster_claim_atom::value, std::string{*claim}, std::string{m.reply()});
  } else {
    bad_input(subject, "unknown Warren-Op", m);
  }
}

std::string cluster_directory::info_json() const {
  json j{{"node", node_name()},
         {"started_us", started_us_},
         {"nats", {{"state", to_string(node_->state())}, {"server", node_->server_url()}}},
         {"sessions", registry_->connections()},
         {"devices", registry_->devices()}};
  return j.dump();
}

std::optional<int64_t> cluster_directory::saw_peer(const std::string& name, int64_t started_us) {
  std::lock_guard<std::mutex> guard{peers_mtx_};
  auto [it, fresh] = peers_.try_emplace(name);
  auto& p = it->second;
  std::optional<int64_t> back;
  if (fresh || p.started_us != started_us)
    back = started_us;
  else if (p.lost)
    back = p.lost_since_us;
  p.last_seen = std::chrono::steady_clock::now();
  p.last_seen_us = unix_us();
  p.started_us = started_us;
  p.lost = false;
  return back;
}

void cluster_directory::mark_lost(std::chrono::steady_clock::time_point now) {
  std::lock_guard<std::mutex> guard{peers_mtx_};
  for (auto& [name, p] : peers_)
    if (!p.lost && now - p.last_seen > cfg_.node_timeout) {
      p.lost = true;
      p.lost_since_us = p.last_seen_us;
      log().warn("cluster: node {} silent for {} ms; shown as lost", name,
                 std::chrono::duration_cast<std::chrono::milliseconds>(now - p.last_seen).count());
    }
}

std::map<std::string, cluster_directory::peer> cluster_directory::peers_view() const {
  std::lock_guard<std::mutex> guard{peers_mtx_};
  return peers_;
}

child_spec cluster_directory::supervisor_child() {
  std::vector<child_spec> children;
  for (std::size_t i = 0; i < agent_names_.size(); ++i) {
    child_spec c;
    c.id = "agent-" + std::to_string(i);
    c.name = agent_names_[i];
    c.start = spawn_fn<cluster_agent>(this, static_cast<uint32_t>(i));
    children.push_back(std::move(c));
  }
  child_spec peers;
  peers.id = "peers";
  peers.name = peers_name;
  peers.start = spawn_fn<cluster_peers>(this);
  children.push_back(std::move(peers));
  supervisor_flags flags;
  flags.intensity = 10;
  flags.period = std::chrono::seconds(10);
  return warren::supervisor_child("cluster", flags, std::move(children));
}

} // namespace warren::gateway
