// OTP's gen_event on CAF: an event manager actor hosting any number of handlers.
//
// A handler is a C++ object derived from event_handler, added under a string id.
// Events go to every handler, newest first; a handler whose callback throws is
// removed (terminate gets the crash), reported through warren::log(), and the manager
// and the other handlers carry on. Supervised handlers (add_sup_handler) tell their
// owner when they go, and go when their owner dies.
//
// Start a manager standalone with spawn_event_manager(), or under a supervisor with
// event_manager_child(). Talk to it from ordinary threads with the blocking
// functions in namespace warren::ev, or from actors with the message interface below.
#pragma once

#include "warren/child_spec.hpp"
#include "warren/exit.hpp"

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace warren {

// -- errors ----------------------------------------------------------------------

constexpr caf::atom_value event_error_category = caf::atom("gen_event");

enum class event_errc : uint8_t {
  module_not_found = 1, ///< delete_handler: no such handler (OTP: {error, module_not_found})
  bad_module,           ///< call: no such handler (OTP: {error, bad_module})
  already_exists,       ///< add/swap: a handler with this id is installed
  invalid_handler,      ///< empty id or null handler
  swapped,              ///< owner notification: the handler was swapped; context: the new id
  noproc,               ///< the manager is not alive
};

std::string to_string(event_errc x);
caf::error make_error(event_errc x);
caf::error make_error(event_errc x, std::string what);

// -- handlers --------------------------------------------------------------------

/// Why a handler is terminated: the first argument of OTP's terminate/2.
class terminate_reason {
public:
  enum class kind : uint8_t {
    args,           ///< delete_handler or swap_handler; args() holds the caller's Args
    remove_handler, ///< the handler asked to be removed (OTP: remove_handler)
    stop,           ///< the manager stops (OTP: stop)
    owner_exit,     ///< its owner died; reason() holds why (OTP: {stop, Reason})
    error,          ///< a callback threw; reason() holds the crash (OTP: {error, {'EXIT', R}})
  };

  static terminate_reason with_args(caf::message args) { return {kind::args, std::move(args), {}}; }
  static terminate_reason remove() { return {kind::remove_handler, {}, {}}; }
  static terminate_reason stop() { return {kind::stop, {}, {}}; }
  static terminate_reason owner_exit(caf::error why) { return {kind::owner_exit, {}, std::move(why)}; }
  static terminate_reason crash(caf::error why) { return {kind::error, {}, std::move(why)}; }

  kind what() const noexcept { return kind_; }
  const caf::message& args() const noexcept { return args_; }
  const caf::error& reason() const noexcept { return reason_; }

private:
  terminate_reason(kind k, caf::message args, caf::error reason)
    : kind_(k), args_(std::move(args)), reason_(std::move(reason)) {}

  kind kind_;
  caf::message args_;
  caf::error reason_;
};

std::string to_string(terminate_reason::kind x);

/// What init receives: OTP's Args, or {Args2, Term} after a swap.
struct handler_init {
  caf::message args;
  /// True when the handler replaces another through swap_handler.
  bool swapped = false;
  /// After a swap: what the old handler's terminate returned; empty when no such
  /// handler was installed or its terminate threw (OTP passes `error`).
  std::optional<caf::message> old_result;
};

/// Base class of event handlers. Every callback runs inside the manager actor, one at
/// a time. A callback that throws gets the handler removed; the others are not
/// affected. Match message contents with caf::message's apply() or match_elements().
class event_handler {
public:
  virtual ~event_handler();

  /// Called once when the handler is added. An error refuses the handler: the add
  /// (or swap) returns it and the handler is not installed.
  virtual caf::error init(const handler_init& ctx);

  /// An event from notify or sync_notify.
  virtual void handle_event(const caf::message& event);

  /// A request from call(); the reply goes back to the caller.
  virtual caf::message handle_call(const caf::message& request);

  /// Any other message the manager receives (including exit messages from linked
  /// actors other than its parent, and down messages of monitors the handler set).
  virtual void handle_info(const caf::message& info);

  /// Called once when the handler is removed, for any reason but a killed manager.
  /// delete_handler returns the result; swap_handler passes it to the new handler.
  virtual caf::message terminate(const terminate_reason& why);

  /// The id the handler was added under (empty before init).
  const std::string& id() const noexcept { return id_; }

protected:
  /// Asks the manager to remove this handler once the current callback returns (OTP's
  /// remove_handler return value): it gets terminate(remove_handler).
  void remove_handler() noexcept { remove_requested_ = true; }

  /// The manager hosting this handler, for sending or monitoring (valid from init on).
  caf::event_based_actor* manager() const noexcept { return manager_; }

private:
  friend class event_manager_access;
  std::string id_;
  caf::event_based_actor* manager_ = nullptr;
  bool remove_requested_ = false;
};

using handler_ptr = std::shared_ptr<event_handler>;

// -- starting a manager ----------------------------------------------------------

/// Spawns an event manager, ready when this returns. `parent`, when given, is the
/// actor whose exit message stops it (after every handler got terminate(stop)); exit
/// messages from other actors go to the handlers' handle_info. Without a parent, any
/// exit message with a non-normal reason stops it.
caf::actor spawn_event_manager(caf::actor_system& sys, caf::actor parent = {});

/// A child spec running an event manager under a supervisor (a worker whose parent is
/// the supervisor).
child_spec event_manager_child(std::string id, restart_type restart = restart_type::permanent);

// -- message interface (for requests from actors) --------------------------------
//
//   (add_handler_atom, string id, handler_ptr, message args)          -> unit | error
//   (add_sup_handler_atom, string id, handler_ptr, message args)      -> unit | error   owner: the sender
//   (add_sup_handler_atom, string id, handler_ptr, message args, actor owner)
//   (delete_handler_atom, string id, message args)                   -> message | error
//   (swap_handler_atom, string old, message args1, string new, handler_ptr, message args2)
//                                                                     -> unit | error
//   (swap_sup_handler_atom, same as swap_handler)                     owner: the sender
//   (swap_sup_handler_atom, same as swap_handler, actor owner)
//   (which_handlers_atom)                                             -> vector<string>
//   (notify_atom, message event)                                      async
//   (sync_notify_atom, message event)                                 -> unit, after all handlers ran
//   (event_call_atom, string id, message request)                     -> message | error
//   (event_stop_atom, error reason)                                   -> unit, then the manager exits
//
// Replies of type `message` arrive as a message holding one element: the message.
// Owners of supervised handlers receive (gen_event_exit_atom, string id, error reason):
// reason is empty (normal) after delete_handler or remove_handler, the crash after a
// crash, shutdown when the manager stops, event_errc::swapped after a swap.

using add_handler_atom = caf::atom_constant<caf::atom("addhandler")>;
using add_sup_handler_atom = caf::atom_constant<caf::atom("addsuphndl")>;
using delete_handler_atom = caf::atom_constant<caf::atom("delhandler")>;
using swap_handler_atom = caf::atom_constant<caf::atom("swaphandlr")>;
using swap_sup_handler_atom = caf::atom_constant<caf::atom("swapsuphnd")>;
using which_handlers_atom = caf::atom_constant<caf::atom("whichhndlr")>;
using notify_atom = caf::atom_constant<caf::atom("notify")>;
using sync_notify_atom = caf::atom_constant<caf::atom("syncnotify")>;
using event_call_atom = caf::atom_constant<caf::atom("eventcall")>;
using event_stop_atom = caf::atom_constant<caf::atom("eventstop")>;
using gen_event_exit_atom = caf::atom_constant<caf::atom("geneventex")>;

// -- blocking API for ordinary threads (never call these from inside an actor) ---

namespace ev {

caf::error add_handler(caf::actor_system& sys, const caf::actor& mgr, std::string id, handler_ptr handler,
                       caf::message args = {});

/// OTP's add_sup_handler with an explicit owner (a thread has no actor to own it).
caf::error add_sup_handler(caf::actor_system& sys, const caf::actor& mgr, std::string id, handler_ptr handler,
                           const caf::actor& owner, caf::message args = {});

/// Returns what the handler's terminate returned, the crash if terminate threw, or
/// event_errc::module_not_found.
caf::expected<caf::message> delete_handler(caf::actor_system& sys, const caf::actor& mgr,
                                           const std::string& id, caf::message args = {});

/// Terminates `old_id` with `args1` and adds `handler` as `new_id`, whose init gets
/// {args2, old's terminate result}. The new handler keeps the old one's owner.
caf::error swap_handler(caf::actor_system& sys, const caf::actor& mgr, const std::string& old_id,
                        caf::message args1, std::string new_id, handler_ptr handler, caf::message args2 = {});

/// swap_handler whose new handler is supervised by `owner`.
caf::error swap_sup_handler(caf::actor_system& sys, const caf::actor& mgr, const std::string& old_id,
                            caf::message args1, std::string new_id, handler_ptr handler,
                            const caf::actor& owner, caf::message args2 = {});

/// Handler ids, newest first.
caf::expected<std::vector<std::string>> which_handlers(caf::actor_system& sys, const caf::actor& mgr);

/// Asynchronous: returns at once.
void notify(const caf::actor& mgr, caf::message event);

template <class T, class... Ts>
requires(sizeof...(Ts) > 0 ||
         !std::is_same_v<std::decay_t<T>, caf::message>) void notify(const caf::actor& mgr, T&& x,
                                                                     Ts&&... xs) {
  notify(mgr, caf::make_message(std::forward<T>(x), std::forward<Ts>(xs)...));
}

/// Returns after every handler has handled the event.
caf::error sync_notify(caf::actor_system& sys, const caf::actor& mgr, caf::message event);

/// Calls handler `id`. Errors: event_errc::bad_module, the crash (the handler is then
/// removed), or a timeout (OTP's default is 5 s).
caf::expected<caf::message>
call(caf::actor_system& sys, const caf::actor& mgr, const std::string& id, caf::message request,
     caf::timespan timeout = std::chrono::duration_cast<caf::timespan>(std::chrono::seconds(5)));

/// Stops the manager (every handler gets terminate(stop)) and waits until it is
/// gone. Returns its exit reason; event_errc::noproc if it was not alive.
caf::error stop(caf::actor_system& sys, const caf::actor& mgr, caf::error reason = shutdown());

} // namespace ev

} // namespace warren

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(warren::handler_ptr)
