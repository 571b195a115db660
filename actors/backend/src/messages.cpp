#include <warren/backend/messages.hpp>

namespace warren::backend {

std::string to_string(address_kind x) {
  return x == address_kind::connection ? "connection" : "device";
}

} // namespace warren::backend
