// The supervision tree's event feed: what a live view (warren/observer) streams
// after its snapshot. Supervisors publish here; watchers subscribe.
//
// Cost when nobody watches: a supervisor checks one relaxed atomic and builds
// nothing, except for restarts, backoff timers and give-ups, which are always kept
// in a short timeline (they are rare by construction: restart intensity bounds them)
// so a page opened after a restart storm still shows it.
//
// Every event carries absolute values (restart count, restarts in the window,
// children), so a watcher can apply an event twice without harm: that is what lets
// it take the snapshot after subscribing and apply the events it overlaps.
//
// Starts and ends of dynamic children (simple_one_for_one, e.g. one per connection)
// are not sent one by one: they set the supervisor's counts, which are sent as one
// `counts` event per supervisor at most every coalesce interval. Restarts of
// dynamic children are sent one by one.
#pragma once

#include "warren/child_spec.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace warren::observe {

enum class tree_event_kind : uint8_t {
  started,    ///< a child is running (started or restarted); child_actor is its new actor
  exited,     ///< a child stopped and is kept (transient normal exit, terminate_child)
  removed,    ///< a child and its spec are gone (temporary, delete_child, dynamic end)
  restarting, ///< a child exited abnormally (or failed to start) and is being restarted
  backoff,    ///< a restart is delayed: delay_ms until it runs
  gave_up,    ///< the supervisor reached its restart intensity and shuts down
  counts,     ///< coalesced: the supervisor's children and active counts changed
};

std::string to_string(tree_event_kind x);

struct tree_event {
  uint64_t seq = 0; ///< set by publish: consecutive for every subscriber
  tree_event_kind kind = tree_event_kind::started;
  uint64_t supervisor = 0;   ///< the supervisor's actor id
  std::string supervisor_id; ///< its child id in its parent
  std::string child;         ///< child id (the template's id for a dynamic child)
  uint64_t child_actor = 0;  ///< started: the new actor; otherwise the one that ended (0: none)
  child_type type = child_type::worker;
  bool dynamic = false;  ///< a simple_one_for_one child
  std::string reason;    ///< exit reason (restarting, gave_up, exited, removed)
  uint64_t restarts = 0; ///< the child's restart count after this event
  uint64_t window = 0;   ///< restarts inside the supervisor's current intensity period
  int64_t delay_ms = 0;  ///< backoff: time until the restart
  int64_t unix_ms = 0;   ///< set by publish
  uint64_t children = 0; ///< the supervisor's children after this event
};

/// {"seq":..,"kind":..,...} (one line, no newline).
std::string to_json(const tree_event& ev);

/// True when an event of this kind is kept even with nobody watching (the timeline).
constexpr bool always_kept(tree_event_kind k) noexcept {
  return k == tree_event_kind::restarting || k == tree_event_kind::backoff || k == tree_event_kind::gave_up;
}

namespace detail {
extern std::atomic<int> watchers;
} // namespace detail

/// True while at least one subscription is open.
inline bool watched() noexcept {
  return detail::watchers.load(std::memory_order_relaxed) > 0;
}

/// Hands an event to every subscription (and to the timeline if always_kept). Cheap
/// to call when nobody watches: see watched().
void publish(tree_event ev);

/// The last restarts, backoffs and give-ups, oldest first (at most timeline_size).
std::vector<tree_event> timeline();
constexpr std::size_t timeline_size = 256;

/// One watcher's queue of events. Thread-safe; one reader.
class subscription {
public:
  /// The last seq published before this subscription opened: its first event is seq()+1.
  uint64_t first_seq() const noexcept { return start_; }

  /// Waits up to `wait` for events and moves them into `out`. Returns false when the
  /// queue overflowed (more than `limit` unread events, a slow reader): the events
  /// were dropped, and the watcher must start over with a new snapshot from
  /// resync_seq(). Also returns early (true, maybe empty) after wake().
  bool next(std::vector<tree_event>& out, std::chrono::milliseconds wait);

  /// After an overflow: the seq to take a new snapshot at; clears the overflow.
  uint64_t resync();

  /// Makes a waiting next() return (e.g. to stop a stream).
  void wake();

  ~subscription();
  subscription(const subscription&) = delete;
  subscription& operator=(const subscription&) = delete;

  /// Events dropped because this reader was slow (all subscriptions, since start).
  static uint64_t overflows();

private:
  friend struct feed; // the process-wide feed (tree_events.cpp)
  friend std::shared_ptr<subscription> subscribe(std::size_t limit);
  subscription(uint64_t start, std::size_t limit) : start_(start), limit_(limit) {}

  uint64_t start_;
  std::size_t limit_;
  std::deque<tree_event> queue_; // guarded by the feed's mutex
  bool overflowed_ = false;
  bool woken_ = false;
  std::condition_variable cv_;
};

/// Opens a subscription that holds at most `limit` unread events.
std::shared_ptr<subscription> subscribe(std::size_t limit = 4096);

/// How often coalesced counts are sent at most.
constexpr std::chrono::milliseconds coalesce_interval{200};

} // namespace warren::observe
