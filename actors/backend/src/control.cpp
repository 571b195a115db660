#include <warren/backend/control.hpp>

namespace warren::backend {

std::string to_string(backend_errc x) {
  switch (x) {
    case backend_errc::no_such_device:
      return "no_such_device";
    case backend_errc::closing:
      return "closing";
    case backend_errc::bad_message:
      return "bad_message";
    case backend_errc::no_consumer:
      return "no_consumer";
    case backend_errc::cluster_unavailable:
      return "cluster_unavailable";
    case backend_errc::no_answer:
      return "no_answer";
  }
  return "unknown";
}

std::optional<backend_errc> backend_error(const caf::error& err) {
  if (err.category() != backend_error_category)
    return std::nullopt;
  return static_cast<backend_errc>(err.code());
}

caf::error make_error(backend_errc x) {
  return {static_cast<uint8_t>(x), backend_error_category};
}

caf::error make_error(backend_errc x, std::string what) {
  return {static_cast<uint8_t>(x), backend_error_category, caf::make_message(std::move(what))};
}

} // namespace warren::backend
