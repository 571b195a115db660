#include "warren/exit.hpp"

#include "warren/call_error.hpp"
#include "warren/supervisor.hpp"

#include <caf/deep_to_string.hpp>
#include <caf/make_message.hpp>

#include <cstdlib>
#include <cxxabi.h>
#include <memory>
#include <typeinfo>

namespace warren {

std::string to_string(exit_code x) {
  switch (x) {
    case exit_code::exception:
      return "exception";
    case exit_code::bad_return_value:
      return "bad_return_value";
    case exit_code::bad_start:
      return "bad_start";
  }
  return "unknown";
}

caf::error make_error(exit_code x) {
  return caf::error{static_cast<uint8_t>(x), exit_category};
}

caf::error make_error(exit_code x, std::string text) {
  return caf::error{static_cast<uint8_t>(x), exit_category, caf::make_message(std::move(text))};
}

caf::error shutdown_with(std::string reason) {
  return caf::error{1, shutdown_category, caf::make_message(std::move(reason))};
}

caf::error shutdown_with(caf::error term) {
  return caf::error{2, shutdown_category, caf::make_message(std::move(term))};
}

std::optional<caf::error> shutdown_term(const caf::error& reason) {
  if (!reason || reason.category() != shutdown_category || reason.code() != 2)
    return std::nullopt;
  const auto& ctx = reason.context();
  if (ctx.size() != 1 || !ctx.match_element<caf::error>(0))
    return std::nullopt;
  return ctx.get_as<caf::error>(0);
}

bool is_shutdown(const caf::error& reason) noexcept {
  return reason == caf::exit_reason::user_shutdown || (reason && reason.category() == shutdown_category);
}

bool is_normal_exit(const caf::error& reason) noexcept {
  return !reason || is_shutdown(reason);
}

namespace {

std::string context_text(const caf::error& x) {
  const auto& ctx = x.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0))
    return ctx.get_as<std::string>(0);
  return caf::deep_to_string(ctx);
}

} // namespace

std::string describe_exit(const caf::error& reason) {
  if (!reason)
    return "normal";
  if (reason == caf::exit_reason::user_shutdown)
    return "shutdown";
  if (reason == caf::exit_reason::kill)
    return "killed";
  if (auto term = shutdown_term(reason))
    return "{shutdown, " + describe_exit(*term) + "}";
  if (reason.category() == shutdown_category)
    return "{shutdown, " + context_text(reason) + "}";
  if (reason.category() == sup_error_category) {
    if (auto f = start_failure_of(reason))
      return "{failed_to_start_child, " + f->child + ", " + describe_exit(f->reason) + "}";
    if (auto holder = already_started_of(reason))
      return "{already_started, " + std::to_string(holder->id()) + "}";
    auto out = to_string(static_cast<sup_errc>(reason.code()));
    if (!reason.context().empty())
      out += ": " + context_text(reason);
    return out;
  }
  if (reason.category() == exit_category) {
    auto out = to_string(static_cast<exit_code>(reason.code()));
    if (!reason.context().empty())
      out += ": " + context_text(reason);
    return out;
  }
  if (reason.category() == call_error_category) {
    if (auto inner = exit_reason_of(reason))
      return "exited: " + describe_exit(*inner);
    return to_string(static_cast<call_errc>(reason.code()));
  }
  if (reason.category() == caf::atom("exit"))
    return caf::to_string(static_cast<caf::exit_reason>(reason.code()));
  return caf::to_string(reason);
}

namespace {

std::string demangle(const char* name) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> out{abi::__cxa_demangle(name, nullptr, nullptr, &status),
                                                  &std::free};
  return status == 0 && out ? std::string{out.get()} : std::string{name};
}

} // namespace

caf::error exception_to_exit(std::exception_ptr& eptr) {
  try {
    std::rethrow_exception(eptr);
  } catch (const std::exception& e) {
    return make_error(exit_code::exception, demangle(typeid(e).name()) + ": " + e.what());
  } catch (...) {
    return make_error(exit_code::exception, "unknown exception");
  }
}

} // namespace warren
