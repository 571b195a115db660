#include <warren/cluster/errors.hpp>

#include <caf/make_message.hpp>

namespace warren::cluster {

std::string to_string(cluster_errc x) {
  switch (x) {
    case cluster_errc::already_registered:
      return "already_registered";
    case cluster_errc::not_registered:
      return "not_registered";
    case cluster_errc::no_such_name:
      return "no_such_name";
    case cluster_errc::timeout:
      return "timeout";
    case cluster_errc::cluster_unavailable:
      return "cluster_unavailable";
    case cluster_errc::bad_message:
      return "bad_message";
    case cluster_errc::invalid_argument:
      return "invalid_argument";
    case cluster_errc::not_joined:
      return "not_joined";
  }
  return "unknown";
}

caf::error make_error(cluster_errc x) {
  return caf::error{static_cast<uint8_t>(x), cluster_error_category};
}

caf::error make_error(cluster_errc x, std::string what) {
  return caf::error{static_cast<uint8_t>(x), cluster_error_category, caf::make_message(std::move(what))};
}

} // namespace warren::cluster
