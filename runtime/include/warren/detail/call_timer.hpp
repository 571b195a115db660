// The deadlines of an event-based actor's pending calls (async_call(...).then), kept by
// the calling actor itself instead of CAF's clock thread.
//
// CAF 0.17 registers every request timeout with its clock thread (a locked tree insert
// and a condition-variable wake-up per request) and never cancels one: five seconds
// later the clock delivers a timeout nobody waits for. With OTP's default 5 s timeout
// that made a call round trip 2-3x slower (docs/benchmarks.md). Here each calling actor
// has one call_timer: an indexed min-heap of (deadline, call) in vectors reused from call
// to call (no allocation per call once they have grown), and one CAF timeout (a "tick")
// armed only when the earliest deadline moves earlier than every tick already armed.
// Calls with the same timeout have growing deadlines, so a stream of default calls arms
// one tick per timeout period, whatever the call rate.
//
// A tick is a request timeout for a request id of the timer's own, answered by a response
// handler of the actor's (CAF's usual path for a timeout). When it fires, every call
// whose deadline has passed gets caf::sec::request_timeout as its answer, in deadline
// order (ties in call order): the same answer CAF's own timeout gives, so the call's
// error handler runs and CAF drops the reply should it come later. A call that completes
// first (reply or error) removes its deadline.
//
// A tick is a pending response handler, and CAF keeps an actor alive while it has one.
// So that an actor living on responses alone (no behaviour) still ends when its last
// call completes, as it would with CAF's timeouts, the timer then answers its own ticks
// at once (they do nothing) instead of leaving them for the clock.
//
// Only the calling actor touches its timer (from its handlers); the timer is found
// through a registry keyed by the actor and freed when the actor exits.
#pragma once

#include <caf/actor_clock.hpp>
#include <caf/message_id.hpp>
#include <caf/scheduled_actor.hpp>

#include <cstdint>
#include <vector>

namespace warren::detail {

class call_timer {
public:
  using time_point = caf::actor_clock::time_point;

  /// Identifies one registered deadline; stale once the call completed or timed out.
  struct handle {
    uint32_t slot = 0;
    uint32_t generation = 0;
  };

  explicit call_timer(caf::scheduled_actor* owner) noexcept : owner_(owner) {}

  /// The timer of `self`, created by its first timed call.
  static call_timer& of(caf::scheduled_actor* self);

  /// Registers the call whose answer carries `response_id`, due at `due`.
  handle add(caf::message_id response_id, time_point due);

  /// Forgets a call's deadline (it completed); a no-op for a stale handle.
  void remove(handle h) noexcept;

  /// Calls waiting for their deadline.
  size_t pending() const noexcept { return heap_.size(); }
  /// Ticks armed with CAF's clock and not fired yet.
  size_t armed_ticks() const noexcept { return ticks_.size(); }

private:
  static constexpr uint32_t not_in_heap = UINT32_MAX;

  struct slot {
    time_point due;
    uint64_t seq = 0; // call order, breaks ties between equal deadlines
    caf::message_id response_id;
    uint32_t generation = 0;
    uint32_t pos = not_in_heap; // index in heap_
  };

  bool before(uint32_t a, uint32_t b) const noexcept {
    auto& x = slots_[a];
    auto& y = slots_[b];
    return x.due < y.due || (x.due == y.due && x.seq < y.seq);
  }
  void place(uint32_t pos, uint32_t s) noexcept {
    heap_[pos] = s;
    slots_[s].pos = pos;
  }
  void sift_up(uint32_t pos) noexcept;
  void sift_down(uint32_t pos) noexcept;
  void erase_at(uint32_t pos) noexcept;
  void release(uint32_t s);

  struct tick {
    time_point due;
    caf::message_id response_id;
  };

  void arm(time_point due);
  void fire(time_point due);
  void disarm();

  caf::scheduled_actor* owner_;
  std::vector<slot> slots_;
  std::vector<uint32_t> free_;
  std::vector<uint32_t> heap_;
  std::vector<tick> ticks_; // the armed ticks, by due time
  uint64_t next_seq_ = 0;
};

} // namespace warren::detail
