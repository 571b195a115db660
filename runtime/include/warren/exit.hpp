// Exit reasons: how OTP's exit reasons map onto CAF's errors.
//
//   OTP                      Warren / CAF 0.17
//   normal                   caf::exit_reason::normal (an empty caf::error)
//   shutdown                 caf::exit_reason::user_shutdown
//   {shutdown, Term}         warren::shutdown_with("text")      (category "shutdown")
//   kill / killed            caf::exit_reason::kill             (cannot be trapped)
//   {Exception, Stack}       warren::exit_code::exception        (category "warren")
//   anything else            any other caf::error (abnormal)
//
// "Normal" reasons are exactly normal, shutdown and shutdown-with-reason; everything
// else, kill included, is abnormal. docs/supervision.md tells the whole story.
#pragma once

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/exit_reason.hpp>
#include <caf/message.hpp>

#include <exception>
#include <optional>
#include <string>

namespace warren {

/// Category of Warren's own exit reasons and errors.
constexpr caf::atom_value exit_category = caf::atom("warren");

/// Category of OTP's {shutdown, Term}: a normal exit that carries a reason.
constexpr caf::atom_value shutdown_category = caf::atom("shutdown");

/// Warren's own abnormal exit reasons.
enum class exit_code : uint8_t {
  /// An actor's handler threw; the context holds the exception's what().
  exception = 1,
  /// A behaviour callback returned something it must not (OTP's bad_return_value).
  bad_return_value,
  /// A child start function threw or returned an invalid handle.
  bad_start,
};

std::string to_string(exit_code x);

/// Builds an error in exit_category, with an optional text in its context.
caf::error make_error(exit_code x);
caf::error make_error(exit_code x, std::string text);

/// OTP's {shutdown, Term}: a normal exit with a reason attached.
caf::error shutdown_with(std::string reason);
/// {shutdown, Term} whose Term is itself an error, kept as a value (e.g. a
/// supervisor's {shutdown, {failed_to_start_child, Id, E}}).
caf::error shutdown_with(caf::error term);
/// The Term of shutdown_with(caf::error); nullopt for any other reason.
std::optional<caf::error> shutdown_term(const caf::error& reason);

/// OTP's shutdown.
inline caf::error shutdown() {
  return caf::make_error(caf::exit_reason::user_shutdown);
}

/// OTP's killed.
inline caf::error killed() {
  return caf::make_error(caf::exit_reason::kill);
}

/// True for normal, shutdown and shutdown-with-reason: the reasons after which a
/// transient child is not restarted and no crash is reported.
bool is_normal_exit(const caf::error& reason) noexcept;

/// True for shutdown and shutdown-with-reason.
bool is_shutdown(const caf::error& reason) noexcept;

/// Human-readable form of an exit reason ("normal", "shutdown",
/// "{shutdown, <text>}", "killed", or CAF's rendering of anything else).
std::string describe_exit(const caf::error& reason);

/// The reason an actor exits with when a handler throws: used as CAF exception
/// handler by Warren's behaviours, and by users for their own actors.
caf::error exception_to_exit(std::exception_ptr& eptr);

} // namespace warren
