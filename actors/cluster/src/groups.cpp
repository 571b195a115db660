// Cluster-wide process groups (groups.hpp). State is a map under one mutex: joins and
// broadcasts come from any thread and never wait on the network; exits arrive through
// an attachable on each member (as in the runtime's local registry).
#include <warren/cluster/claim.hpp>
#include <warren/cluster/groups.hpp>
#include <warren/cluster/subject.hpp>
#include <warren/log.hpp>

#include "wire.hpp"

#include <caf/abstract_actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/send.hpp>

#include <algorithm>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

namespace warren::cluster {

struct groups::core : std::enable_shared_from_this<groups::core> {
  caf::actor_system* sys = nullptr;
  node* nd = nullptr;
  groups_options opts;
  std::string prefix; ///< "<prefix>.grp"
  groups_counters counters;
  log_limit bad_log{std::chrono::seconds(10)};
  const sub_target* target = nullptr;

  struct group_state {
    std::vector<caf::actor> members; ///< once per join
    subscription sub;
  };
  mutable std::mutex mtx;
  std::unordered_map<std::string, group_state> groups;
  std::unordered_set<caf::actor_id> watched; ///< members with an exit watcher

  std::string subject(std::string_view group) const { return subject_for(prefix, group); }

  /// The distinct members of `group`, copied (sends happen outside the lock).
  std::vector<caf::actor> distinct(const std::string& group) const {
    std::vector<caf::actor> out;
    std::lock_guard<std::mutex> guard{mtx};
    if (auto i = groups.find(group); i != groups.end())
      for (auto& a : i->second.members)
        if (std::find(out.begin(), out.end(), a) == out.end())
          out.push_back(a);
    return out;
  }

  std::size_t fan_out(const std::string& group, const caf::message& msg) {
    auto to = distinct(group);
    for (auto& a : to)
      caf::anon_send(a, msg);
    counters.delivered.fetch_add(to.size(), std::memory_order_relaxed);
    return to.size();
  }

  void bad_input(std::string_view why, const message& m) {
    counters.bad_input.fetch_add(1, std::memory_order_relaxed);
    if (uint64_t held = 0; bad_log.allow(held))
      log().warn("cluster groups: dropped a message on {}: {} ({} more since the last report)", m.subject(),
                 why, held);
  }

  /// On a libnats delivery thread: a broadcast, or a members query (a reply subject).
  void on_message(message m) {
    auto s = m.subject();
    auto group = decode_token(s.substr(std::min(s.size(), prefix.size() + 1)));
    if (!group)
      return bad_input("not a valid group token", m);
    if (!m.reply().empty()) {
      std::size_t n = 0;
      {
        std::lock_guard<std::mutex> guard{mtx};
        if (auto i = groups.find(*group); i != groups.end())
          n = i->second.members.size();
      }
      if (n > 0)
        nd->publish(std::string{m.reply()}, {}, {}, nd->name() + ";" + std::to_string(n));
      return;
    }
    if (m.data().size() > opts.max_message_size)
      return bad_input("larger than max_message_size", m);
    auto msg = wire::decode(*sys, m.data());
    if (!msg)
      return bad_input("cannot deserialize the message (bad bytes or an unknown type name)", m);
    counters.broadcasts_in.fetch_add(1, std::memory_order_relaxed);
    fan_out(*group, *msg);
  }

  /// Called when a member exits: every membership of `id` goes.
  void forget(caf::actor_id id) {
    std::vector<subscription> drop; // unsubscribed outside the lock
    {
      std::lock_guard<std::mutex> guard{mtx};
      watched.erase(id);
      for (auto i = groups.begin(); i != groups.end();) {
        std::erase_if(i->second.members, [id](const caf::actor& a) { return a.id() == id; });
        if (i->second.members.empty()) {
          drop.push_back(std::move(i->second.sub));
          i = groups.erase(i);
        } else {
          ++i;
        }
      }
    }
  }
};

groups::groups(caf::actor_system& sys, node& n, groups_options opts) : core_(std::make_shared<core>()) {
  core_->sys = &sys;
  core_->nd = &n;
  core_->opts = std::move(opts);
  core_->prefix = n.opts().prefix + ".grp";
  core_->target = wire::weak_target(core_, &core::on_message);
}

groups::~groups() {
  std::unordered_map<std::string, core::group_state> gone;
  std::lock_guard<std::mutex> guard{core_->mtx};
  gone.swap(core_->groups); // unsubscribes every group (exit watchers find nothing)
  core_->watched.clear();
}

caf::error groups::join(const std::string& group, const caf::actor& who) {
  if (group.empty() || !who)
    return make_error(cluster_errc::invalid_argument, "an empty group or a null actor");
  bool watch = false;
  {
    std::lock_guard<std::mutex> guard{core_->mtx};
    auto& g = core_->groups[group];
    if (g.members.empty()) {
      g.sub = core_->nd->subscribe(core_->subject(group), core_->target);
      if (!g.sub) {
        core_->groups.erase(group);
        return make_error(cluster_errc::cluster_unavailable, "NATS refused the subscription");
      }
    }
    g.members.push_back(who);
    watch = core_->watched.insert(who.id()).second;
  }
  // Outside the lock: attaching to an actor that is gone already runs the watcher at once.
  if (watch)
    caf::actor_cast<caf::abstract_actor*>(who)->attach_functor(
        [w = std::weak_ptr<core>{core_}, id = who.id()] {
          if (auto c = w.lock())
            c->forget(id);
        });
  return {};
}

caf::error groups::leave(const std::string& group, const caf::actor& who) {
  subscription drop;
  std::lock_guard<std::mutex> guard{core_->mtx};
  auto i = core_->groups.find(group);
  if (i == core_->groups.end())
    return make_error(cluster_errc::not_joined, group);
  auto& ms = i->second.members;
  auto j = std::find(ms.begin(), ms.end(), who);
  if (j == ms.end())
    return make_error(cluster_errc::not_joined, group);
  ms.erase(j);
  if (ms.empty()) {
    drop = std::move(i->second.sub);
    core_->groups.erase(i);
  }
  return {};
}

caf::error groups::broadcast(const std::string& group, const caf::message& msg) {
  if (group.empty())
    return make_error(cluster_errc::invalid_argument, "an empty group");
  auto body = wire::encode(*core_->sys, msg, core_->opts.max_message_size);
  if (!body)
    return make_error(cluster_errc::bad_message,
                      "cannot serialize the message (inspect, add_message_type, size): " + to_string(msg));
  core_->fan_out(group, msg);
  if (!core_->nd->publish(core_->subject(group), {}, {}, *body)) {
    core_->counters.unavailable.fetch_add(1, std::memory_order_relaxed);
    return make_error(cluster_errc::cluster_unavailable, "NATS " + to_string(core_->nd->state()));
  }
  core_->counters.broadcasts_out.fetch_add(1, std::memory_order_relaxed);
  return {};
}

std::vector<caf::actor> groups::local_members(const std::string& group) const {
  std::lock_guard<std::mutex> guard{core_->mtx};
  auto i = core_->groups.find(group);
  return i == core_->groups.end() ? std::vector<caf::actor>{} : i->second.members;
}

std::vector<std::string> groups::which_groups() const {
  std::lock_guard<std::mutex> guard{core_->mtx};
  std::vector<std::string> out;
  for (auto& [name, g] : core_->groups)
    out.push_back(name);
  return out;
}

std::vector<group_node> groups::members(const std::string& group) {
  std::vector<group_node> out;
  if (auto n = local_members(group).size(); n > 0)
    out.push_back({core_->nd->name(), n});
  for (auto& m :
       core_->nd->gather(core_->subject(group), {}, core_->opts.gather_window, core_->opts.max_nodes)) {
    auto d = m.data();
    auto semi = d.rfind(';');
    auto count = semi == std::string_view::npos ? std::nullopt : parse_u64(d.substr(semi + 1));
    if (!count || semi == 0) {
      core_->counters.bad_input.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    out.push_back({std::string{d.substr(0, semi)}, static_cast<std::size_t>(*count)});
  }
  return out;
}

const groups_counters& groups::counters() const {
  return core_->counters;
}

} // namespace warren::cluster
