// How a call watches its server (gen_server:call's monitor): right after the request
// goes out, the caller attaches a small attachable to the server that, should the server
// exit first, answers the pending request with call_errc::exited and the exit reason.
// Whatever arrives first, the reply, a timeout or that answer, completes the call;
// the caller then detaches the watch (and, for an event-based caller's then(), drops
// the call's deadline from its call_timer, warren/detail/call_timer.hpp). A duplicate answer (the server
// exited between replying and the detach) is dropped by an event-based caller, as CAF drops every response
// nobody waits for; a blocking caller skips it, as it does a late reply. The watch holds the caller weakly.
//
// Cost per call: one heap allocation (the attachable), the server's attachables lock
// taken twice (attach, detach; detach scans that list, which holds one entry per
// pending watched call, link and monitor), and a weak reference on the caller.
//
// Calls still queued when a Warren behaviour dies never got to the watch's turn: CAF
// bounces them first. bounce_queued_requests, run from the behaviour's cleanup,
// answers them with the exit reason too.
#pragma once

#include "warren/call_error.hpp"
#include "warren/detail/call_timer.hpp"

#include <caf/actor.hpp>
#include <caf/actor_clock.hpp>
#include <caf/attachable.hpp>
#include <caf/duration.hpp>
#include <caf/local_actor.hpp>
#include <caf/message.hpp>
#include <caf/message_id.hpp>
#include <caf/scheduled_actor.hpp>
#include <caf/sec.hpp>

#include <type_traits>
#include <utility>

namespace warren::detail {

/// Attaches a watch for the request whose answer will carry `response_id`. Returns
/// the token for unwatch().
const void* watch_server(const caf::actor& server, caf::local_actor* caller, caf::message_id response_id);

/// Detaches a watch (a no-op once the server exited).
void unwatch_server(const caf::actor& server, const void* token) noexcept;

/// In a dying behaviour actor's cleanup: closes its mailbox and answers every
/// request still queued with call_errc::exited carrying `reason`.
void bounce_queued_requests(caf::scheduled_actor& self, const caf::error& reason, caf::execution_unit* host);

/// The behaviour actor running on this thread (set while Warren's behaviours handle
/// messages): lets a blocking call from inside a server to itself fail with calling_self.
const caf::abstract_actor*& running_behaviour() noexcept;

/// A watched request just sent: its response handle, the watch's token (null when the
/// request never went out) and the id its answer carries.
template <class Handle>
struct watched {
  Handle hdl;
  const void* token;
  caf::message_id response_id;
  bool sent;
};

/// Sends `msg` to `dest` as a request from `self`, watched; the caller sets its timeout
/// (arm_call_timeout). Errors that are known before sending (null handle, calling
/// oneself) arrive as the answer, as CAF does for a null handle.
template <class Self>
auto watched_request(Self* self, const caf::actor& dest, caf::message msg) {
  using handle_type = decltype(self->request(dest, caf::duration{}, std::move(msg)));
  auto req_id = self->new_request_id(caf::message_priority::normal);
  auto rid = req_id.response_id();
  const void* token = nullptr;
  bool sent = false;
  if (!dest) {
    self->eq_impl(rid, self->ctrl(), self->context(), caf::make_error(caf::sec::invalid_argument));
  } else if (dest->ctrl() == self->ctrl()) {
    self->eq_impl(rid, self->ctrl(), self->context(), make_error(call_errc::calling_self));
  } else {
    // Send first, then watch: a server already dead bounces the request with
    // request_receiver_down (OTP's noproc) before the watch can fire.
    dest->enqueue(caf::strong_actor_ptr{self->ctrl()}, req_id, std::move(msg), self->context());
    token = watch_server(dest, self, rid);
    sent = true;
  }
  return watched<handle_type>{handle_type{rid, self}, token, rid, sent};
}

/// CAF's own request timeout (its clock thread) for the answer `response_id`: for
/// blocking callers and awaited calls (an event-based caller's then() uses its
/// call_timer instead). `timeout` infinite: none.
inline void caf_request_timeout(caf::local_actor* self, caf::message_id response_id,
                                const caf::duration& timeout) {
  if (timeout.valid()) {
    auto due = self->clock().now();
    due += timeout;
    self->clock().set_request_timeout(due, self, response_id);
  }
}

/// What a completed call (reply or error) undoes: its watch on the server and, for a
/// then() call, its deadline in the caller's call_timer.
struct call_completion {
  caf::actor server;
  const void* token = nullptr;
  call_timer* timer = nullptr;
  call_timer::handle deadline;

  void operator()() const noexcept {
    unwatch_server(server, token);
    if (timer != nullptr)
      timer->remove(deadline);
  }
};

/// A reply or error handler that first completes the call.
template <class Reply, class F>
auto completing(call_completion done, F f) {
  if constexpr (std::is_void_v<Reply>)
    return [done = std::move(done), f = std::move(f)]() mutable {
      done();
      f();
    };
  else
    return [done = std::move(done), f = std::move(f)](Reply& x) mutable {
      done();
      f(x);
    };
}

} // namespace warren::detail
