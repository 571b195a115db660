#include "warren/detail/call_watch.hpp"

#include <caf/abstract_actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_control_block.hpp>
#include <caf/intrusive/task_result.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/make_message.hpp>

#include <memory>

namespace warren::detail {

namespace {

class call_watch final : public caf::attachable {
public:
  // Any number not used by CAF's own attachables (0..3).
  static constexpr size_t token_type = 0x77617263; // "warc"

  call_watch(caf::weak_actor_ptr caller, caf::message_id response_id)
    : caller_(std::move(caller)), response_id_(response_id) {}

  void actor_exited(const caf::error& reason, caf::execution_unit* host) override {
    if (auto caller = caf::actor_cast<caf::strong_actor_ptr>(caller_))
      caller->enqueue(nullptr, response_id_, caf::make_message(server_exited(reason)), host);
  }

  bool matches(const token& what) override { return what.subtype == token_type && what.ptr == this; }

private:
  caf::weak_actor_ptr caller_;
  caf::message_id response_id_;
};

// Answers each request of a drained mailbox (a queue visitor, like CAF's
// sync_request_bouncer, which answers request_receiver_down instead).
struct exit_bouncer {
  const caf::error& reason;
  caf::execution_unit* host;

  // Nested queues prefix the element with (key, queue) pairs.
  template <class Key, class Queue, class... Ts>
  caf::intrusive::task_result operator()(const Key&, const Queue&, Ts&... xs) const {
    return (*this)(xs...);
  }

  caf::intrusive::task_result operator()(caf::mailbox_element& x) const {
    if (x.sender && x.mid.is_request())
      x.sender->enqueue(nullptr, x.mid.response_id(), caf::make_message(server_exited(reason)), host);
    return caf::intrusive::task_result::resume;
  }
};

} // namespace

const void* watch_server(const caf::actor& server, caf::local_actor* caller, caf::message_id response_id) {
  auto watch = std::make_unique<call_watch>(caf::weak_actor_ptr{caller->ctrl()}, response_id);
  const void* token = watch.get();
  caf::actor_cast<caf::abstract_actor*>(server)->attach(std::move(watch));
  return token;
}

void unwatch_server(const caf::actor& server, const void* token) noexcept {
  if (server && token != nullptr)
    caf::actor_cast<caf::abstract_actor*>(server)->detach(
        caf::attachable::token{call_watch::token_type, token});
}

void bounce_queued_requests(caf::scheduled_actor& self, const caf::error& reason, caf::execution_unit* host) {
  auto& box = self.mailbox();
  if (box.closed())
    return;
  box.close();
  self.get_normal_queue().flush_cache();
  self.get_urgent_queue().flush_cache();
  exit_bouncer bounce{reason, host};
  while (box.queue().new_round(1000, bounce).consumed_items)
    ; // until empty
}

const caf::abstract_actor*& running_behaviour() noexcept {
  thread_local const caf::abstract_actor* ptr = nullptr;
  return ptr;
}

} // namespace warren::detail
