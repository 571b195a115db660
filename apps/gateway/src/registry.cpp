#include "registry.hpp"

#include "cluster_directory.hpp"

#include <caf/send.hpp>
#include <openssl/rand.h>

#include <cstring>
#include <mutex>
#include <random>
#include <stdexcept>

namespace warren::gateway {

session_registry::session_registry()
  : conns_(std::make_unique<shards<std::string_view, session_entry>>()),
    devices_(std::make_unique<shards<std::string, device_entry>>()) {}

session_registry::~session_registry() {
  // Entries (and their NATS subscriptions) before the cluster link they were made on.
  conns_.reset();
  devices_.reset();
}

void session_registry::set_cluster(std::shared_ptr<cluster_directory> dir) {
  cluster_ = std::move(dir);
}

caf::actor session_registry::remote(backend::address_kind, std::string_view id) const {
  return cluster_ ? cluster_->agent_for(id) : caf::actor{};
}

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

void session_registry::add_connection(std::string_view conn_id, session_entry entry) {
  if (cluster_)
    entry.sub = cluster_->subscribe(backend::address_kind::connection, conn_id);
  auto& s = (*conns_)[index(conn_id)];
  std::unique_lock<std::shared_mutex> guard{s.mtx};
  s.map.insert_or_assign(conn_id, std::move(entry));
}

caf::actor session_registry::claim_device(const std::string& device_id, std::string_view conn_id,
                                          const caf::actor& session, std::shared_ptr<device_state>& state,
                                          bool& subscribed) {
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
    subscribed = static_cast<bool>(i->second.sub);
  }
  {
    auto& s = (*conns_)[index(conn_id)];
    std::unique_lock<std::shared_mutex> guard{s.mtx};
    if (auto i = s.map.find(conn_id); i != s.map.end())
      i->second.device_id = device_id;
  }
  return previous;
}

bool session_registry::subscribe_device(const std::string& device_id, std::string_view conn_id) {
  auto& s = (*devices_)[index(device_id)];
  std::unique_lock<std::shared_mutex> guard{s.mtx};
  auto i = s.map.find(device_id);
  if (i == s.map.end() || i->second.conn_id != conn_id)
    return false;
  // Under the shard lock: a release of the same device cannot run between the check
  // and the subscription (it would leave the subscription behind).
  if (!i->second.sub && cluster_)
    i->second.sub = cluster_->subscribe(backend::address_kind::device, device_id);
  return true;
}

void session_registry::release(std::string_view conn_id) {
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
      if (e.info) {
        v.peer = e.info->peer;
        v.tls_version = e.info->tls_version;
      }
      if (e.listener)
        v.listener = *e.listener;
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

void write_uuid_v4(char (&out)[36]) {
  // Random bytes from OpenSSL's generator, fetched 4 KiB at a time per thread: one
  // RAND_bytes call per 256 connections instead of one each.
  struct pool {
    unsigned char bytes[4096];
    std::size_t used = sizeof(bytes);
  };
  thread_local pool p;
  if (p.used + 16 > sizeof(p.bytes)) {
    if (RAND_bytes(p.bytes, sizeof(p.bytes)) != 1) {
      thread_local std::mt19937_64 gen{std::random_device{}()};
      for (auto& x : p.bytes)
        x = static_cast<unsigned char>(gen());
    }
    p.used = 0;
  }
  unsigned char b[16];
  std::memcpy(b, p.bytes + p.used, sizeof(b));
  std::memset(p.bytes + p.used, 0, sizeof(b)); // not left lying around
  p.used += sizeof(b);
  b[6] = static_cast<unsigned char>((b[6] & 0x0F) | 0x40); // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3F) | 0x80); // RFC 4122 variant
  static constexpr char hex[] = "0123456789abcdef";
  std::size_t o = 0;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      out[o++] = '-';
    out[o++] = hex[b[i] >> 4];
    out[o++] = hex[b[i] & 0x0F];
  }
}

std::string make_uuid_v4() {
  char out[36];
  write_uuid_v4(out);
  return std::string{out, sizeof(out)};
}

} // namespace warren::gateway
