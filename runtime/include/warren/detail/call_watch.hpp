// How a call watches its server (gen_server:call's monitor): right after the request
// goes out, the caller attaches a small attachable to the server that, should the server
// exit first, answers the pending request with call_errc::exited and the exit reason.
// Whatever arrives first, the reply, a timeout or that answer, completes the call;
// the caller then detaches the watch. A duplicate answer (the server exited between
// replying and the detach) is dropped by an event-based caller, as CAF drops every
// response nobody waits for; a blocking caller skips it, as it does a late reply.
// The watch holds the caller weakly.
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

#include <caf/actor.hpp>
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

/// Sends `msg` to `dest` as a request from `self`, watched, with `timeout` (a CAF
/// duration; infinite: none). Errors that are known before sending (null handle,
/// calling oneself) arrive as the answer, as CAF does for a null handle.
template <class Self>
auto watched_request(Self* self, const caf::actor& dest, const caf::duration& timeout, caf::message msg) {
  using handle_type = decltype(self->request(dest, timeout, std::move(msg)));
  auto req_id = self->new_request_id(caf::message_priority::normal);
  auto rid = req_id.response_id();
  const void* token = nullptr;
  if (!dest) {
    self->eq_impl(rid, self->ctrl(), self->context(), caf::make_error(caf::sec::invalid_argument));
  } else if (dest->ctrl() == self->ctrl()) {
    self->eq_impl(rid, self->ctrl(), self->context(), make_error(call_errc::calling_self));
  } else {
    // Send first, then watch: a server already dead bounces the request with
    // request_receiver_down (OTP's noproc) before the watch can fire.
    dest->enqueue(caf::strong_actor_ptr{self->ctrl()}, req_id, std::move(msg), self->context());
    token = watch_server(dest, self, rid);
    self->request_response_timeout(timeout, req_id);
  }
  return std::pair<handle_type, const void*>{handle_type{rid, self}, token};
}

/// A reply or error handler that first drops the call's watch on the server.
template <class Reply, class F>
auto unwatching(const caf::actor& server, const void* token, F f) {
  if constexpr (std::is_void_v<Reply>)
    return [server, token, f = std::move(f)]() mutable {
      unwatch_server(server, token);
      f();
    };
  else
    return [server, token, f = std::move(f)](Reply& x) mutable {
      unwatch_server(server, token);
      f(x);
    };
}

} // namespace warren::detail
