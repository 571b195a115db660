// What a supervisor tells observers: its events (warren/observe/tree_events.hpp)
// and its node of a tree dump. Kept apart from supervisor_actor.cpp, which holds
// the OTP semantics; these only read the supervisor's state.
#include "supervisor_actor.hpp"

#include "warren/exit.hpp"

namespace warren::detail {

uint64_t supervisor_actor::restarts_in_window() {
  // add_restart prunes lazily; count only the restarts still inside the period.
  auto t = now();
  uint64_t n = 0;
  for (auto& at : restarts_)
    n += at + flags_.period >= t ? 1 : 0;
  return n;
}

void supervisor_actor::notify(observe::tree_event_kind kind, const std::string& child, caf::actor_id actor,
                              uint64_t restarts, bool dynamic, const caf::error& reason,
                              caf::timespan delay) {
  if (!observe::watched() && !observe::always_kept(kind))
    return; // nobody watches: build nothing
  observe::tree_event ev;
  ev.kind = kind;
  ev.supervisor = id();
  ev.supervisor_id = id_;
  ev.child = child;
  ev.child_actor = actor;
  ev.dynamic = dynamic;
  ev.children = simple() ? dyn_.size() : children_.size();
  if (dynamic)
    ev.type = template_.type;
  else if (auto idx = find(child)) {
    ev.type = children_[*idx].spec.type;
    if (kind == observe::tree_event_kind::removed)
      ev.children = children_.size() - 1; // told just before its spec is erased
  }
  if (reason)
    ev.reason = describe_exit(reason);
  ev.restarts = restarts;
  ev.window = restarts_in_window();
  ev.delay_ms = std::chrono::duration_cast<std::chrono::milliseconds>(delay).count();
  observe::publish(std::move(ev));
}

std::vector<std::pair<size_t, caf::actor>> supervisor_actor::describe(tree_node& root) {
  root.id = id_;
  root.actor_id = id();
  root.type = child_type::supervisor;
  root.strategy = to_string(flags_.strategy);
  root.intensity = flags_.intensity;
  root.period_ms = std::chrono::duration_cast<std::chrono::milliseconds>(flags_.period).count();
  root.restarts_in_window = restarts_in_window();
  root.auto_shutdown = to_string(flags_.auto_shutdown);
  auto t = now();
  auto left = [&](uint64_t token, time_point due) -> int64_t {
    if (token == 0 || due == time_point{})
      return -1;
    return std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(due - t).count());
  };
  std::vector<std::pair<size_t, caf::actor>> subs;
  auto add = [&](tree_node n, const caf::actor& handle) {
    if (n.type == child_type::supervisor && handle)
      subs.emplace_back(root.children.size(), handle);
    root.children.push_back(std::move(n));
  };
  if (simple()) {
    root.children.reserve(dyn_.size());
    for (auto& [key, d] : dyn_) {
      tree_node n;
      n.actor_id = d.handle ? d.handle.id() : 0;
      n.type = template_.type;
      n.restart = template_.restart;
      n.state = d.state;
      n.restarts = d.restarts;
      n.backoff_ms = d.state == status::restarting ? left(d.token, d.due) : -1;
      add(std::move(n), d.handle);
    }
    return subs;
  }
  root.children.reserve(children_.size());
  for (auto i = children_.rbegin(); i != children_.rend(); ++i) { // as which_children: newest first
    tree_node n;
    n.id = i->spec.id;
    n.actor_id = i->handle ? i->handle.id() : 0;
    n.type = i->spec.type;
    n.restart = i->spec.restart;
    n.state = i->state;
    n.restarts = i->restarts;
    n.significant = i->spec.significant;
    n.backoff_ms = i->state == status::restarting ? left(i->token, i->due) : -1;
    add(std::move(n), i->handle);
  }
  return subs;
}

} // namespace warren::detail
