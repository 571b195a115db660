#include "warren/call_error.hpp"

#include <caf/make_message.hpp>

namespace warren {

std::string to_string(call_errc x) {
  switch (x) {
    case call_errc::exited:
      return "exited";
    case call_errc::calling_self:
      return "calling_self";
  }
  return "unknown";
}

caf::error make_error(call_errc x) {
  return caf::error{static_cast<uint8_t>(x), call_error_category};
}

caf::error server_exited(caf::error reason) {
  return caf::error{static_cast<uint8_t>(call_errc::exited), call_error_category,
                    caf::make_message(std::move(reason))};
}

std::optional<caf::error> exit_reason_of(const caf::error& call_error) {
  if (call_error != make_error(call_errc::exited))
    return std::nullopt;
  auto& ctx = call_error.context();
  if (ctx.match_elements<caf::error>())
    return ctx.get_as<caf::error>(0);
  return caf::error{};
}

} // namespace warren
