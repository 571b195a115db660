// Child specifications: what a supervisor needs to start, restart and stop a child.
// Mirrors OTP's child_spec() map: id, start, restart, shutdown, type, significant,
// plus Warren's restart-delay policy and an optional registered name.
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/detail/type_list.hpp>
#include <caf/detail/type_traits.hpp>
#include <caf/error.hpp>
#include <caf/message.hpp>
#include <caf/timespan.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <variant>

namespace warren {

/// OTP's restart types.
enum class restart_type : uint8_t {
  permanent, ///< always restarted
  transient, ///< restarted only after an abnormal exit
  temporary, ///< never restarted; removed from the child list when it exits
};

/// OTP's child types.
enum class child_type : uint8_t { worker, supervisor };

std::string to_string(restart_type x);
std::string to_string(child_type x);

/// How a supervisor stops one child: brutal_kill, a timeout after which the child
/// is killed, or infinity.
struct shutdown_spec {
  enum class kind : uint8_t { brutal_kill, timeout, infinity };
  kind how = kind::timeout;
  caf::timespan time = std::chrono::seconds(5);

  static shutdown_spec brutal_kill() { return {kind::brutal_kill, caf::timespan{0}}; }
  static shutdown_spec timeout(caf::timespan t) { return {kind::timeout, t}; }
  static shutdown_spec infinity() { return {kind::infinity, caf::timespan{0}}; }
};

std::string to_string(const shutdown_spec& x);

/// Warren's restart-delay policy, which OTP lacks: wait before restarting a child,
/// by a fixed delay or an exponential backoff with jitter and a cap. The restart is
/// still counted against the supervisor's intensity when it is decided (at the
/// crash), so a crash loop escalates exactly as it would without a delay.
struct restart_delay {
  caf::timespan initial{0};     ///< 0: restart at once, as OTP does
  double factor = 1.0;          ///< 1: fixed delay; >1: exponential backoff
  caf::timespan max{0};         ///< cap for the backoff (0: no cap)
  double jitter = 0.0;          ///< +-fraction of the delay drawn at random, 0..1
  caf::timespan reset_after{0}; ///< a child that ran this long starts the backoff over (0: 10 x max)

  static restart_delay none() { return {}; }
  static restart_delay fixed(caf::timespan d) { return {d, 1.0, d, 0.0, caf::timespan{0}}; }
  static restart_delay exponential(caf::timespan initial, caf::timespan max, double factor = 2.0,
                                   double jitter = 0.1) {
    return {initial, factor, max, jitter, caf::timespan{0}};
  }

  bool enabled() const noexcept { return initial.count() > 0; }

  /// The delay before restart number `attempt` (0 for the first restart after a
  /// healthy run). `unit` is a number in [0, 1) that places the jitter.
  caf::timespan delay_for(unsigned attempt, double unit) const;
};

/// Result of a start function: the child's handle, OTP's `ignore`, or an error.
struct ignore_t {};
inline constexpr ignore_t ignore{};

class start_result {
public:
  start_result(caf::actor handle) : value_(std::move(handle)) {}
  start_result(ignore_t) : value_(ignore) {}
  start_result(caf::error reason) : value_(std::move(reason)) {}
  template <class E, class = caf::enable_if_has_make_error_t<E>>
  start_result(E code) : value_(caf::error{code}) {}
  /// A failure that left an actor still stopping (a supervisor stopping the children
  /// it had started, a behaviour whose init failed). As OTP's start_link, whoever
  /// started it reports the failure only once that actor is gone, so a retry cannot
  /// collide with what it still holds (children, registered names).
  start_result(caf::error reason, caf::actor stopping)
    : value_(std::move(reason)), stopping_(std::move(stopping)) {}

  /// The actor a failed start left stopping; null when none.
  const caf::actor& stopping() const noexcept { return stopping_; }

  bool started() const noexcept { return std::holds_alternative<caf::actor>(value_); }
  bool ignored() const noexcept { return std::holds_alternative<ignore_t>(value_); }
  bool failed() const noexcept { return std::holds_alternative<caf::error>(value_); }
  const caf::actor& actor() const { return std::get<caf::actor>(value_); }
  const caf::error& error() const { return std::get<caf::error>(value_); }

private:
  std::variant<caf::actor, ignore_t, caf::error> value_;
  caf::actor stopping_;
};

/// What a supervisor hands a start function.
class start_context {
public:
  start_context(caf::actor_system& sys, caf::actor parent, caf::message args = {})
    : sys_(&sys), parent_(std::move(parent)), args_(std::move(args)) {}

  caf::actor_system& system() const noexcept { return *sys_; }
  /// The supervisor starting the child: an exit from it is a shutdown request.
  /// Null for a child started outside any supervisor.
  const caf::actor& parent() const noexcept { return parent_; }
  /// Extra arguments given to start_child under simple_one_for_one (OTP's
  /// ExtraArgs, appended to the template's own).
  const caf::message& args() const noexcept { return args_; }

private:
  caf::actor_system* sys_;
  caf::actor parent_;
  caf::message args_;
};

/// Starts a child. It runs on the supervisor's thread, in order; the child counts as
/// started when it returns a handle (Warren's behaviours have run their init by then).
using start_fn = std::function<start_result(const start_context&)>;

/// OTP's child_spec(). `shutdown` defaults to 5 s for workers and infinity for
/// supervisors.
struct child_spec {
  std::string id;
  start_fn start;
  restart_type restart = restart_type::permanent;
  std::optional<shutdown_spec> shutdown;
  child_type type = child_type::worker;
  bool significant = false;
  restart_delay delay = restart_delay::none();
  /// When set, the supervisor registers each started instance under this local name
  /// (see registry.hpp); a taken name fails the start with already_started carrying
  /// the holder (the start function is not called when the name is taken already).
  std::string name;

  shutdown_spec effective_shutdown() const {
    if (shutdown)
      return *shutdown;
    return type == child_type::supervisor ? shutdown_spec::infinity()
                                          : shutdown_spec::timeout(std::chrono::seconds(5));
  }
};

/// A start function for a class-based CAF actor: spawns `Actor(args...)`.
template <class Actor, class... Ts>
start_fn spawn_fn(Ts... xs) {
  return
      [=](const start_context& ctx) -> start_result { return caf::actor{ctx.system().spawn<Actor>(xs...)}; };
}

/// A start function for a function-based CAF actor: spawns `fun(self, args...)`.
template <class F, class... Ts>
start_fn spawn_fn_of(F fun, Ts... xs) {
  return [=](const start_context& ctx) -> start_result {
    if constexpr (sizeof...(Ts) == 0) {
      // CAF 0.17 dereferences a null pointer when it spawns a function-based actor
      // without arguments (UndefinedBehaviorSanitizer reports it); pass a dummy one.
      using traits = caf::detail::get_callable_trait<F>;
      using self_ptr = typename caf::detail::tl_head<typename traits::arg_types>::type;
      return caf::actor{ctx.system().spawn([fun](self_ptr self, int) { return fun(self); }, 0)};
    } else {
      return caf::actor{ctx.system().spawn(fun, xs...)};
    }
  };
}

} // namespace warren

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(warren::child_spec)
