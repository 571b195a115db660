// Errors of a call (gen_server:call and friends) beyond CAF's own, as values.
//
//   OTP caller exit                          Warren error
//   {noproc, _}                              caf::sec::request_receiver_down
//   {timeout, _}                             caf::sec::request_timeout
//   {Reason, _}: the server died mid-call    call_errc::exited, context: Reason (a caf::error)
//   {calling_self, _}                        call_errc::calling_self
#pragma once

#include <caf/atom.hpp>
#include <caf/error.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace warren {

constexpr caf::atom_value call_error_category = caf::atom("call");

enum class call_errc : uint8_t {
  /// The server exited before it answered (also after deferring the reply, or when
  /// it stopped from this call without one). Context: the exit reason.
  exited = 1,
  /// An actor called itself; it would wait for its own answer forever.
  calling_self,
};

std::string to_string(call_errc x);
caf::error make_error(call_errc x);

/// call_errc::exited carrying `reason` (which may be normal).
caf::error server_exited(caf::error reason);

/// The exit reason inside a call_errc::exited error; nullopt for any other error.
std::optional<caf::error> exit_reason_of(const caf::error& call_error);

} // namespace warren
