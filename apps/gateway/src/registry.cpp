#include "registry.hpp"

#include <caf/send.hpp>
#include <openssl/rand.h>

#include <cstdio>
#include <mutex>
#include <random>
#include <stdexcept>

namespace warren::gateway {

session_registry::session_registry()
  : conns_(std::make_unique<shards<session_entry>>()), devices_(std::make_unique<shards<device_entry>>()) {}

session_registry::~session_registry() = default;

caf::actor session_registry::find(backend::address_kind kind, std::string_view id) const {
  if (kind == backend::address_kind::connection) {
    auto& s = (*conns_)[index(id)];
    std::shared_lock<std::shared_mutex> guard{s.mtx};
    auto i = s.map.find(id);
    return i == s.map.end() ? caf::actor{} : i->second.session;
  }
  auto& s = (*devices_)[index(id)];
  std::shared_lock<std::shared_mutex> guard{s.mtx};
  auto i = s.map.find(id);
  return i == s.map.end() ? caf::actor{} : i->second.session;
}

void session_registry::add_connection(const std::string& conn_id, session_entry entry) {
  auto& s = (*conns_)[index(conn_id)];
  std::unique_lock<std::shared_mutex> guard{s.mtx};
  s.map.insert_or_assign(conn_id, std::move(entry));
}

caf::actor session_registry::claim_device(const std::string& device_id, const std::string& conn_id,
                                          const caf::actor& session, std::shared_ptr<device_state>& state) {
  caf::actor previous;
  {
    auto& s = (*devices_)[index(device_id)];
    std::unique_lock<std::shared_mutex> guard{s.mtx};
    auto [i, added] = s.map.try_emplace(device_id);
    if (!added && i->second.conn_id != conn_id)
      previous = std::move(i->second.session);
    if (!i->second.state)
      i->second.state = std::make_shared<device_state>();
    i->second.conn_id = conn_id;
    i->second.session = session;
    state = i->second.state;
  }
  {
    auto& s = (*conns_)[index(conn_id)];
    std::unique_lock<std::shared_mutex> guard{s.mtx};
    if (auto i = s.map.find(conn_id); i != s.map.end())
      i->second.device_id = device_id;
  }
  return previous;
}

void session_registry::release(const std::string& conn_id) {
  std::string device_id;
  {
    auto& s = (*conns_)[index(conn_id)];
    std::unique_lock<std::shared_mutex> guard{s.mtx};
    auto i = s.map.find(conn_id);
    if (i == s.map.end())
      return;
    device_id = std::move(i->second.device_id);
    s.map.erase(i);
  }
  if (device_id.empty())
    return;
  auto& s = (*devices_)[index(device_id)];
  std::unique_lock<std::shared_mutex> guard{s.mtx};
  // Only if it is still ours: after a takeover the device belongs to the new session.
  if (auto i = s.map.find(device_id); i != s.map.end() && i->second.conn_id == conn_id)
    s.map.erase(i);
}

std::size_t session_registry::broadcast(const caf::message& msg) const {
  std::vector<caf::actor> to;
  for (auto& s : *conns_) {
    std::shared_lock<std::shared_mutex> guard{s.mtx};
    for (auto& [id, e] : s.map)
      to.push_back(e.session);
  }
  for (auto& a : to) // outside the locks: an enqueue may run a finished actor's cleanup
    caf::anon_send(a, msg);
  return to.size();
}

std::vector<session_view> session_registry::list() const {
  std::vector<session_view> out;
  for (auto& s : *conns_) {
    std::shared_lock<std::shared_mutex> guard{s.mtx};
    for (auto& [id, e] : s.map) {
      session_view v;
      v.connection_id = id;
      v.device_id = e.device_id;
      v.peer = e.peer;
      v.listener = e.listener;
      v.tls_version = e.tls_version;
      v.connected_since_ms = e.connected_since_ms;
      if (e.stats) {
        v.seq_in = e.stats->seq_in.load(std::memory_order_relaxed);
        v.seq_out = e.stats->seq_out.load(std::memory_order_relaxed);
      }
      out.push_back(std::move(v));
    }
  }
  return out;
}

std::size_t session_registry::connections() const {
  std::size_t n = 0;
  for (auto& s : *conns_) {
    std::shared_lock<std::shared_mutex> guard{s.mtx};
    n += s.map.size();
  }
  return n;
}

std::size_t session_registry::devices() const {
  std::size_t n = 0;
  for (auto& s : *devices_) {
    std::shared_lock<std::shared_mutex> guard{s.mtx};
    n += s.map.size();
  }
  return n;
}

std::string make_uuid_v4() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof(b)) != 1) {
    thread_local std::mt19937_64 gen{std::random_device{}()};
    for (auto& x : b)
      x = static_cast<unsigned char>(gen());
  }
  b[6] = static_cast<unsigned char>((b[6] & 0x0F) | 0x40); // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3F) | 0x80); // RFC 4122 variant
  char out[37];
  std::snprintf(out, sizeof(out), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return out;
}

} // namespace warren::gateway
