// The process-wide feed behind warren/observe/tree_events.hpp: one mutex, the
// subscriptions, the timeline and the coalesced counts.
#include "warren/observe/tree_events.hpp"

#include <nlohmann/json.hpp>
#include <warren/wall_clock.hpp>

#include <algorithm>
#include <unordered_map>

namespace warren::observe {

namespace detail {
std::atomic<int> watchers{0};
} // namespace detail

std::string to_string(tree_event_kind x) {
  switch (x) {
    case tree_event_kind::started:
      return "started";
    case tree_event_kind::exited:
      return "exited";
    case tree_event_kind::removed:
      return "removed";
    case tree_event_kind::restarting:
      return "restarting";
    case tree_event_kind::backoff:
      return "backoff";
    case tree_event_kind::gave_up:
      return "gave_up";
    case tree_event_kind::counts:
      return "counts";
  }
  return "unknown";
}

std::string to_json(const tree_event& ev) {
  nlohmann::json j{{"seq", ev.seq},
                   {"kind", to_string(ev.kind)},
                   {"supervisor", ev.supervisor},
                   {"supervisor_id", ev.supervisor_id},
                   {"unix_ms", ev.unix_ms},
                   {"children", ev.children},
                   {"window", ev.window}};
  if (ev.kind != tree_event_kind::counts) {
    j["child"] = ev.child;
    j["child_actor"] = ev.child_actor;
    j["type"] = warren::to_string(ev.type);
    j["dynamic"] = ev.dynamic;
    j["restarts"] = ev.restarts;
    if (!ev.reason.empty())
      j["reason"] = ev.reason;
    if (ev.kind == tree_event_kind::backoff)
      j["delay_ms"] = ev.delay_ms;
  }
  return j.dump();
}

struct feed {
  std::mutex mtx;
  uint64_t seq = 0;
  std::vector<subscription*> subs;
  std::deque<tree_event> timeline;
  // Coalesced counts per supervisor actor id, not yet sent.
  std::unordered_map<uint64_t, tree_event> dirty;
  std::chrono::steady_clock::time_point last_flush{};
  uint64_t overflows = 0;

  static feed& get() {
    static feed f; // never destroyed before its users: function-local static
    return f;
  }

  void push_locked(subscription& s, const tree_event& ev) {
    if (s.overflowed_)
      return;
    if (s.queue_.size() >= s.limit_) {
      s.queue_.clear();
      s.overflowed_ = true;
      ++overflows;
      s.cv_.notify_one();
      return;
    }
    s.queue_.push_back(ev);
    s.cv_.notify_one();
  }

  void broadcast_locked(tree_event& ev) {
    ev.seq = ++seq;
    for (auto* s : subs)
      push_locked(*s, ev);
  }

  // force: before an event sent at once, so a watcher sees the counts that came first.
  void flush_counts_locked(std::chrono::steady_clock::time_point now, bool force = false) {
    if (dirty.empty() || (!force && now - last_flush < coalesce_interval))
      return;
    last_flush = now;
    for (auto& [aid, ev] : dirty)
      broadcast_locked(ev);
    dirty.clear();
  }
};

void publish(tree_event ev) {
  bool keep = always_kept(ev.kind);
  if (!keep && !watched())
    return;
  ev.unix_ms = warren::unix_ms();
  auto& f = feed::get();
  std::lock_guard<std::mutex> guard{f.mtx};
  if (ev.dynamic && (ev.kind == tree_event_kind::started || ev.kind == tree_event_kind::removed)) {
    if (f.subs.empty())
      return;
    // Folded into the supervisor's counts: the latest values win.
    tree_event c;
    c.kind = tree_event_kind::counts;
    c.supervisor = ev.supervisor;
    c.supervisor_id = ev.supervisor_id;
    c.children = ev.children;
    c.window = ev.window;
    c.unix_ms = ev.unix_ms;
    f.dirty[ev.supervisor] = std::move(c);
    return;
  }
  // Counts coalesced earlier go first: they happened before this event.
  f.flush_counts_locked(std::chrono::steady_clock::now(), true);
  if (!f.subs.empty() || keep)
    f.broadcast_locked(ev);
  if (keep) {
    if (f.timeline.size() >= timeline_size)
      f.timeline.pop_front();
    f.timeline.push_back(std::move(ev));
  }
}

std::vector<tree_event> timeline() {
  auto& f = feed::get();
  std::lock_guard<std::mutex> guard{f.mtx};
  return {f.timeline.begin(), f.timeline.end()};
}

std::shared_ptr<subscription> subscribe(std::size_t limit) {
  auto& f = feed::get();
  std::lock_guard<std::mutex> guard{f.mtx};
  std::shared_ptr<subscription> s{new subscription{f.seq, std::max<std::size_t>(limit, 1)}};
  f.subs.push_back(s.get());
  detail::watchers.fetch_add(1, std::memory_order_relaxed);
  return s;
}

subscription::~subscription() {
  auto& f = feed::get();
  std::lock_guard<std::mutex> guard{f.mtx};
  std::erase(f.subs, this);
  detail::watchers.fetch_sub(1, std::memory_order_relaxed);
  if (f.subs.empty())
    f.dirty.clear();
}

bool subscription::next(std::vector<tree_event>& out, std::chrono::milliseconds wait) {
  auto& f = feed::get();
  std::unique_lock<std::mutex> lock{f.mtx};
  auto until = std::chrono::steady_clock::now() + wait;
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    f.flush_counts_locked(now);
    if (overflowed_)
      return false;
    if (!queue_.empty() || woken_ || now >= until)
      break;
    // Wake for the next coalesced flush if counts are waiting.
    auto deadline = until;
    if (!f.dirty.empty())
      deadline = std::min(deadline, f.last_flush + coalesce_interval);
    cv_.wait_until(lock, std::max(deadline, now + std::chrono::milliseconds(1)));
  }
  woken_ = false;
  out.insert(out.end(), std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
  queue_.clear();
  return true;
}

uint64_t subscription::resync() {
  auto& f = feed::get();
  std::lock_guard<std::mutex> guard{f.mtx};
  overflowed_ = false;
  queue_.clear();
  start_ = f.seq;
  return start_;
}

void subscription::wake() {
  auto& f = feed::get();
  std::lock_guard<std::mutex> guard{f.mtx};
  woken_ = true;
  cv_.notify_one();
}

uint64_t subscription::overflows() {
  auto& f = feed::get();
  std::lock_guard<std::mutex> guard{f.mtx};
  return f.overflows;
}

} // namespace warren::observe
