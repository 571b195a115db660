#include <warren/backend/messages.hpp>

#include <functional>

namespace warren::backend {

std::string producer_name_at(const std::string& base, std::size_t i) {
  return i == 0 ? base : base + "." + std::to_string(i);
}

std::size_t producer_index(std::string_view connection_id, std::size_t n) {
  return n <= 1 ? 0 : std::hash<std::string_view>{}(connection_id) % n;
}

std::string to_string(address_kind x) {
  return x == address_kind::connection ? "connection" : "device";
}

} // namespace warren::backend
