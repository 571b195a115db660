#include "warren/detail/call_timer.hpp"

#include <caf/actor_control_block.hpp>
#include <caf/attachable.hpp>
#include <caf/behavior.hpp>
#include <caf/error.hpp>
#include <caf/sec.hpp>

#include <algorithm>
#include <array>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace warren::detail {

namespace {

// Every calling actor's timer, keyed by its control block (unique among live actors),
// in shards so that actors on different threads rarely share a lock. The lock guards
// the maps only: a timer itself is used by its actor alone.
class timer_registry {
public:
  call_timer& get(caf::scheduled_actor* self) {
    auto* key = self->ctrl();
    auto& sh = shard_of(key);
    {
      std::lock_guard<std::mutex> guard{sh.mtx};
      if (auto i = sh.timers.find(key); i != sh.timers.end())
        return *i->second;
    }
    // First timed call of this actor: create its timer and free it when it exits.
    auto timer = std::make_unique<call_timer>(self);
    auto& ref = *timer;
    {
      std::lock_guard<std::mutex> guard{sh.mtx};
      sh.timers.emplace(key, std::move(timer));
    }
    self->attach(std::make_unique<remover>(this, key));
    return ref;
  }

private:
  struct shard {
    std::mutex mtx;
    std::unordered_map<const caf::actor_control_block*, std::unique_ptr<call_timer>> timers;
  };

  // Erases the actor's timer when it exits (after its last handler ran).
  class remover final : public caf::attachable {
  public:
    remover(timer_registry* reg, const caf::actor_control_block* key) : reg_(reg), key_(key) {}
    void actor_exited(const caf::error&, caf::execution_unit*) override { reg_->erase(key_); }

  private:
    timer_registry* reg_;
    const caf::actor_control_block* key_;
  };

  void erase(const caf::actor_control_block* key) {
    std::unique_ptr<call_timer> doomed; // destroyed outside the lock
    auto& sh = shard_of(key);
    std::lock_guard<std::mutex> guard{sh.mtx};
    if (auto i = sh.timers.find(key); i != sh.timers.end()) {
      doomed = std::move(i->second);
      sh.timers.erase(i);
    }
  }

  shard& shard_of(const caf::actor_control_block* key) {
    return shards_[std::hash<const void*>{}(key) % shards_.size()];
  }

  std::array<shard, 64> shards_;
};

timer_registry& registry() {
  static auto* reg = new timer_registry; // never destroyed: actors may exit during static teardown
  return *reg;
}

} // namespace

call_timer& call_timer::of(caf::scheduled_actor* self) {
  return registry().get(self);
}

call_timer::handle call_timer::add(caf::message_id response_id, time_point due) {
  uint32_t s;
  if (!free_.empty()) {
    s = free_.back();
    free_.pop_back();
  } else {
    s = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  auto& x = slots_[s];
  x.due = due;
  x.seq = next_seq_++;
  x.response_id = response_id;
  heap_.push_back(s);
  x.pos = static_cast<uint32_t>(heap_.size() - 1);
  sift_up(x.pos);
  if (ticks_.empty() || due < ticks_.front().due)
    arm(due);
  return {s, x.generation};
}

void call_timer::remove(handle h) noexcept {
  if (h.slot >= slots_.size())
    return;
  auto& x = slots_[h.slot];
  if (x.generation != h.generation || x.pos == not_in_heap)
    return;
  erase_at(x.pos);
  release(h.slot);
  if (heap_.empty() && !owner_->has_behavior())
    disarm(); // nothing else may keep this actor alive
}

void call_timer::sift_up(uint32_t pos) noexcept {
  auto s = heap_[pos];
  while (pos > 0) {
    auto parent = (pos - 1) / 2;
    if (!before(s, heap_[parent]))
      break;
    place(pos, heap_[parent]);
    pos = parent;
  }
  place(pos, s);
}

void call_timer::sift_down(uint32_t pos) noexcept {
  auto n = static_cast<uint32_t>(heap_.size());
  auto s = heap_[pos];
  for (;;) {
    auto child = 2 * pos + 1;
    if (child >= n)
      break;
    if (child + 1 < n && before(heap_[child + 1], heap_[child]))
      ++child;
    if (!before(heap_[child], s))
      break;
    place(pos, heap_[child]);
    pos = child;
  }
  place(pos, s);
}

void call_timer::erase_at(uint32_t pos) noexcept {
  auto last = heap_.back();
  heap_.pop_back();
  if (pos == heap_.size())
    return;
  place(pos, last);
  if (pos > 0 && before(last, heap_[(pos - 1) / 2]))
    sift_up(pos);
  else
    sift_down(pos);
}

void call_timer::release(uint32_t s) {
  auto& x = slots_[s];
  x.pos = not_in_heap;
  ++x.generation;
  free_.push_back(s);
}

void call_timer::arm(time_point due) {
  // The tick is a request of the timer's own that nobody answers: CAF's clock delivers
  // request_timeout for it at `due`, to the handler below (this timer lives as long
  // as the actor, which alone runs that handler).
  auto rid = owner_->new_request_id(caf::message_priority::normal).response_id();
  owner_->add_multiplexed_response_handler(rid, caf::behavior{[this, due](caf::error&) { fire(due); }});
  owner_->clock().set_request_timeout(due, owner_, rid);
  auto later = [](const tick& a, const tick& b) { return a.due < b.due; };
  tick t{due, rid};
  ticks_.insert(std::upper_bound(ticks_.begin(), ticks_.end(), t, later), t);
}

void call_timer::fire(time_point due) {
  auto i = std::find_if(ticks_.begin(), ticks_.end(), [due](const tick& t) { return t.due == due; });
  if (i == ticks_.end())
    return; // answered by disarm()
  ticks_.erase(i);
  auto now = owner_->clock().now();
  while (!heap_.empty() && slots_[heap_.front()].due <= now) {
    auto s = heap_.front();
    auto rid = slots_[s].response_id;
    erase_at(0);
    release(s);
    // The call's answer, as CAF's own request timeout gives it.
    owner_->eq_impl(rid, nullptr, owner_->context(), caf::make_error(caf::sec::request_timeout));
  }
  if (!heap_.empty()) {
    auto next = slots_[heap_.front()].due;
    if (ticks_.empty() || next < ticks_.front().due)
      arm(next);
  }
}

void call_timer::disarm() {
  // Answering a tick removes its handler; the clock's own answer later finds none.
  for (auto& t : ticks_)
    owner_->eq_impl(t.response_id, nullptr, owner_->context(), caf::make_error(caf::sec::request_timeout));
  ticks_.clear();
}

} // namespace warren::detail
