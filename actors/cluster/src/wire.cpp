#include "wire.hpp"

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/uniform_type_info_map.hpp>

#include <mutex>
#include <vector>

namespace warren::cluster::wire {

std::optional<std::string> encode(caf::actor_system& sys, const caf::message& msg, std::size_t max) {
  // CAF 0.17 writes a type it has no name for as nothing (it only logs), so the other
  // node would read a different message: refuse it here.
  auto& types = sys.types();
  for (std::size_t i = 0; i < msg.size(); ++i)
    if (types.portable_name(msg.type(i)) == types.default_type_name())
      return std::nullopt;
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  auto copy = msg; // inspect() takes a mutable message; copies share the content
  if (auto err = sink(copy); err || buf.size() > max)
    return std::nullopt;
  return std::string{buf.data(), buf.size()};
}

std::optional<caf::message> decode(caf::actor_system& sys, std::string_view data) {
  caf::binary_deserializer source{sys, data.data(), data.size()};
  caf::message out;
  if (auto err = source(out); err || source.remaining() != 0)
    return std::nullopt;
  return out;
}

void keep_forever(std::shared_ptr<void> p) {
  static std::mutex mtx;
  static auto* kept = new std::vector<std::shared_ptr<void>>; // never destroyed: callbacks may run at exit
  std::lock_guard<std::mutex> guard{mtx};
  kept->push_back(std::move(p));
}

} // namespace warren::cluster::wire
