// OTP's gen_server on CAF, with a typed message interface.
//
// An implementation is a C++ class; its members are the server's state (OTP's State):
//
//   struct get { };                 // request types: inspectable, or whitelisted
//   struct add { int n; };          // with CAF_ALLOW_UNSAFE_MESSAGE_TYPE
//   struct reset { };
//
//   struct counter : warren::process_base {        // base optional: self(), trap_exit()
//     using calls = warren::type_list<get, add>;   // what call() accepts
//     using casts = warren::type_list<reset>;      // what cast() accepts
//     int n = 0;
//     warren::action init(int start) { n = start; return warren::ok(); }   // or void
//     int handle_call(const get&, warren::caller&) { return n; }          // plain reply
//     warren::call_result<int> handle_call(const add& x, warren::caller&) {
//       if (x.n < 0) return warren::stop(warren::shutdown_with("negative"), n);
//       return warren::reply(n += x.n);
//     }
//     void handle_cast(const reset&) { n = 0; }                         // or -> action
//     warren::action handle_info(const caf::message&);                   // optional
//     warren::action handle_continue(const caf::message&);               // optional
//     void terminate(const caf::error& reason);                          // optional
//   };
//
// Clients: warren::call(sys, ref, get{}) from ordinary threads (blocking), or
// warren::async_call(self, ref, get{}).then(...) inside actors; warren::cast(ref, x).
// `ref` is a warren::server_ref<counter> (compile-time checked: only declared calls,
// reply type deduced from handle_call) or a caf::actor with the Impl or the reply type
// given explicitly: warren::call<counter>(sys, hdl, get{}) / warren::call<int>(...).
//
// Wire format: a call is a request (call_atom, Req), a cast (cast_atom, Msg); any other
// message, trapped exits and down messages go to handle_info.
//
// Errors a caller sees (warren/call_error.hpp): caf::sec::request_timeout when the call
// times out (the late reply is dropped); call_errc::exited with the exit reason as soon
// as the server exits before answering, whatever the timeout: the call watches the
// server, as gen_server:call monitors it (a call still queued, one whose reply was
// deferred, one the server stopped from without a reply, a bad return value, a crash,
// a kill); caf::sec::request_receiver_down when the server was gone before the call
// (OTP's noproc); call_errc::calling_self for a call to oneself (it would wait for its
// own answer); caf::sec::invalid_argument for a null handle;
// caf::sec::unexpected_message for a call type the server does not declare.
#pragma once

#include "warren/call_error.hpp"
#include "warren/detail/behaviour.hpp"
#include "warren/detail/call_watch.hpp"

#include <caf/response_handle.hpp>
#include <caf/response_promise.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/typed_response_promise.hpp>

#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace warren {

// -- callback results ------------------------------------------------------------

/// Result of init, handle_cast, handle_info and handle_continue: OTP's
/// {ok|noreply, S}, ignore (init only), {stop, Reason} and {continue, C}.
class action {
public:
  enum class kind : uint8_t { ok, ignore, stop };

  action() noexcept = default;
  action(ignore_t) noexcept : what_(kind::ignore) {}

  static action make_stop(caf::error reason) {
    action x;
    x.what_ = kind::stop;
    x.reason_ = std::move(reason);
    return x;
  }

  /// OTP's {continue, C}: handle_continue(C) runs before any other message.
  template <class T>
  action& and_continue(T&& x) & {
    cont_ = caf::make_message(std::forward<T>(x));
    has_cont_ = true;
    return *this;
  }
  template <class T>
  action&& and_continue(T&& x) && {
    return std::move(and_continue(std::forward<T>(x)));
  }

  /// The continue term as a message (and_continue(caf::message) does the same).
  void set_continue(caf::message x) {
    cont_ = std::move(x);
    has_cont_ = true;
  }

  kind what() const noexcept { return what_; }
  const caf::error& reason() const noexcept { return reason_; }
  bool has_continue() const noexcept { return has_cont_; }
  caf::message take_continue() {
    has_cont_ = false;
    return std::move(cont_);
  }
  /// Nothing to do beyond going on (the fast path).
  bool plain() const noexcept { return what_ == kind::ok && !has_cont_; }

private:
  kind what_ = kind::ok;
  bool has_cont_ = false;
  caf::error reason_;
  caf::message cont_;
};

/// {ok, S} / {noreply, S}.
inline action ok() {
  return {};
}
inline action noreply() {
  return {};
}
/// {stop, Reason, S}.
inline action stop(caf::error reason) {
  return action::make_stop(std::move(reason));
}

/// Result of handle_call: {reply, R, S}, {noreply, S}, {stop, Reason, R, S} or
/// {stop, Reason, S}, each optionally with {continue, C}. A handle_call may also return
/// the reply type itself (the fastest path).
template <class T>
class call_result : public action {
public:
  using reply_type = T;

  call_result(action x) : action(std::move(x)) {}
  call_result(action x, T value) : action(std::move(x)), value_(std::move(value)) {}

  template <class U>
  call_result& and_continue(U&& x) & {
    action::and_continue(std::forward<U>(x));
    return *this;
  }
  template <class U>
  call_result&& and_continue(U&& x) && {
    action::and_continue(std::forward<U>(x));
    return std::move(*this);
  }

  bool has_reply() const noexcept { return value_.has_value(); }
  T& value() { return *value_; }

private:
  std::optional<T> value_;
};

/// {reply, R, S}.
template <class T>
call_result<std::decay_t<T>> reply(T&& x) {
  return {action{}, std::forward<T>(x)};
}

/// {stop, Reason, Reply, S}: terminate runs first, then the reply is sent.
template <class T>
call_result<std::decay_t<T>> stop(caf::error reason, T&& reply_value) {
  return {action::make_stop(std::move(reason)), std::forward<T>(reply_value)};
}

/// OTP's From: the caller of the current handle_call.
class caller {
public:
  explicit caller(caf::event_based_actor* self) noexcept : self_(self) {}

  /// Takes over the reply (OTP: return noreply now, gen_server:reply(From, R) later).
  /// handle_call must then return noreply(); answer with `promise.deliver(value)`.
  template <class T>
  caf::typed_response_promise<T> defer() {
    return self_->make_response_promise<T>();
  }
  /// Untyped variant of defer().
  caf::response_promise defer_untyped() { return self_->make_response_promise(); }

  /// The calling actor (null for anonymous requests).
  const caf::strong_actor_ptr& source() const { return self_->current_sender(); }

private:
  caf::event_based_actor* self_;
};

// -- implementation traits ---------------------------------------------------------

namespace detail {

template <class Impl>
struct calls_of {
  using type = type_list<>;
};
template <class Impl>
requires requires {
  typename Impl::calls;
}
struct calls_of<Impl> {
  using type = typename Impl::calls;
};

template <class Impl>
struct casts_of {
  using type = type_list<>;
};
template <class Impl>
requires requires {
  typename Impl::casts;
}
struct casts_of<Impl> {
  using type = typename Impl::casts;
};

template <class T>
struct unwrap_call_result {
  using type = T;
  static constexpr bool wrapped = false;
};
template <class T>
struct unwrap_call_result<call_result<T>> {
  using type = T;
  static constexpr bool wrapped = true;
};

template <class Impl, class Req>
using handle_call_t =
    decltype(std::declval<Impl&>().handle_call(std::declval<const Req&>(), std::declval<caller&>()));

template <class Impl>
concept server_impl = requires {
  typename Impl::calls;
}
|| requires {
  typename Impl::casts;
};

/// The reply type of a call: T may be a server implementation (reply deduced from its
/// handle_call, Req checked against its calls) or the reply type itself.
template <class T, class Req>
struct call_reply {
  using type = T;
};
template <server_impl Impl, class Req>
struct call_reply<Impl, Req> {
  static_assert(list_contains<Req, typename calls_of<Impl>::type>::value,
                "this request type is not in the server's `calls` list");
  using type = typename unwrap_call_result<handle_call_t<Impl, Req>>::type;
};
template <class T, class Req>
using call_reply_t = typename call_reply<T, std::decay_t<Req>>::type;

template <class Impl, class Msg>
constexpr void check_cast() {
  if constexpr (server_impl<Impl>)
    static_assert(list_contains<std::decay_t<Msg>, typename casts_of<Impl>::type>::value,
                  "this message type is not in the server's `casts` list");
}

template <class R>
action to_action(R&& r) {
  if constexpr (std::is_same_v<std::decay_t<R>, no_init>)
    return {};
  else
    return action{std::forward<R>(r)};
}

// -- the server actor ----------------------------------------------------------------

template <class Impl>
class server_actor final : public behaviour_actor {
public:
  template <class... Ts>
  server_actor(caf::actor_config& cfg, start_outcome* out, caf::actor parent, const caf::message& extra,
               Ts&&... xs)
    : behaviour_actor(cfg, std::move(parent)) {
    constructing_guard guard{this};
    try {
      auto err = construct_and_init(
          impl_, extra,
          [&](auto&& r) {
            auto a = to_action(std::forward<decltype(r)>(r));
            switch (a.what()) {
              case action::kind::ok:
                if (a.has_continue()) {
                  pending_cont_ = a.take_continue();
                  has_pending_cont_ = true;
                }
                record_start(out, start_outcome::kind::ok);
                break;
              case action::kind::ignore:
                record_start(out, start_outcome::kind::ignore);
                break;
              case action::kind::stop:
                record_start(out, start_outcome::kind::failed, a.reason());
                break;
            }
          },
          std::forward<Ts>(xs)...);
      if (err)
        record_start(out, start_outcome::kind::failed, std::move(err));
    } catch (...) {
      auto eptr = std::current_exception();
      record_start(out, start_outcome::kind::failed, exception_to_exit(eptr));
    }
    if (out != nullptr && out->what != start_outcome::kind::ok)
      impl_.reset();
  }

  const char* name() const override { return "warren.server"; }

  caf::behavior make_behavior() override {
    if (!started_or_quit())
      return {};
    install_handlers();
    set_default_handler([this](caf::scheduled_actor*, caf::message_view& x) -> caf::result<caf::message> {
      auto& content = x.content();
      if (content.size() >= 1 && content.match_element<call_atom>(0) && current_message_id().is_request())
        return caf::make_error(caf::sec::unexpected_message);
      if (!stopping())
        dispatch_info(x.move_content_to_message());
      return caf::delegated<caf::message>{};
    });
    if (has_pending_cont_) {
      // OTP: a continue from init runs before any message, even queued ones.
      has_pending_cont_ = false;
      action a;
      a.set_continue(std::move(pending_cont_));
      run_continue_loop(std::move(a));
      if (stopping())
        return {};
    }
    return make_handlers(typename calls_of<Impl>::type{}, typename casts_of<Impl>::type{});
  }

protected:
  // The state goes with the process, as in OTP: a response promise it still holds
  // (a deferred reply) keeps a strong reference to this actor, which would otherwise
  // keep the actor and its state alive forever.
  void on_exit() override { impl_.reset(); }

  caf::error run_terminate(caf::error reason) noexcept override {
    if constexpr (requires(Impl & i, const caf::error& e) { i.terminate(e); }) {
      if (impl_) {
        try {
          impl_->terminate(reason);
        } catch (...) {
          auto eptr = std::current_exception();
          return exception_to_exit(eptr);
        }
      }
    }
    return reason;
  }

  void deliver_info(caf::message msg) override { dispatch_info(std::move(msg)); }

private:
  template <class... Calls, class... Casts>
  caf::behavior make_handlers(type_list<Calls...>, type_list<Casts...>) {
    // Casts first: they are the high-rate path, and the patterns cannot overlap
    // (call_atom vs cast_atom), so the order only decides how many a cast is tried on.
    return caf::behavior{cast_handler<Casts>()..., call_handler<Calls>()...};
  }

  template <class Req>
  auto call_handler() {
    using R = handle_call_t<Impl, Req>;
    using unwrap = unwrap_call_result<R>;
    using T = typename unwrap::type;
    if constexpr (!unwrap::wrapped) {
      return [this](call_atom, const Req& req) -> R {
        caller from{this};
        return impl_->handle_call(req, from);
      };
    } else {
      return [this](call_atom, const Req& req) -> caf::result<T> {
        caller from{this};
        auto r = impl_->handle_call(req, from);
        if (r.plain() && r.has_reply())
          return caf::result<T>{std::move(r.value())};
        return slow_call_result(std::move(r));
      };
    }
  }

  template <class T>
  caf::result<T> slow_call_result(call_result<T>&& r) {
    switch (r.what()) {
      case action::kind::stop: {
        // OTP: terminate first, then the reply; without a reply the caller learns the
        // stop reason (OTP: the caller's monitor fires).
        auto rp = make_response_promise();
        auto reason = r.reason();
        stop_with(reason);
        if (r.has_reply())
          rp.deliver(std::move(r.value()));
        else if (rp.pending())
          rp.deliver(server_exited(reason));
        return caf::delegated<T>{};
      }
      case action::kind::ignore:
        stop_with(make_error(exit_code::bad_return_value, "ignore returned from handle_call"));
        return caf::delegated<T>{};
      case action::kind::ok:
        break;
    }
    if (r.has_reply()) {
      // Reply first, then continue (OTP order).
      auto rp = make_response_promise();
      rp.deliver(std::move(r.value()));
    }
    run_continue_loop(std::move(static_cast<action&>(r)));
    return caf::delegated<T>{};
  }

  template <class Msg>
  auto cast_handler() {
    return [this](cast_atom, const Msg& msg) {
      using R = decltype(impl_->handle_cast(msg));
      if constexpr (std::is_void_v<R>) {
        impl_->handle_cast(msg);
      } else {
        action a = impl_->handle_cast(msg);
        if (!a.plain())
          run_continue_loop(std::move(a));
      }
    };
  }

  void dispatch_info(caf::message msg) {
    if constexpr (requires(Impl & i, const caf::message& m) { i.handle_info(m); }) {
      using R = decltype(impl_->handle_info(msg));
      if constexpr (std::is_void_v<R>) {
        impl_->handle_info(msg);
      } else {
        action a = impl_->handle_info(msg);
        if (!a.plain())
          run_continue_loop(std::move(a));
      }
    } else {
      log().warn("warren.server {} dropped an unexpected message: {}", id(), caf::to_string(msg));
    }
  }

  /// Applies an action: stop, or run handle_continue until no continue is left.
  void run_continue_loop(action a) {
    for (;;) {
      if (stopping())
        return;
      switch (a.what()) {
        case action::kind::stop:
          stop_with(a.reason());
          return;
        case action::kind::ignore:
          stop_with(make_error(exit_code::bad_return_value, "ignore returned outside init"));
          return;
        case action::kind::ok:
          break;
      }
      if (!a.has_continue())
        return;
      auto c = a.take_continue();
      if constexpr (requires(Impl & i, const caf::message& m) { i.handle_continue(m); }) {
        using R = decltype(impl_->handle_continue(c));
        if constexpr (std::is_void_v<R>) {
          impl_->handle_continue(c);
          return;
        } else {
          a = impl_->handle_continue(c);
        }
      } else {
        stop_with(make_error(exit_code::bad_return_value, "continue returned but no handle_continue"));
        return;
      }
    }
  }

  std::optional<Impl> impl_;
  caf::message pending_cont_;
  bool has_pending_cont_ = false;
};

} // namespace detail

// -- starting ------------------------------------------------------------------------

/// A start function's body for a server: spawns it, runs init synchronously (OTP's
/// gen_server:start_link). Extra arguments from the context (simple_one_for_one) go to
/// init(args..., const caf::message&) when the implementation has that overload.
template <class Impl, class... Ts>
start_result start_server(const start_context& ctx, Ts&&... xs) {
  return detail::start_behaviour<detail::server_actor<Impl>>(ctx, std::forward<Ts>(xs)...);
}

/// A child spec for a server: worker, permanent (change the fields as needed). The
/// arguments are copied into the spec and given to init on every (re)start.
template <class Impl, class... Ts>
child_spec server_child(std::string id, Ts... xs) {
  child_spec spec;
  spec.id = std::move(id);
  spec.start = [=](const start_context& ctx) -> start_result { return start_server<Impl>(ctx, xs...); };
  spec.type = child_type::worker;
  spec.restart = restart_type::permanent;
  return spec;
}

/// Starts a server outside any supervisor (no parent). `ignore` yields a null actor.
template <class Impl, class... Ts>
caf::expected<caf::actor> spawn_server(caf::actor_system& sys, Ts&&... xs) {
  return detail::to_expected(start_server<Impl>(start_context{sys, caf::actor{}}, std::forward<Ts>(xs)...));
}

// -- client side ---------------------------------------------------------------------

/// A server handle typed by its implementation: call() and cast() on it are checked
/// at compile time against Impl's `calls` and `casts`, and replies are typed.
template <class Impl>
class server_ref {
public:
  server_ref() = default;
  server_ref(caf::actor hdl) : hdl_(std::move(hdl)) {}

  const caf::actor& actor() const noexcept { return hdl_; }
  explicit operator bool() const noexcept { return static_cast<bool>(hdl_); }

private:
  caf::actor hdl_;
};

namespace detail {

template <class Reply>
caf::expected<Reply> blocking_call(caf::scoped_actor& self, const caf::actor& dest, caf::duration timeout,
                                   caf::message msg) {
  if (dest && running_behaviour() == caf::actor_cast<caf::abstract_actor*>(dest))
    return make_error(call_errc::calling_self); // a server calling itself from a handler
  auto req = watched_request(self.ptr(), dest, std::move(msg));
  if (req.sent)
    caf_request_timeout(self.ptr(), req.response_id, timeout);
  call_completion done{dest, req.token, nullptr, {}};
  caf::expected<Reply> result{caf::make_error(caf::sec::request_timeout)};
  auto on_error = completing<caf::error>(done, [&](caf::error& e) { result = std::move(e); });
  if constexpr (std::is_void_v<Reply>) {
    result = caf::expected<void>{};
    req.hdl.receive(completing<void>(done, [] {}), std::move(on_error));
  } else {
    req.hdl.receive(completing<Reply>(done, [&](Reply& x) { result = std::move(x); }), std::move(on_error));
  }
  return result;
}

} // namespace detail

/// Blocking call from an ordinary thread (never from inside an actor), through a
/// scoped actor of the caller's. A reply arriving after the timeout stays unmatched in
/// that actor's mailbox; prefer the actor_system overload, which uses a fresh one.
/// T is the server implementation (reply type deduced and request checked) or the
/// reply type.
template <class T, class Req>
caf::expected<detail::call_reply_t<T, Req>> call(caf::scoped_actor& self, const caf::actor& dest, Req&& req,
                                                 caf::timespan timeout = default_call_timeout) {
  using reply = detail::call_reply_t<T, Req>;
  if (!dest)
    return caf::make_error(caf::sec::invalid_argument);
  return detail::blocking_call<reply>(self, dest, detail::to_caf_duration(timeout),
                                      caf::make_message(call_atom::value, std::forward<Req>(req)));
}

/// Blocking call from an ordinary thread: OTP's gen_server:call. A late reply is
/// dropped. Errors: see the top of this header.
template <class T, class Req>
caf::expected<detail::call_reply_t<T, Req>> call(caf::actor_system& sys, const caf::actor& dest, Req&& req,
                                                 caf::timespan timeout = default_call_timeout) {
  caf::scoped_actor self{sys};
  return call<T>(self, dest, std::forward<Req>(req), timeout);
}

template <class Impl, class Req>
caf::expected<detail::call_reply_t<Impl, Req>> call(caf::actor_system& sys, const server_ref<Impl>& dest,
                                                    Req&& req, caf::timespan timeout = default_call_timeout) {
  return call<Impl>(sys, dest.actor(), std::forward<Req>(req), timeout);
}

template <class Impl, class Req>
caf::expected<detail::call_reply_t<Impl, Req>> call(caf::scoped_actor& self, const server_ref<Impl>& dest,
                                                    Req&& req, caf::timespan timeout = default_call_timeout) {
  return call<Impl>(self, dest.actor(), std::forward<Req>(req), timeout);
}

/// The pending reply of an async_call: `.then(on_reply, on_error)` (the actor keeps
/// handling other messages meanwhile) or `.await(on_reply, on_error)` (the actor
/// waits for this reply first). on_reply takes the reply type (nothing for void).
template <class Reply, class Self>
class pending_call {
public:
  using handle_type = decltype(std::declval<Self*>()->request(std::declval<caf::actor>(), caf::duration{},
                                                              std::declval<caf::message>()));
  using request_type = detail::watched<handle_type>;

  pending_call(Self* self, request_type req, caf::actor server, caf::duration timeout)
    : self_(self), req_(std::move(req)), server_(std::move(server)), timeout_(timeout) {}

  template <class F, class G>
  void then(F on_reply, G on_error) && {
    detail::call_completion done{std::move(server_), req_.token, nullptr, {}};
    if (req_.sent && timeout_.valid()) {
      if constexpr (std::is_base_of_v<caf::scheduled_actor, Self>) {
        // The caller's own timer: no clock-thread round trip per call.
        auto& timer = detail::call_timer::of(self_);
        auto due = self_->clock().now();
        due += timeout_;
        done.timer = &timer;
        done.deadline = timer.add(req_.response_id, due);
      } else {
        detail::caf_request_timeout(self_, req_.response_id, timeout_);
      }
    }
    req_.hdl.then(adapt(done, std::move(on_reply)),
                  detail::completing<caf::error>(done, std::move(on_error)));
  }

  template <class F, class G>
  void await(F on_reply, G on_error) && {
    // An awaiting actor handles no other message, its call_timer's tick included:
    // CAF's clock times this one.
    if (req_.sent)
      detail::caf_request_timeout(self_, req_.response_id, timeout_);
    detail::call_completion done{std::move(server_), req_.token, nullptr, {}};
    req_.hdl.await(adapt(done, std::move(on_reply)),
                   detail::completing<caf::error>(done, std::move(on_error)));
  }

private:
  template <class F>
  static auto adapt(const detail::call_completion& done, F f) {
    if constexpr (std::is_void_v<Reply>)
      static_assert(std::is_invocable_v<F&>, "the reply handler of a void call takes no argument");
    else
      static_assert(std::is_invocable_v<F&, Reply&>, "the reply handler does not accept the reply type");
    return detail::completing<Reply>(done, std::move(f));
  }

  Self* self_;
  request_type req_;
  caf::actor server_;
  caf::duration timeout_;
};

/// Asynchronous call from inside an actor (event-based or blocking). Like
/// gen_server:call it watches the server: should the server exit first, the error
/// handler gets call_errc::exited with the exit reason at once, whatever the timeout.
/// A call to the calling actor itself fails at once with call_errc::calling_self.
template <class T, class Self, class Req>
auto async_call(Self* self, const caf::actor& dest, Req&& req_value,
                caf::timespan timeout = default_call_timeout) {
  using reply = detail::call_reply_t<T, Req>;
  auto req =
      detail::watched_request(self, dest, caf::make_message(call_atom::value, std::forward<Req>(req_value)));
  return pending_call<reply, Self>{self, std::move(req), dest, detail::to_caf_duration(timeout)};
}

template <class Impl, class Self, class Req>
auto async_call(Self* self, const server_ref<Impl>& dest, Req&& req,
                caf::timespan timeout = default_call_timeout) {
  return async_call<Impl>(self, dest.actor(), std::forward<Req>(req), timeout);
}

/// OTP's gen_server:cast: asynchronous, always succeeds (even for a dead server).
template <class Msg>
void cast(const caf::actor& dest, Msg&& msg) {
  if (dest)
    caf::anon_send(dest, cast_atom::value, std::forward<Msg>(msg));
}

/// cast() checked against Impl's `casts`.
template <class Impl, class Msg>
void cast(const caf::actor& dest, Msg&& msg) {
  detail::check_cast<Impl, Msg>();
  cast(dest, std::forward<Msg>(msg));
}

template <class Impl, class Msg>
void cast(const server_ref<Impl>& dest, Msg&& msg) {
  cast<Impl>(dest.actor(), std::forward<Msg>(msg));
}

} // namespace warren
