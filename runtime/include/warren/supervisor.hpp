// OTP's supervisor module on CAF: strategies, restart intensity, shutdown order,
// significant children and auto_shutdown, and the dynamic child API.
//
// A supervisor is a CAF actor. Start one at the top with start_supervisor(), or as a
// child with supervisor_child(). Talk to it from ordinary threads with the blocking
// functions in namespace warren::sup, or from actors with the message interface below
// (every request answers with the same types the blocking functions return).
#pragma once

#include "warren/child_spec.hpp"
#include "warren/exit.hpp"
#include "warren/introspection.hpp"

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/expected.hpp>

#include <optional>
#include <string>
#include <vector>

namespace warren {

enum class restart_strategy : uint8_t { one_for_one, one_for_all, rest_for_one, simple_one_for_one };
enum class auto_shutdown : uint8_t { never, any_significant, all_significant };

std::string to_string(restart_strategy x);
std::string to_string(auto_shutdown x);

/// OTP's sup_flags(). Defaults as OTP: one_for_one, at most 1 restart in 5 s.
struct supervisor_flags {
  restart_strategy strategy = restart_strategy::one_for_one;
  int intensity = 1;
  caf::timespan period = std::chrono::seconds(5);
  warren::auto_shutdown auto_shutdown = warren::auto_shutdown::never;
};

/// Errors the supervisor API returns: OTP's error atoms as a typed enum.
enum class sup_errc : uint8_t {
  already_present = 1, ///< the id exists but the child is not running
  already_started,     ///< the id (or registered name) is running; context: the caf::actor
  running,             ///< restart_child/delete_child on a running child
  restarting,          ///< the child is between restart attempts
  not_found,           ///< no such child
  simple_one_for_one,  ///< the call is not available under simple_one_for_one
  invalid_spec,        ///< a child spec failed validation; context: what is wrong
  invalid_flags,       ///< supervisor flags failed validation; context: what is wrong
  start_failed,        ///< a child's start function failed; context: id and reason
  noproc,              ///< the supervisor is not alive
};

std::string to_string(sup_errc x);
caf::error make_error(sup_errc x);
caf::error make_error(sup_errc x, std::string what);
constexpr caf::atom_value sup_error_category = caf::atom("supervisor");

/// OTP's {already_started, Pid}: sup_errc::already_started carrying the running actor.
/// A start function that finds its actor running already returns this, and start_child
/// hands it back unchanged.
caf::error already_started(caf::actor running);
/// The running actor inside already_started(); nullopt for any other error.
std::optional<caf::actor> already_started_of(const caf::error& err);

/// OTP's {failed_to_start_child, Id, Reason}, as values.
struct start_failure {
  std::string child;
  caf::error reason;
};
/// sup_errc::start_failed carrying the child's id and its start's error.
caf::error failed_to_start_child(std::string child, caf::error reason);
/// The id and reason inside failed_to_start_child(), also when wrapped in a
/// supervisor's exit reason {shutdown, ...}; nullopt for any other error.
std::optional<start_failure> start_failure_of(const caf::error& err);

/// Checks flags and specs as OTP's check_flags/check_childspecs do: empty error if fine.
caf::error check_flags(const supervisor_flags& flags);
caf::error check_child_spec(const child_spec& spec, const supervisor_flags& flags);

/// A child spec whose child is a supervisor (type supervisor, shutdown infinity).
child_spec supervisor_child(std::string id, supervisor_flags flags, std::vector<child_spec> children,
                            restart_type restart = restart_type::permanent);

/// Starts a supervisor outside any tree. Like supervisor:start_link, it returns once
/// every child has started, or the error that made it fail:
/// {shutdown, {failed_to_start_child, Id, E}} becomes sup_errc::start_failed.
/// `parent`, when given, is the actor whose exit stops the supervisor (held weakly).
/// Exits from other actors that are not children are ignored, as OTP's supervisor
/// ignores EXITs of linked strangers; without a parent, an anonymous exit
/// (caf::anon_send_exit) stops it, and sup::stop always does.
/// Dropping every handle of a running supervisor stops its tree as its parent's exit
/// would (reverse start order, shutdown specs honoured); docs/supervision.md says why.
caf::expected<caf::actor> start_supervisor(caf::actor_system& sys, supervisor_flags flags,
                                           std::vector<child_spec> children, std::string id = "supervisor",
                                           caf::actor parent = {});

// -- message interface (for requests from actors) --------------------------------

using start_child_atom = caf::atom_constant<caf::atom("startchild")>;    // (child_spec) or (message) -> actor
using terminate_child_atom = caf::atom_constant<caf::atom("termchild")>; // (string) or (actor) -> unit
using restart_child_atom = caf::atom_constant<caf::atom("restchild")>;   // (string) -> actor
using delete_child_atom = caf::atom_constant<caf::atom("delchild")>;     // (string) -> unit
using which_children_atom = caf::atom_constant<caf::atom("whichchild")>; // () -> std::vector<child_info>
using count_children_atom = caf::atom_constant<caf::atom("countchild")>; // () -> child_counts
using get_childspec_atom = caf::atom_constant<caf::atom("getspec")>;     // (string) -> child_spec
using tree_atom = caf::atom_constant<caf::atom("tree")>;                 // () -> tree_node
/// OTP's supervisor:stop (a system message, not an exit signal): the supervisor stops
/// its children and exits with the reason. No answer; monitor it to see it end.
using stop_supervisor_atom = caf::atom_constant<caf::atom("supstop")>; // (caf::error reason)

// -- blocking API for ordinary threads (never call these from inside an actor) ---

namespace sup {

/// Starts a child from a spec (static strategies). A start that returns `ignore`
/// yields a null actor, as OTP's {ok, undefined}.
caf::expected<caf::actor> start_child(caf::actor_system& sys, const caf::actor& sup, child_spec spec);
/// simple_one_for_one: starts a child from the template with extra arguments.
caf::expected<caf::actor> start_child(caf::actor_system& sys, const caf::actor& sup, caf::message args);
caf::error terminate_child(caf::actor_system& sys, const caf::actor& sup, const std::string& id);
/// simple_one_for_one: terminates a dynamic child by handle.
caf::error terminate_child(caf::actor_system& sys, const caf::actor& sup, const caf::actor& child);
caf::expected<caf::actor> restart_child(caf::actor_system& sys, const caf::actor& sup, const std::string& id);
caf::error delete_child(caf::actor_system& sys, const caf::actor& sup, const std::string& id);
caf::expected<std::vector<child_info>> which_children(caf::actor_system& sys, const caf::actor& sup);
caf::expected<child_counts> count_children(caf::actor_system& sys, const caf::actor& sup);
caf::expected<child_spec> get_childspec(caf::actor_system& sys, const caf::actor& sup, const std::string& id);
/// The whole subtree, recursively (see introspection.hpp for JSON and text forms).
caf::expected<tree_node> tree(caf::actor_system& sys, const caf::actor& sup);

/// Stops a supervisor with `reason` (shutdown by default) and waits until it and its
/// whole subtree are gone. Returns the supervisor's exit reason.
caf::error stop(caf::actor_system& sys, const caf::actor& sup, caf::error reason = shutdown());

} // namespace sup

} // namespace warren
