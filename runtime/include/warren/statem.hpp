// OTP's gen_statem on CAF.
//
// Two callback modes, chosen by the implementation's shape:
//
//  * handle_event_function (the class declares `using state_type = S;`, any copyable
//    S with ==): every event goes to
//        warren::sm::transition<S> handle_event(const warren::sm::event&, const S&);
//
//  * state_functions (no state_type): each state is a member function
//        warren::sm::state_result<Impl> locked(const warren::sm::event&);
//    and the state is a warren::sm::state_fn<Impl> (next_state(&Impl::open)).
//
// Either adds state-enter calls with `static constexpr bool state_enter = true;`: after
// every state change, after repeat_state and for the initial state, the state's
// handler gets an event of type `enter` (ev.old_state<S>() is the previous state).
// init(args...) returns the initial transition: next_state(S0) plus actions,
// warren::ignore, or stop(reason). terminate(const caf::error&[, const S&]) is
// optional. Data (OTP's Data) is the class's members. Derive from
// warren::process_base for self(), parent() and trap_exit().
//
// Event types: call (ev.from() answers it, via the reply action), cast, info (any other
// message, trapped exits, down messages), internal (next_event), timeout (event
// timeout), state_timeout, generic_timeout (ev.timeout_name()), enter.
//
// Transitions and actions (chain them):
//   next_state(S) keep_state() repeat_state() stop(reason)
//   .postpone() .reply(ev.from(), value) .reply_error(ev.from(), err)
//   .event_timeout(T, msg)                 cancelled by any event
//   .state_timeout(T, msg)                 cancelled by a state change; re-setting restarts it
//   .cancel_state_timeout()
//   .timeout("name", T, msg)               generic: cancelled only explicitly or re-armed
//   .cancel_timeout("name")
//   .next_event(msg)                       an internal event, processed before anything else
// A state change means NextState != State; keep_state and repeat_state are not.
// Postponed events are retried after a state change, in their original order, before
// newer events (events inserted with next_event come first). `infinity` as a timeout
// time cancels that timeout. With stop(reason).reply(...), replies go out first, then
// terminate runs (gen_statem's order; gen_server's is the opposite).
//
// Clients use warren::call<Reply>(...), warren::async_call<Reply>(...) and
// warren::cast(...) from server.hpp.
#pragma once

#include "warren/detail/behaviour.hpp"
#include "warren/server.hpp"

#include <caf/response_promise.hpp>

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace warren::sm {

enum class event_type : uint8_t {
  call,
  cast,
  info,
  internal,
  timeout,
  state_timeout,
  generic_timeout,
  enter
};

inline const char* to_string(event_type x) {
  switch (x) {
    case event_type::call:
      return "call";
    case event_type::cast:
      return "cast";
    case event_type::info:
      return "info";
    case event_type::internal:
      return "internal";
    case event_type::timeout:
      return "timeout";
    case event_type::state_timeout:
      return "state_timeout";
    case event_type::generic_timeout:
      return "generic_timeout";
    case event_type::enter:
      return "enter";
  }
  return "unknown";
}

/// One event: its type and content.
class event {
public:
  event() = default;
  event(event_type type, caf::message msg, size_t offset = 0)
    : type_(type), offset_(offset), msg_(std::move(msg)) {}

  event_type type() const noexcept { return type_; }
  bool is_call() const noexcept { return type_ == event_type::call; }

  /// True if the content is exactly one T.
  template <class T>
  bool is() const {
    return msg_.size() == offset_ + 1 && msg_.match_element<T>(offset_);
  }
  /// True if the content is exactly Ts...
  template <class... Ts>
  bool matches() const {
    return msg_.size() == offset_ + sizeof...(Ts) && match_from<Ts...>(offset_);
  }
  /// Element `i` of the content (unchecked: test with is()/matches() first).
  template <class T>
  const T& get(size_t i = 0) const {
    return msg_.get_as<T>(offset_ + i);
  }
  template <class T>
  const T* get_if() const {
    return is<T>() ? &get<T>() : nullptr;
  }
  /// The content as a message (for calls and casts without the protocol tag).
  caf::message content() const { return offset_ == 0 ? msg_ : msg_.drop(offset_); }

  /// For calls: OTP's From, for the reply action (or to deliver later).
  const caf::response_promise& from() const noexcept { return from_; }
  /// For generic timeouts: the timer's name.
  const std::string& timeout_name() const noexcept { return name_; }
  /// For enter events: the previous state (the current one for the initial state
  /// and after repeat_state). S must be the machine's state type.
  template <class S>
  const S& old_state() const {
    return *static_cast<const S*>(old_state_);
  }

  // -- set by the state machine ------------------------------------------------------
  void set_from(caf::response_promise rp) { from_ = std::move(rp); }
  void set_name(std::string name) { name_ = std::move(name); }
  void set_old_state(const void* ptr) { old_state_ = ptr; }

private:
  template <class T, class... Ts>
  bool match_from(size_t i) const {
    if (!msg_.match_element<T>(i))
      return false;
    if constexpr (sizeof...(Ts) > 0)
      return match_from<Ts...>(i + 1);
    else
      return true;
  }
  template <class... Ts>
  requires(sizeof...(Ts) == 0) bool match_from(size_t) const { return true; }

  event_type type_ = event_type::info;
  size_t offset_ = 0;
  caf::message msg_;
  caf::response_promise from_;
  std::string name_;
  const void* old_state_ = nullptr;
};

namespace detail {

struct timer_action {
  enum class which : uint8_t { event, state, generic };
  which kind;
  bool cancel;
  std::string name;
  caf::timespan after;
  caf::message msg;
};

struct reply_action {
  caf::response_promise to;
  caf::message value;
  caf::error err;
};

/// The state-independent part of a transition.
struct transition_data {
  enum class kind : uint8_t { keep, next, repeat, stop, ignore };
  kind what = kind::keep;
  caf::error reason;
  bool postpone_ = false;
  std::vector<reply_action> replies;
  std::vector<timer_action> timers;
  std::vector<caf::message> inserted;
};

struct no_state {};

} // namespace detail

/// A transition with its actions (OTP's callback return). transition<> (no state) is
/// what keep_state(), repeat_state() and stop() make; it converts to any transition<S>.
template <class State = void>
class transition : public detail::transition_data {
public:
  using state_type = State;
  using stored = std::conditional_t<std::is_void_v<State>, detail::no_state, std::optional<State>>;

  transition() = default;
  transition(ignore_t) { what = kind::ignore; }

  template <class U>
  requires(!std::is_same_v<U, State> && (std::is_void_v<U> || std::is_constructible_v<State, U>))
      transition(transition<U>&& other)
    : detail::transition_data(std::move(other)) {
    if constexpr (!std::is_void_v<U> && !std::is_void_v<State>)
      if (other.next_)
        next_.emplace(std::move(*other.next_));
  }

  /// OTP's postpone: retry this event after the next state change.
  transition& postpone() & {
    postpone_ = true;
    return *this;
  }
  transition&& postpone() && { return std::move(postpone()); }

  /// OTP's {reply, From, Reply}.
  template <class T>
  transition& reply(const caf::response_promise& to, T&& value) & {
    replies.push_back({to, caf::make_message(std::forward<T>(value)), {}});
    return *this;
  }
  template <class T>
  transition&& reply(const caf::response_promise& to, T&& value) && {
    return std::move(reply(to, std::forward<T>(value)));
  }
  /// Answers a call with an error.
  transition& reply_error(const caf::response_promise& to, caf::error err) & {
    replies.push_back({to, {}, std::move(err)});
    return *this;
  }
  transition&& reply_error(const caf::response_promise& to, caf::error err) && {
    return std::move(reply_error(to, std::move(err)));
  }

  /// OTP's {timeout, T, Msg}: fires unless an event arrives first.
  template <class T>
  transition& event_timeout(caf::timespan after, T&& msg) & {
    return timer(timer_action::which::event, {}, after, caf::make_message(std::forward<T>(msg)));
  }
  template <class T>
  transition&& event_timeout(caf::timespan after, T&& msg) && {
    return std::move(event_timeout(after, std::forward<T>(msg)));
  }

  /// OTP's {state_timeout, T, Msg}: fires unless the state changes first.
  template <class T>
  transition& state_timeout(caf::timespan after, T&& msg) & {
    return timer(timer_action::which::state, {}, after, caf::make_message(std::forward<T>(msg)));
  }
  template <class T>
  transition&& state_timeout(caf::timespan after, T&& msg) && {
    return std::move(state_timeout(after, std::forward<T>(msg)));
  }
  transition& cancel_state_timeout() & {
    timers.push_back({timer_action::which::state, true, {}, {}, {}});
    return *this;
  }
  transition&& cancel_state_timeout() && { return std::move(cancel_state_timeout()); }

  /// OTP's {{timeout, Name}, T, Msg}: independent per name; re-arming restarts it.
  template <class T>
  transition& timeout(std::string name, caf::timespan after, T&& msg) & {
    return timer(timer_action::which::generic, std::move(name), after,
                 caf::make_message(std::forward<T>(msg)));
  }
  template <class T>
  transition&& timeout(std::string name, caf::timespan after, T&& msg) && {
    return std::move(timeout(std::move(name), after, std::forward<T>(msg)));
  }
  transition& cancel_timeout(std::string name) & {
    timers.push_back({timer_action::which::generic, true, std::move(name), {}, {}});
    return *this;
  }
  transition&& cancel_timeout(std::string name) && { return std::move(cancel_timeout(std::move(name))); }

  /// OTP's {next_event, internal, Msg}.
  template <class T>
  transition& next_event(T&& msg) & {
    inserted.push_back(caf::make_message(std::forward<T>(msg)));
    return *this;
  }
  template <class T>
  transition&& next_event(T&& msg) && {
    return std::move(next_event(std::forward<T>(msg)));
  }

  stored next_;

private:
  using timer_action = detail::timer_action;
  transition& timer(timer_action::which w, std::string name, caf::timespan after, caf::message msg) {
    timers.push_back({w, after == infinity, std::move(name), after, std::move(msg)});
    return *this;
  }
};

/// A state of a state_functions machine: one of Impl's member functions.
template <class Impl>
struct state_fn {
  using pointer = transition<state_fn<Impl>> (Impl::*)(const event&);
  pointer fn = nullptr;
  state_fn() = default;
  state_fn(pointer f) : fn(f) {}
  friend bool operator==(const state_fn& x, const state_fn& y) { return x.fn == y.fn; }
};

/// The result of a state function of Impl.
template <class Impl>
using state_result = transition<state_fn<Impl>>;

/// OTP's {next_state, S, Data, Actions}.
template <class S>
transition<S> next_state(S s) {
  transition<S> t;
  t.what = detail::transition_data::kind::next;
  t.next_.emplace(std::move(s));
  return t;
}
/// next_state for state_functions: next_state(&Impl::open).
template <class C>
transition<state_fn<C>> next_state(transition<state_fn<C>> (C::*f)(const event&)) {
  return next_state(state_fn<C>{f});
}
/// OTP's keep_state.
inline transition<> keep_state() {
  return {};
}
/// OTP's repeat_state: like keep_state, but the state-enter call runs again.
inline transition<> repeat_state() {
  transition<> t;
  t.what = detail::transition_data::kind::repeat;
  return t;
}
/// OTP's stop / stop_and_reply (add .reply(...)).
inline transition<> stop(caf::error reason = {}) {
  transition<> t;
  t.what = detail::transition_data::kind::stop;
  t.reason = std::move(reason);
  return t;
}

namespace detail {

using statem_timer_atom = caf::atom_constant<caf::atom("wsmtimer")>;

template <class Impl>
struct statem_traits {
  static constexpr bool handle_event_function = false;
  using state = state_fn<Impl>;
};
template <class Impl>
requires requires {
  typename Impl::state_type;
}
struct statem_traits<Impl> {
  static constexpr bool handle_event_function = true;
  using state = typename Impl::state_type;
};

template <class Impl>
constexpr bool state_enter_enabled() {
  if constexpr (requires { Impl::state_enter; })
    return static_cast<bool>(Impl::state_enter);
  else
    return false;
}

template <class Impl>
class statem_actor final : public warren::detail::behaviour_actor {
public:
  using traits = statem_traits<Impl>;
  using state_t = typename traits::state;
  using trans = transition<state_t>;
  using kind = transition_data::kind;
  static constexpr bool state_enter = state_enter_enabled<Impl>();

  template <class... Ts>
  statem_actor(caf::actor_config& cfg, warren::detail::start_outcome* out, caf::actor parent,
               const caf::message& extra, Ts&&... xs)
    : behaviour_actor(cfg, std::move(parent)) {
    using outcome = warren::detail::start_outcome::kind;
    warren::detail::constructing_guard guard{this};
    try {
      auto err = warren::detail::construct_and_init(
          impl_, extra,
          [&](auto&& r) {
            using R = std::decay_t<decltype(r)>;
            static_assert(!std::is_same_v<R, warren::detail::no_init>,
                          "a state machine's init must return its initial transition");
            trans t{std::forward<decltype(r)>(r)};
            switch (t.what) {
              case kind::next:
                if (t.postpone_) {
                  record_start(out, outcome::failed,
                               make_error(exit_code::bad_return_value, "postpone in init"));
                  return;
                }
                state_.emplace(std::move(*t.next_));
                init_.emplace(std::move(t));
                record_start(out, outcome::ok);
                return;
              case kind::ignore:
                record_start(out, outcome::ignore);
                return;
              case kind::stop:
                record_start(out, outcome::failed, t.reason);
                return;
              default:
                record_start(out, outcome::failed,
                             make_error(exit_code::bad_return_value, "init must return next_state"));
                return;
            }
          },
          std::forward<Ts>(xs)...);
      if (err)
        record_start(out, outcome::failed, std::move(err));
    } catch (...) {
      auto eptr = std::current_exception();
      record_start(out, outcome::failed, exception_to_exit(eptr));
    }
    if (out != nullptr && out->what != outcome::ok)
      impl_.reset();
  }

  const char* name() const override { return "warren.statem"; }

  caf::behavior make_behavior() override {
    if (!started_or_quit())
      return {};
    install_handlers();
    set_default_handler([this](caf::scheduled_actor*, caf::message_view& x) -> caf::result<caf::message> {
      if (stopping())
        return caf::delegated<caf::message>{};
      auto& content = x.content();
      auto type = event_type::info;
      size_t offset = 0;
      caf::response_promise rp;
      if (content.size() >= 1 && content.match_element<call_atom>(0) && current_message_id().is_request()) {
        type = event_type::call;
        offset = 1;
        rp = make_response_promise();
      } else if (content.size() >= 1 && content.match_element<cast_atom>(0)) {
        type = event_type::cast;
        offset = 1;
      }
      event ev{type, x.move_content_to_message(), offset};
      if (type == event_type::call)
        ev.set_from(std::move(rp));
      handle_external(std::move(ev));
      return caf::delegated<caf::message>{};
    });
    // The initial state: init's actions, then its enter call (OTP).
    auto t = std::move(*init_);
    init_.reset();
    apply(std::move(t), nullptr, true);
    drain(); // events inserted by init
    if (stopping())
      return {};
    return caf::behavior{[this](statem_timer_atom, uint64_t seq) { on_timer(seq); }};
  }

protected:
  // The state goes with the process, as in OTP: a response promise it still holds
  // (a postponed reply) keeps a strong reference to this actor.
  void on_exit() override {
    impl_.reset();
    state_.reset();
  }

  caf::error run_terminate(caf::error reason) noexcept override {
    if (!impl_)
      return reason;
    try {
      if constexpr (requires(Impl & i, const caf::error& e, const state_t& s) { i.terminate(e, s); })
        impl_->terminate(reason, *state_);
      else if constexpr (requires(Impl & i, const caf::error& e) { i.terminate(e); })
        impl_->terminate(reason);
    } catch (...) {
      auto eptr = std::current_exception();
      return exception_to_exit(eptr);
    }
    return reason;
  }

  void deliver_info(caf::message msg) override { handle_external(event{event_type::info, std::move(msg)}); }

private:
  struct timer {
    uint64_t seq = 0;
    caf::message msg;
  };

  void handle_external(event ev) {
    run_event(std::move(ev));
    drain();
  }

  /// Processes inserted and retried events: they come before the next message.
  void drain() {
    while (!stopping() && !queue_.empty()) {
      auto next = std::move(queue_.front());
      queue_.pop_front();
      run_event(std::move(next));
    }
  }

  void run_event(event ev) {
    event_timer_ = timer{}; // any event cancels the event timeout
    apply(invoke(ev), &ev, false);
  }

  trans invoke(const event& ev) {
    if constexpr (traits::handle_event_function) {
      return impl_->handle_event(ev, *state_);
    } else {
      auto fn = state_->fn;
      return ((*impl_).*fn)(ev);
    }
  }

  void send_replies(transition_data& t) {
    for (auto& r : t.replies) {
      if (!r.to.pending())
        continue;
      if (r.err)
        r.to.deliver(std::move(r.err));
      else
        r.to.deliver(std::move(r.value));
    }
  }

  void apply_timers(transition_data& t, std::optional<timer_action>& pending_event_timer) {
    for (auto& x : t.timers) {
      switch (x.kind) {
        case timer_action::which::event:
          if (x.cancel)
            pending_event_timer.reset();
          else
            pending_event_timer = std::move(x);
          break;
        case timer_action::which::state:
          if (x.cancel)
            state_timer_ = timer{};
          else
            state_timer_ = arm(x.after, std::move(x.msg));
          break;
        case timer_action::which::generic:
          if (x.cancel)
            generic_.erase(x.name);
          else
            generic_[x.name] = arm(x.after, std::move(x.msg));
          break;
      }
    }
  }

  timer arm(caf::timespan after, caf::message msg) {
    auto seq = ++seq_;
    delayed_send(caf::actor_cast<caf::actor>(this), after, statem_timer_atom::value, seq);
    return {seq, std::move(msg)};
  }

  void stop_after(transition_data& t) {
    // gen_statem: replies first, then terminate.
    send_replies(t);
    stop_with(t.reason);
  }

  /// Applies a transition returned for `ev` (null for init).
  void apply(trans t, event* ev, bool initial) {
    if (t.what == kind::stop) {
      stop_after(t);
      return;
    }
    if (t.what == kind::ignore) {
      stop_with(make_error(exit_code::bad_return_value, "ignore returned outside init"));
      return;
    }
    send_replies(t);
    bool changed = initial;
    bool repeat = t.what == kind::repeat;
    std::optional<state_t> old;
    if (t.what == kind::next && !initial && !(*t.next_ == *state_)) {
      changed = true;
      if constexpr (state_enter)
        old.emplace(std::move(*state_));
      state_.emplace(std::move(*t.next_));
    }
    if (t.postpone_ && ev != nullptr)
      postponed_.push_back(std::move(*ev));
    if (changed && !initial) {
      state_timer_ = timer{};
      // Postponed events first, in their original order, before newer ones.
      queue_.insert(queue_.begin(), std::make_move_iterator(postponed_.begin()),
                    std::make_move_iterator(postponed_.end()));
      postponed_.clear();
    }
    for (auto i = t.inserted.rbegin(); i != t.inserted.rend(); ++i)
      queue_.push_front(event{event_type::internal, std::move(*i)});
    std::optional<timer_action> pending_event_timer;
    apply_timers(t, pending_event_timer);
    if constexpr (state_enter) {
      bool need_enter = changed || repeat;
      while (need_enter && !stopping()) {
        if (!old)
          old.emplace(*state_);
        event enter_ev{event_type::enter, caf::message{}};
        enter_ev.set_old_state(&*old);
        auto et = invoke(enter_ev);
        old.reset();
        if (et.what == kind::stop) {
          stop_after(et);
          return;
        }
        if (et.postpone_ || !et.inserted.empty() || et.what == kind::ignore ||
            (et.what == kind::next && !(*et.next_ == *state_))) {
          stop_with(make_error(exit_code::bad_return_value,
                               "a state enter call may not change state, postpone or insert events"));
          return;
        }
        send_replies(et);
        apply_timers(et, pending_event_timer);
        need_enter = et.what == kind::repeat;
      }
    }
    // An event timeout only starts when no event is waiting to be processed.
    if (pending_event_timer && queue_.empty() && !stopping())
      event_timer_ = arm(pending_event_timer->after, std::move(pending_event_timer->msg));
  }

  void on_timer(uint64_t seq) {
    if (stopping() || seq == 0)
      return;
    event ev;
    if (event_timer_.seq == seq) {
      ev = event{event_type::timeout, std::move(event_timer_.msg)};
      event_timer_ = timer{};
    } else if (state_timer_.seq == seq) {
      ev = event{event_type::state_timeout, std::move(state_timer_.msg)};
      state_timer_ = timer{};
    } else {
      auto i = generic_.begin();
      while (i != generic_.end() && i->second.seq != seq)
        ++i;
      if (i == generic_.end())
        return; // stale: cancelled or re-armed since
      ev = event{event_type::generic_timeout, std::move(i->second.msg)};
      ev.set_name(i->first);
      generic_.erase(i);
    }
    handle_external(std::move(ev));
  }

  std::optional<Impl> impl_;
  std::optional<state_t> state_;
  std::optional<trans> init_;
  std::deque<event> queue_;
  std::vector<event> postponed_;
  uint64_t seq_ = 0;
  timer event_timer_;
  timer state_timer_;
  std::map<std::string, timer> generic_;
};

} // namespace detail

} // namespace warren::sm

namespace warren {

/// A start function's body for a state machine (OTP's gen_statem:start_link).
template <class Impl, class... Ts>
start_result start_statem(const start_context& ctx, Ts&&... xs) {
  return detail::start_behaviour<sm::detail::statem_actor<Impl>>(ctx, std::forward<Ts>(xs)...);
}

/// A child spec for a state machine: worker, permanent (change fields as needed).
template <class Impl, class... Ts>
child_spec statem_child(std::string id, Ts... xs) {
  child_spec spec;
  spec.id = std::move(id);
  spec.start = [=](const start_context& ctx) -> start_result { return start_statem<Impl>(ctx, xs...); };
  spec.type = child_type::worker;
  spec.restart = restart_type::permanent;
  return spec;
}

/// Starts a state machine outside any supervisor. `ignore` yields a null actor.
template <class Impl, class... Ts>
caf::expected<caf::actor> spawn_statem(caf::actor_system& sys, Ts&&... xs) {
  return detail::to_expected(start_statem<Impl>(start_context{sys, caf::actor{}}, std::forward<Ts>(xs)...));
}

} // namespace warren
