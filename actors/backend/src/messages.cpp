#include <warren/backend/messages.hpp>

#include <algorithm>
#include <functional>

namespace warren::backend {

std::string producer_name_at(const std::string& base, std::size_t i) {
  return i == 0 ? base : base + "." + std::to_string(i);
}

std::vector<std::string> backend_spec::producer_names() const {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < std::max<std::size_t>(producers, 1); ++i)
    names.push_back(producer_name_at(producer_name, i));
  return names;
}

std::size_t producer_index(std::string_view connection_id, std::size_t n) {
  return n <= 1 ? 0 : std::hash<std::string_view>{}(connection_id) % n;
}

device_batch::builder::builder(std::string_view connection_id, std::string_view device_id,
                               std::size_t expected_count, std::size_t expected_bytes)
  : impl_(std::make_shared<impl>()) {
  auto& x = *impl_;
  x.text.reserve(connection_id.size() + device_id.size() + expected_bytes);
  x.text.append(connection_id);
  x.conn_len = connection_id.size();
  x.text.append(device_id);
  x.device_id_end = x.text.size();
  x.entries.reserve(expected_count);
}

device_batch::builder& device_batch::builder::add(uint64_t from_device_seq,
                                                  std::optional<uint64_t> message_id,
                                                  std::string_view payload) {
  impl_->text.append(payload);
  impl_->entries.push_back(entry{from_device_seq, message_id, impl_->text.size()});
  return *this;
}

device_batch device_batch::builder::done() && {
  return device_batch{std::move(impl_)};
}

device_message device_batch::message(std::size_t i) const {
  auto v = (*this)[i];
  return device_message{std::string{connection_id()}, std::string{device_id()}, v.from_device_seq,
                        v.message_id, std::string{v.payload}};
}

std::string to_string(address_kind x) {
  return x == address_kind::connection ? "connection" : "device";
}

} // namespace warren::backend
