// Machinery shared by Warren's behaviours (server.hpp, statem.hpp): the start
// protocol, the parent/exit/exception handling, and the base class through which a
// behaviour's implementation reaches its actor.
//
// The start protocol (OTP's start_link): the behaviour's actor runs the user's init in
// its constructor, which CAF runs on the spawning thread, and records the outcome in a
// struct on the caller's stack. The start function then returns the handle (ok),
// warren::ignore, or the init's failure reason. A failed or ignored actor quits in
// make_behavior without handling any message.
//
// Exits (see also docs): Warren's behaviours always trap exits from their parent (the
// supervisor that started them): such an exit runs the user's terminate(reason) and
// then the actor quits with that reason, even `normal` (as gen_server does for a
// trapping server). OTP only runs terminate when the server traps exits; Warren does it
// always so that C++ code can clean up. Exits from other linked actors follow Erlang's
// rules unless the implementation called trap_exit(true): then they are delivered as
// info messages holding a caf::exit_msg. caf::exit_reason::kill bypasses all of this.
#pragma once

#include "warren/child_spec.hpp"
#include "warren/detail/call_watch.hpp"
#include "warren/exit.hpp"
#include "warren/log.hpp"

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/duration.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/expected.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>
#include <caf/system_messages.hpp>
#include <caf/timespan.hpp>

#include <chrono>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace warren {

/// Tag of a call (OTP's '$gen_call'): a request carrying (call_atom, Req...).
using call_atom = caf::atom_constant<caf::atom("wcall")>;
/// Tag of a cast (OTP's '$gen_cast'): an asynchronous message (cast_atom, Msg...).
using cast_atom = caf::atom_constant<caf::atom("wcast")>;

/// OTP's default call timeout.
inline constexpr caf::timespan default_call_timeout = std::chrono::seconds(5);
/// OTP's `infinity` for call timeouts.
inline constexpr caf::timespan infinity = caf::timespan::max();

/// A compile-time list of message types (a server's calls and casts).
template <class... Ts>
struct type_list {};

namespace detail {

template <class T, class List>
struct list_contains;

template <class T, class... Ts>
struct list_contains<T, type_list<Ts...>> : std::bool_constant<(std::is_same_v<T, Ts> || ...)> {};

inline caf::duration to_caf_duration(caf::timespan t) {
  if (t == infinity)
    return caf::duration{caf::infinite};
  return caf::duration{t};
}

/// What a behaviour's constructor reports to its start function.
struct start_outcome {
  enum class kind : uint8_t { pending, ok, ignore, failed };
  kind what = kind::pending;
  caf::error reason;
};

/// Thrown nowhere; marks "the implementation has no init to call".
struct no_init {};

/// Non-template base of Warren's behaviour actors.
class behaviour_actor : public caf::event_based_actor {
public:
  behaviour_actor(caf::actor_config& cfg, const caf::actor& parent) : caf::event_based_actor(cfg) {
    if (parent)
      parent_addr_ = parent.address();
  }

  /// The parent, held weakly: a strong handle would make a cycle with the supervisor,
  /// which then could never end when its last handle is dropped. Null once it is gone.
  caf::actor parent() const { return caf::actor_cast<caf::actor>(parent_addr_); }
  bool trapping_exits() const noexcept { return trap_exit_; }
  void trap_exit(bool on) noexcept { trap_exit_ = on; }
  /// True once terminate ran or the actor decided to quit.
  bool stopping() const noexcept { return stopping_; }

  resume_result resume(caf::execution_unit* ctx, size_t max_throughput) override;
  bool cleanup(caf::error&& fail_state, caf::execution_unit* host) override;

  /// Runs terminate (once) and quits with `reason`, or with the reason terminate
  /// threw. The caller must return to CAF without running more callbacks.
  void stop_with(caf::error reason) {
    if (stopping_)
      return;
    stopping_ = true;
    auto final_reason = run_terminate(std::move(reason));
    report(final_reason);
    quit(std::move(final_reason));
  }

protected:
  /// Runs the user's terminate; returns the reason to exit with.
  virtual caf::error run_terminate(caf::error reason) noexcept = 0;
  /// Delivers a trapped exit or a down message as an info message.
  virtual void deliver_info(caf::message msg) = 0;

  /// Records the outcome of init for the start function and for make_behavior.
  void record_start(start_outcome* out, start_outcome::kind what, caf::error reason = {}) {
    init_kind_ = what;
    init_reason_ = reason;
    if (out != nullptr) {
      out->what = what;
      out->reason = std::move(reason);
    }
  }

  /// In make_behavior: false if init failed or ignored (the actor has quit then).
  bool started_or_quit() {
    switch (init_kind_) {
      case start_outcome::kind::ok:
        return true;
      case start_outcome::kind::failed:
        stopping_ = true;
        quit(init_reason_);
        return false;
      default:
        stopping_ = true;
        quit();
        return false;
    }
  }

  /// Installs exit, down and exception handlers.
  void install_handlers() {
    set_exit_handler([this](caf::scheduled_actor*, caf::exit_msg& x) {
      if (stopping_)
        return;
      if (parent_addr_ && x.source == parent_addr_) {
        stop_with(std::move(x.reason));
      } else if (trap_exit_) {
        deliver_info(caf::make_message(std::move(x)));
      } else if (x.reason) {
        // Erlang: a non-trapping process dies with the reason; no terminate.
        stopping_ = true;
        report(x.reason);
        quit(std::move(x.reason));
      }
    });
    set_down_handler([this](caf::scheduled_actor*, caf::down_msg& x) {
      if (!stopping_)
        deliver_info(caf::make_message(std::move(x)));
    });
    set_exception_handler([this](caf::scheduled_actor*, std::exception_ptr& eptr) -> caf::error {
      auto reason = exception_to_exit(eptr);
      if (stopping_)
        return reason;
      stopping_ = true;
      auto final_reason = run_terminate(std::move(reason));
      report(final_reason);
      return final_reason;
    });
  }

  void report(const caf::error& reason) {
    if (!is_normal_exit(reason))
      log().error("{} {} terminating: {}", name(), id(), describe_exit(reason));
  }

private:
  caf::actor_addr parent_addr_;
  bool trap_exit_ = false;
  bool stopping_ = false;
  start_outcome::kind init_kind_ = start_outcome::kind::pending;
  caf::error init_reason_;
};

inline caf::resumable::resume_result behaviour_actor::resume(caf::execution_unit* ctx,
                                                             size_t max_throughput) {
  // Marks the thread as running this actor, for the calling_self check of a blocking
  // call made from one of its handlers.
  auto& running = running_behaviour();
  auto prev = running;
  running = this;
  auto result = caf::event_based_actor::resume(ctx, max_throughput);
  running = prev;
  return result;
}

inline bool behaviour_actor::cleanup(caf::error&& fail_state, caf::execution_unit* host) {
  // OTP: a call still queued when the server dies fails with the server's exit
  // reason (the caller's monitor fires). CAF would bounce it with
  // request_receiver_down, which reads as noproc, so the mailbox is drained here
  // first; CAF's own cleanup then finds it closed.
  bounce_queued_requests(*this, fail_state, host);
  return caf::event_based_actor::cleanup(std::move(fail_state), host);
}

/// The actor whose implementation is being constructed on this thread (read by
/// process_base's constructor).
inline behaviour_actor*& constructing() {
  thread_local behaviour_actor* ptr = nullptr;
  return ptr;
}

struct constructing_guard {
  behaviour_actor* prev;
  explicit constructing_guard(behaviour_actor* self) : prev(constructing()) { constructing() = self; }
  ~constructing_guard() { constructing() = prev; }
  constructing_guard(const constructing_guard&) = delete;
  constructing_guard& operator=(const constructing_guard&) = delete;
};

/// Constructs `Impl` and runs its init, then calls `on_init` with init's result (or
/// with no_init{} when init returns void or does not exist). Supported shapes:
///  - Impl default-constructible with init(xs...) [or init(xs..., const caf::message&)
///    to receive a supervisor's extra start arguments];
///  - Impl constructible from xs..., with an optional init().
/// Returns a non-empty error when the start arguments do not fit.
template <class Impl, class OnInit, class... Ts>
caf::error construct_and_init(std::optional<Impl>& impl, const caf::message& extra, OnInit&& on_init,
                              Ts&&... xs) {
  constexpr bool dflt = std::is_default_constructible_v<Impl>;
  constexpr bool init_plain = dflt && requires(Impl & i, Ts && ... ys) {
    i.init(std::forward<Ts>(ys)...);
  };
  constexpr bool init_extra = dflt && requires(Impl & i, Ts && ... ys, const caf::message& m) {
    i.init(std::forward<Ts>(ys)..., m);
  };
  constexpr bool ctor = std::is_constructible_v<Impl, Ts&&...>;
  auto call = [&](auto&& f) {
    using R = decltype(f());
    if constexpr (std::is_void_v<R>) {
      f();
      on_init(no_init{});
    } else {
      on_init(f());
    }
  };
  if constexpr (init_extra) {
    if (!extra.empty() || !init_plain) {
      impl.emplace();
      call([&]() -> decltype(auto) { return impl->init(std::forward<Ts>(xs)..., extra); });
      return {};
    }
  }
  if constexpr (init_plain) {
    if (!extra.empty())
      return make_error(exit_code::bad_start, "init does not take extra start arguments");
    impl.emplace();
    call([&]() -> decltype(auto) { return impl->init(std::forward<Ts>(xs)...); });
    return {};
  } else if constexpr (!init_extra) {
    static_assert(ctor, "the implementation needs init(args...) or a constructor taking the start arguments");
    if (!extra.empty())
      return make_error(exit_code::bad_start, "init does not take extra start arguments");
    impl.emplace(std::forward<Ts>(xs)...);
    if constexpr (requires(Impl & i) { i.init(); })
      call([&]() -> decltype(auto) { return impl->init(); });
    else
      on_init(no_init{});
    return {};
  } else {
    return {};
  }
}

/// Spawns `Actor` (a behaviour actor) following the start protocol.
template <class Actor, class... Ts>
start_result start_behaviour(const start_context& ctx, Ts&&... xs) {
  start_outcome out;
  auto hdl = ctx.system().spawn<Actor>(&out, ctx.parent(), ctx.args(), std::forward<Ts>(xs)...);
  switch (out.what) {
    case start_outcome::kind::ok:
      return caf::actor{std::move(hdl)};
    case start_outcome::kind::ignore:
      return ignore;
    case start_outcome::kind::failed: // the actor quits at once; the starter waits for it
      return {out.reason, caf::actor{std::move(hdl)}};
    default:
      return make_error(exit_code::bad_start, "behaviour did not report its start");
  }
}

/// start_result -> expected<actor> for starts outside a supervisor (ignore: null actor).
inline caf::expected<caf::actor> to_expected(start_result r) {
  if (r.started())
    return r.actor();
  if (r.ignored())
    return caf::actor{};
  return r.error();
}

} // namespace detail

/// Optional base class of a server or state machine implementation: access to its
/// actor. Available from the implementation's constructor on.
class process_base {
public:
  process_base() noexcept : actor_(detail::constructing()) {}

  /// The actor running this implementation (send, request, monitor, link, ...).
  caf::event_based_actor* self() const noexcept { return actor_; }
  /// A handle to this actor.
  caf::actor self_handle() const { return caf::actor_cast<caf::actor>(actor_); }
  /// The parent given at start (the supervisor); null outside any supervisor and once
  /// the parent is gone.
  caf::actor parent() const { return actor_->parent(); }
  /// OTP's process_flag(trap_exit, On): when on, exits from linked actors other than
  /// the parent arrive as info messages holding a caf::exit_msg.
  void trap_exit(bool on) noexcept { actor_->trap_exit(on); }
  bool trapping_exits() const noexcept { return actor_->trapping_exits(); }

private:
  detail::behaviour_actor* actor_;
};

} // namespace warren
