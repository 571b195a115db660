// Cluster-wide names (names.hpp). One actor per names object owns every piece of
// state: the names this node holds, their subscriptions and claims, and the requests
// in flight; the NATS callback only checks a message and hands it over.
#include <warren/cluster/claim.hpp>
#include <warren/cluster/names.hpp>
#include <warren/cluster/pending.hpp>
#include <warren/cluster/subject.hpp>
#include <warren/log.hpp>

#include "wire.hpp"

#include <caf/all.hpp>

#include <functional>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

namespace warren::cluster {

namespace {

using forward_atom = caf::atom_constant<caf::atom("clnfwd")>;
using inbound_atom = caf::atom_constant<caf::atom("clnin")>;
using verify_atom = caf::atom_constant<caf::atom("clnverify")>;
using tick_atom = caf::atom_constant<caf::atom("clntick")>;
using check_atom = caf::atom_constant<caf::atom("clncheck")>;
using noop_atom = caf::atom_constant<caf::atom("clnnoop")>;

/// How often the actor looks at the link (a reconnect triggers a verification of
/// every held name) and at verify_interval.
constexpr auto check_period = std::chrono::milliseconds(200);

} // namespace

struct names::core {
  caf::actor_system* sys = nullptr;
  node* nd = nullptr;
  names_options opts;
  std::string prefix; ///< "<prefix>.name"
  caf::actor server;
  names_counters counters;
  log_limit bad_log{std::chrono::seconds(10)};
  const sub_target* target = nullptr;
  mutable std::shared_mutex mtx;
  std::unordered_map<std::string, caf::actor> held; ///< registered names, for whereis()

  caf::timespan timeout() const {
    return opts.request_timeout > caf::timespan{0} ? opts.request_timeout : nd->opts().request_timeout;
  }

  std::string subject(std::string_view name) const { return subject_for(prefix, name); }

  std::optional<std::string> name_of(const message& m) const {
    auto s = m.subject();
    return decode_token(s.substr(std::min(s.size(), prefix.size() + 1)));
  }

  void reply(const message& m, std::span<const header> hs, std::string_view data = {}) {
    if (!m.reply().empty())
      nd->publish(std::string{m.reply()}, {}, hs, data);
  }

  void bad_input(std::string_view why, const message& m) {
    counters.bad_input.fetch_add(1, std::memory_order_relaxed);
    if (uint64_t held_back = 0; bad_log.allow(held_back))
      log().warn("cluster names: dropped a message on {}: {} ({} more since the last report)", m.subject(),
                 why, held_back);
    header hs[2] = {{wire::status, "bad_request"}, {wire::error, why}};
    reply(m, hs);
  }

  /// On a libnats delivery thread: checks what can be checked without state.
  void on_message(message m) {
    if (!name_of(m))
      return bad_input("not a valid name token", m);
    if (m.data().size() > opts.max_message_size)
      return bad_input("larger than max_message_size", m);
    auto op = m.header(wire::op);
    if (!op || (*op != "call" && *op != "cast" && *op != "claim"))
      return bad_input("no or unknown Warren-Op", m);
    caf::anon_send(server, inbound_atom::value, std::move(m));
  }
};

namespace {

/// A response handler that takes any reply (CAF 0.17's behaviors have no catch-all;
/// `others` is for blocking receive only): the reply of a remote call goes back over
/// NATS whatever its types, an error reply included.
class any_reply final : public caf::detail::behavior_impl {
public:
  explicit any_reply(std::function<void(caf::message)> f) : f_(std::move(f)) {}

  caf::match_case::result invoke(caf::detail::invoke_result_visitor& v, caf::type_erased_tuple& xs) override {
    f_(caf::message::copy(xs));
    v();
    return caf::match_case::match;
  }

  caf::match_case::result invoke_empty(caf::detail::invoke_result_visitor& v) override {
    f_(caf::message{});
    v();
    return caf::match_case::match;
  }

private:
  std::function<void(caf::message)> f_;
};

class names_server : public caf::event_based_actor {
public:
  names_server(caf::actor_config& cfg, std::shared_ptr<names::core> core)
    : caf::event_based_actor(cfg), core_(std::move(core)) {}

  const char* name() const override { return "warren.cluster.names"; }

  caf::behavior make_behavior() override {
    core_->nd->set_reply_target(core_->opts.reply_slot, caf::actor_cast<caf::actor>(this));
    tick_ = std::max<caf::timespan>(std::chrono::milliseconds(10), core_->timeout() / 10);
    last_reconnects_ = core_->nd->counters().reconnects.load();
    was_connected_ = core_->nd->connected();
    next_verify_ = std::chrono::steady_clock::now() + core_->opts.verify_interval;
    delayed_send(this, check_period, check_atom::value);
    set_down_handler([this](caf::down_msg& dm) { on_down(dm.source.id()); });
    return {
        [this](register_name_atom, std::string& name, caf::actor& who) { on_register(name, who); },
        [this](unregister_name_atom, std::string& name) -> caf::result<void> {
          if (!entries_.count(name))
            return make_error(cluster_errc::not_registered, name);
          release(name, make_error(cluster_errc::not_registered, "unregistered while registering"), false);
          return caf::unit;
        },
        [this](forward_atom, std::string& name, caf::message& msg) { forward(name, msg); },
        [this](inbound_atom, message& m) { inbound(m); },
        [this](reply_atom, uint64_t token, message& m) {
          if (auto r = pending_.take(token))
            finish(*r, &m, {});
        },
        [this](verify_atom, std::string& name, std::string& key) {
          auto i = entries_.find(name);
          if (i != entries_.end() && i->second.key_text == key && i->second.ph == phase::settling)
            send_claim(name, i->second.key_text, req_kind::verify);
        },
        [this](tick_atom) {
          ticking_ = false;
          pending_.expire(std::chrono::steady_clock::now(), [this](uint64_t, pending_req&& r) {
            core_->counters.timeouts.fetch_add(1, std::memory_order_relaxed);
            finish(r, nullptr, cluster_errc::timeout);
          });
          arm();
        },
        [this](check_atom) {
          check_link();
          delayed_send(this, check_period, check_atom::value);
        },
    };
  }

  void on_exit() override {
    core_->nd->set_reply_target(core_->opts.reply_slot, {});
    pending_.clear([](uint64_t, pending_req&& r) {
      if (r.rp.pending())
        r.rp.deliver(make_error(cluster_errc::cluster_unavailable, "the names service stopped"));
    });
    for (auto& [name, e] : entries_) {
      e.sub.reset();
      if (e.rp.pending())
        e.rp.deliver(make_error(cluster_errc::cluster_unavailable, "the names service stopped"));
    }
    entries_.clear();
    {
      std::unique_lock<std::shared_mutex> guard{core_->mtx};
      core_->held.clear();
    }
    core_.reset(); // the core holds this actor's handle: no cycle once stopped
  }

private:
  enum class phase : uint8_t {
    asking,   ///< claim sent, not subscribed yet
    settling, ///< subscribed; the verification is due after claim_settle
    owned     ///< registered (register_name answered)
  };

  struct entry {
    caf::actor who;
    claim_key key;
    std::string key_text;
    subscription sub;
    phase ph = phase::asking;
    caf::response_promise rp; ///< register_name's caller until owned
  };

  enum class req_kind : uint8_t { call, claim, verify, reverify };

  struct pending_req {
    req_kind kind = req_kind::call;
    caf::response_promise rp; ///< a call's caller
    std::string name;
    std::string key_text; ///< a claim's key: the entry it was made for
  };

  void arm() {
    if (ticking_ || pending_.empty())
      return;
    ticking_ = true;
    delayed_send(this, tick_, tick_atom::value);
  }

  uint64_t add(pending_req r) {
    auto token = pending_.add(std::move(r), std::chrono::steady_clock::now() + core_->timeout());
    arm();
    return token;
  }

  cluster::node& nd() { return *core_->nd; }

  // -- registration --------------------------------------------------------------

  void on_register(const std::string& name, const caf::actor& who) {
    auto rp = make_response_promise();
    if (name.empty() || !who) {
      rp.deliver(make_error(cluster_errc::invalid_argument, "an empty name or a null actor"));
      return;
    }
    if (entries_.count(name)) {
      rp.deliver(make_error(cluster_errc::already_registered, "held on this node: " + name));
      return;
    }
    if (!nd().connected()) {
      core_->counters.unavailable.fetch_add(1, std::memory_order_relaxed);
      rp.deliver(make_error(cluster_errc::cluster_unavailable, "NATS " + to_string(nd().state())));
      return;
    }
    entry e;
    e.who = who;
    e.key = claim_key{unix_us(), nd().name(), std::to_string(who.id())};
    e.key_text = to_string(e.key);
    e.rp = std::move(rp);
    auto key_text = e.key_text;
    entries_.emplace(name, std::move(e));
    auto& names_of = by_actor_[who.id()];
    if (names_of.empty())
      monitor(who); // an actor that is gone already: its down message comes at once
    names_of.push_back(name);
    send_claim(name, key_text, req_kind::claim);
  }

  void send_claim(const std::string& name, const std::string& key_text, req_kind kind) {
    pending_req r;
    r.kind = kind;
    r.name = name;
    r.key_text = key_text;
    auto token = add(std::move(r));
    header hs[3] = {{wire::op, "claim"}, {wire::claim, key_text}, {wire::verify, "1"}};
    std::size_t n = kind == req_kind::claim ? 2 : 3;
    if (!nd().publish(core_->subject(name), nd().inbox(core_->opts.reply_slot, token), {hs, n}, {}))
      if (auto p = pending_.take(token)) {
        core_->counters.unavailable.fetch_add(1, std::memory_order_relaxed);
        finish(*p, nullptr, cluster_errc::cluster_unavailable);
      }
  }

  /// Forgets `name`: unsubscribes, answers a pending register_name with `err`, and
  /// tells the actor with name_lost when it held the name and `lost`.
  void release(const std::string& name, caf::error err, bool lost) {
    auto i = entries_.find(name);
    if (i == entries_.end())
      return;
    auto e = std::move(i->second);
    entries_.erase(i);
    e.sub.reset();
    {
      std::unique_lock<std::shared_mutex> guard{core_->mtx};
      core_->held.erase(name);
    }
    if (auto a = by_actor_.find(e.who.id()); a != by_actor_.end()) {
      std::erase(a->second, name);
      if (a->second.empty()) {
        demonitor(e.who);
        by_actor_.erase(a);
      }
    }
    if (e.rp.pending())
      e.rp.deliver(std::move(err));
    else if (lost) {
      core_->counters.names_lost.fetch_add(1, std::memory_order_relaxed);
      log().info("cluster names: {} lost to an older registration", name);
      anon_send(e.who, name_lost_atom::value, name);
    }
  }

  void on_down(caf::actor_id id) {
    auto a = by_actor_.find(id);
    if (a == by_actor_.end())
      return;
    auto held = a->second; // release() edits the list
    for (auto& name : held)
      release(name, make_error(cluster_errc::invalid_argument, "the actor exited"), false);
  }

  void on_claim(const std::string& name, const message& m) {
    auto text = m.header(wire::claim);
    auto theirs = text ? parse_claim(*text) : std::nullopt;
    if (!theirs || m.reply().empty())
      return core_->bad_input("a claim without a valid Warren-Claim or reply subject", m);
    auto i = entries_.find(name);
    if (i == entries_.end() || i->second.ph == phase::asking) {
      header hs[1] = {{wire::status, "gone"}};
      core_->reply(m, hs);
      return;
    }
    if (*theirs < i->second.key) { // older: first registration wins
      header hs[1] = {{wire::status, "yielded"}};
      core_->reply(m, hs);
      release(name,
              make_error(cluster_errc::already_registered, "an older registration on node " + theirs->node),
              true);
    } else {
      header hs[2] = {{wire::status, "refused"}, {wire::claim, i->second.key_text}};
      core_->reply(m, hs);
    }
  }

  void finish_claim(pending_req& r, const message* m, cluster_errc failure) {
    auto i = entries_.find(r.name);
    if (i == entries_.end() || i->second.key_text != r.key_text)
      return; // released (or registered again) meanwhile
    auto& e = i->second;
    auto status = m && !m->no_responders() ? m->header(wire::status).value_or("") : std::string_view{};
    bool refused = status == "refused";
    std::string owner;
    if (refused)
      if (auto k = parse_claim(m->header(wire::claim).value_or("")))
        owner = " by node " + k->node;
    switch (r.kind) {
      case req_kind::claim:
        if (e.ph != phase::asking)
          return;
        if (refused)
          return release(r.name, make_error(cluster_errc::already_registered, r.name + " is held" + owner),
                         false);
        if (!m)
          return release(r.name,
                         make_error(failure, failure == cluster_errc::timeout
                                                 ? "a node subscribes " + r.name + " but does not answer"
                                                 : std::string{"NATS unavailable"}),
                         false);
        // No responders, yielded, gone: nobody else holds it. Subscribe, then verify.
        e.sub = nd().subscribe(core_->subject(r.name), core_->target);
        if (!e.sub)
          return release(
              r.name, make_error(cluster_errc::cluster_unavailable, "NATS refused the subscription"), false);
        e.ph = phase::settling;
        delayed_send(this, core_->opts.claim_settle, verify_atom::value, r.name, e.key_text);
        return;
      case req_kind::verify:
        if (e.ph != phase::settling)
          return;
        if (refused)
          return release(r.name, make_error(cluster_errc::already_registered, r.name + " is held" + owner),
                         false);
        // Free, or no answer: we hold it (a silent holder verifies after it is back).
        e.ph = phase::owned;
        {
          std::unique_lock<std::shared_mutex> guard{core_->mtx};
          core_->held[r.name] = e.who;
        }
        e.rp.deliver(caf::unit);
        return;
      case req_kind::reverify:
        if (e.ph == phase::owned && refused)
          release(r.name, caf::error{}, true);
        return;
      case req_kind::call:
        return;
    }
  }

  void check_link() {
    auto reconnects = nd().counters().reconnects.load();
    bool connected = nd().connected();
    bool back = connected && (reconnects != last_reconnects_ || !was_connected_);
    last_reconnects_ = reconnects;
    was_connected_ = connected;
    auto now = std::chrono::steady_clock::now();
    bool due = core_->opts.verify_interval > caf::timespan{0} && now >= next_verify_;
    if (due)
      next_verify_ = now + core_->opts.verify_interval;
    if (back || due)
      for (auto& [name, e] : entries_)
        if (e.ph == phase::owned)
          send_claim(name, e.key_text, req_kind::reverify);
  }

  // -- calls and casts -----------------------------------------------------------

  void forward(const std::string& name, caf::message& msg) {
    bool is_request = current_mailbox_element()->mid.is_request();
    if (auto i = entries_.find(name); i != entries_.end() && i->second.ph == phase::owned) {
      // Held here: in-process, no NATS hop.
      if (is_request)
        delegate(i->second.who, std::move(msg));
      else
        anon_send(i->second.who, std::move(msg));
      return;
    }
    auto rp = is_request ? make_response_promise() : caf::response_promise{};
    auto fail = [&](cluster_errc x, std::string what) {
      if (rp.pending())
        rp.deliver(make_error(x, std::move(what)));
    };
    if (!nd().connected()) {
      core_->counters.unavailable.fetch_add(1, std::memory_order_relaxed);
      return fail(cluster_errc::cluster_unavailable, "NATS " + to_string(nd().state()));
    }
    auto body = wire::encode(*core_->sys, msg, core_->opts.max_message_size);
    if (!body)
      return fail(cluster_errc::bad_message,
                  "cannot serialize the message (inspect, add_message_type, size): " + to_string(msg));
    if (!is_request) {
      header hs[1] = {{wire::op, "cast"}};
      if (nd().publish(core_->subject(name), {}, hs, *body))
        core_->counters.casts_out.fetch_add(1, std::memory_order_relaxed);
      else
        core_->counters.unavailable.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    pending_req r;
    r.kind = req_kind::call;
    r.rp = std::move(rp);
    r.name = name;
    auto token = add(std::move(r));
    header hs[1] = {{wire::op, "call"}};
    core_->counters.calls_out.fetch_add(1, std::memory_order_relaxed);
    if (!nd().publish(core_->subject(name), nd().inbox(core_->opts.reply_slot, token), hs, *body))
      if (auto p = pending_.take(token)) {
        core_->counters.unavailable.fetch_add(1, std::memory_order_relaxed);
        p->rp.deliver(make_error(cluster_errc::cluster_unavailable, "NATS refused the request"));
      }
  }

  void finish(pending_req& r, const message* m, cluster_errc failure) {
    if (r.kind != req_kind::call)
      return finish_claim(r, m, failure);
    if (!r.rp.pending())
      return;
    if (!m) {
      r.rp.deliver(make_error(failure, failure == cluster_errc::timeout
                                           ? "no answer for " + r.name + " in time"
                                           : std::string{"NATS unavailable"}));
      return;
    }
    auto status = m->header(wire::status).value_or("");
    if (m->no_responders() || status == "no_such_name") {
      core_->counters.no_such_name.fetch_add(1, std::memory_order_relaxed);
      r.rp.deliver(make_error(cluster_errc::no_such_name, "no node holds " + r.name));
      return;
    }
    if (status != "ok") {
      r.rp.deliver(
          make_error(cluster_errc::bad_message, "refused by the owning node: " + std::string{status} + " " +
                                                    std::string{m->header(wire::error).value_or("")}));
      return;
    }
    auto reply = wire::decode(*core_->sys, m->data());
    if (!reply) {
      core_->counters.bad_input.fetch_add(1, std::memory_order_relaxed);
      r.rp.deliver(make_error(cluster_errc::bad_message, "cannot deserialize the reply of " + r.name));
    } else if (reply->match_elements<caf::error>()) {
      r.rp.deliver(reply->get_as<caf::error>(0)); // the callee answered with an error
    } else {
      r.rp.deliver(std::move(*reply));
    }
  }

  // -- from the wire ---------------------------------------------------------------

  void inbound(const message& m) {
    auto name = core_->name_of(m);
    if (!name)
      return;
    auto op = m.header(wire::op).value_or("");
    if (op == "claim")
      return on_claim(*name, m);
    bool call = op == "call";
    if (call && m.reply().empty())
      return core_->bad_input("a call without a reply subject", m);
    auto i = entries_.find(*name);
    if (i == entries_.end() || i->second.ph != phase::owned) {
      // Released just now, or not registered yet: until its verification settles a
      // name takes no calls, so two claimants never both serve one.
      header hs[1] = {{wire::status, "no_such_name"}};
      core_->reply(m, hs);
      return;
    }
    auto msg = wire::decode(*core_->sys, m.data());
    if (!msg)
      return core_->bad_input("cannot deserialize the message (bad bytes or an unknown type name)", m);
    if (!call) {
      core_->counters.casts_in.fetch_add(1, std::memory_order_relaxed);
      anon_send(i->second.who, std::move(*msg));
      return;
    }
    core_->counters.calls_in.fetch_add(1, std::memory_order_relaxed);
    // No CAF timeout here: the caller has its own deadline, and a callee that dies
    // answers with an error (request_receiver_down).
    auto h = request(i->second.who, caf::infinite, std::move(*msg));
    caf::detail::behavior_impl::pointer on_reply =
        caf::make_counted<any_reply>([this, to = std::string{m.reply()}](caf::message x) { answer(to, x); });
    add_multiplexed_response_handler(h.id(), caf::behavior{on_reply});
  }

  void answer(const std::string& to, const caf::message& reply) {
    auto body = wire::encode(*core_->sys, reply, core_->opts.max_message_size);
    if (!body) {
      auto err = wire::encode(
          *core_->sys, caf::make_message(make_error(cluster_errc::bad_message, "cannot serialize the reply")),
          core_->opts.max_message_size);
      header hs[1] = {{wire::status, "ok"}};
      nd().publish(to, {}, hs, err.value_or(""));
      return;
    }
    header hs[1] = {{wire::status, "ok"}};
    nd().publish(to, {}, hs, *body);
  }

  std::shared_ptr<names::core> core_;
  std::unordered_map<std::string, entry> entries_;
  std::unordered_map<caf::actor_id, std::vector<std::string>> by_actor_;
  pending_requests<pending_req> pending_;
  caf::timespan tick_{};
  bool ticking_ = false;
  uint64_t last_reconnects_ = 0;
  bool was_connected_ = false;
  std::chrono::steady_clock::time_point next_verify_;
};

/// whereis() for a name this node does not hold: every message goes to the names
/// actor, which sends it over NATS (a request keeps its response id: delegated).
class name_proxy : public caf::event_based_actor {
public:
  name_proxy(caf::actor_config& cfg, caf::actor server, std::string name)
    : caf::event_based_actor(cfg), server_(std::move(server)), name_(std::move(name)) {}

  const char* name() const override { return "warren.cluster.name_proxy"; }

  caf::behavior make_behavior() override {
    set_default_handler([this](caf::scheduled_actor*, caf::message_view& x) -> caf::result<caf::message> {
      auto msg = x.move_content_to_message();
      if (current_mailbox_element()->mid.is_request()) {
        delegate(server_, forward_atom::value, name_, std::move(msg));
        return caf::delegated<caf::message>{};
      }
      send(server_, forward_atom::value, name_, std::move(msg));
      return caf::message{};
    });
    return {[](noop_atom) {}}; // an empty behavior would end the actor
  }

private:
  caf::actor server_;
  std::string name_;
};

} // namespace

names::names(caf::actor_system& sys, node& n, names_options opts) : core_(std::make_shared<core>()) {
  if (opts.reply_slot > 255)
    throw std::invalid_argument("cluster names: reply_slot must be 0-255");
  core_->sys = &sys;
  core_->nd = &n;
  core_->opts = std::move(opts);
  core_->prefix = n.opts().prefix + ".name";
  core_->target = wire::weak_target(core_, &core::on_message);
  core_->server = sys.spawn<names_server>(core_);
}

names::~names() {
  caf::scoped_actor self{*core_->sys};
  self->send_exit(core_->server, caf::exit_reason::user_shutdown);
  self->wait_for(core_->server);
}

caf::error names::register_name(const std::string& name, const caf::actor& who) {
  caf::scoped_actor self{*core_->sys};
  caf::error out;
  auto limit = 2 * core_->timeout() + core_->opts.claim_settle + std::chrono::seconds(5);
  self->request(core_->server, limit, register_name_atom::value, name, who)
      .receive([] {}, [&](caf::error& e) { out = std::move(e); });
  return out;
}

caf::error names::unregister_name(const std::string& name) {
  caf::scoped_actor self{*core_->sys};
  caf::error out;
  self->request(core_->server, std::chrono::seconds(10), unregister_name_atom::value, name)
      .receive([] {}, [&](caf::error& e) { out = std::move(e); });
  return out;
}

caf::actor names::whereis(const std::string& name) {
  if (name.empty())
    return {};
  {
    std::shared_lock<std::shared_mutex> guard{core_->mtx};
    if (auto i = core_->held.find(name); i != core_->held.end())
      return i->second;
  }
  return core_->sys->spawn<name_proxy>(core_->server, name);
}

std::vector<std::string> names::registered_names() const {
  std::shared_lock<std::shared_mutex> guard{core_->mtx};
  std::vector<std::string> out;
  for (auto& [name, who] : core_->held)
    out.push_back(name);
  return out;
}

caf::actor names::service() const {
  return core_->server;
}

const names_counters& names::counters() const {
  return core_->counters;
}

} // namespace warren::cluster
