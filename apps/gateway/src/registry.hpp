// The gateway's session registry: connection id -> session and device id ->
// connection, in sharded hash maps (one shard lock per lookup, shared for reads). It
// implements backend::router for the consumers.
//
// Not the runtime's register_name: that allows one name per actor, and a session has
// two (connection id and device id), changes one at takeover, and is looked up per
// message on the hot path.
#pragma once

#include <warren/backend/messages.hpp>
#include <warren/cluster/node.hpp>
#include <warren/net/protocol.hpp>

#include <caf/actor.hpp>
#include <caf/message.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace warren::gateway {

/// Per-session figures updated by the session (relaxed atomics, once per batch) and
/// read by the admin API.
struct session_stats {
  std::atomic<uint64_t> seq_in{0};  ///< from_device_seq of the latest device message
  std::atomic<uint64_t> seq_out{0}; ///< messages queued to the device
};

/// Per-device ordering state; survives a takeover (the new session inherits it).
struct device_state {
  std::atomic<uint64_t> next_to_device_seq{1};
};

/// What GET /v1/connections lists.
struct session_view {
  std::string connection_id;
  std::string device_id;
  std::string peer;
  std::string listener;
  std::string tls_version;
  int64_t connected_since_ms = 0; ///< Unix time
  uint64_t seq_in = 0;
  uint64_t seq_out = 0;
};

class cluster_directory;

class session_registry final : public backend::router {
public:
  /// What the registry keeps of a connection. It points into the session and its
  /// endpoint (no copies: idle connections are most of a gateway's memory), which is
  /// why a session releases its entry before it goes (on close, and in its destructor).
  struct session_entry {
    caf::actor session;
    std::string device_id;
    const net::connection_info* info = nullptr; ///< peer, TLS version
    const std::string* listener = nullptr;
    int64_t connected_since_ms = 0;
    const session_stats* stats = nullptr;
    cluster::subscription sub; ///< warren.conn.<id> (set by the registry when in a cluster)
  };

  session_registry();
  ~session_registry() override;

  /// Joins the cluster: from now on every connection, and every device once claimed
  /// cluster-wide (subscribe_device), is subscribed to on NATS while registered here.
  /// Before the first session.
  void set_cluster(std::shared_ptr<cluster_directory> dir);
  const std::shared_ptr<cluster_directory>& cluster() const { return cluster_; }

  // -- router ------------------------------------------------------------------------
  caf::actor find(backend::address_kind kind, std::string_view id) const override;
  /// In a cluster: the cluster agent for `id`; else a null handle.
  caf::actor remote(backend::address_kind kind, std::string_view id) const override;

  /// Adds a connection. The id is a fresh UUID: never taken. `conn_id`'s characters,
  /// like what `entry` points to, must stay valid and unchanged until release(conn_id).
  void add_connection(std::string_view conn_id, session_entry entry);

  /// Gives `device_id` to connection `conn_id`. Returns the session that held it
  /// before (to be closed: takeover), or a null handle; `state` receives the device's
  /// ordering state (inherited from the previous session, or new). `subscribed` tells
  /// whether the device is subscribed on NATS already (a local takeover keeps the
  /// subscription: the device never leaves this node).
  caf::actor claim_device(const std::string& device_id, std::string_view conn_id, const caf::actor& session,
                          std::shared_ptr<device_state>& state, bool& subscribed);

  /// In a cluster: subscribes warren.dev.<device_id> for `conn_id`, once its claim was
  /// settled with the other nodes. False when `conn_id` no longer holds the device.
  bool subscribe_device(const std::string& device_id, std::string_view conn_id);

  /// Removes the connection and, if it still holds it, its device id. Idempotent.
  void release(std::string_view conn_id);

  /// Sends `msg` to every connected session (anonymously); returns how many. For
  /// rare events: it visits every shard.
  std::size_t broadcast(const caf::message& msg) const;

  std::vector<session_view> list() const;
  std::size_t connections() const;
  std::size_t devices() const;

  static constexpr std::size_t shard_count = 64;

private:
  struct hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  struct device_entry {
    std::string conn_id;
    caf::actor session;
    std::shared_ptr<device_state> state;
    cluster::subscription sub; ///< warren.dev.<id>, once subscribe_device()
  };
  template <class K, class V>
  struct shard {
    mutable std::shared_mutex mtx;
    std::unordered_map<K, V, hash, std::equal_to<>> map;
  };
  template <class K, class V>
  using shards = std::array<shard<K, V>, shard_count>;

  static std::size_t index(std::string_view key) noexcept { return hash{}(key) % shard_count; }

  // Keyed by the session's own connection id string (see add_connection).
  std::unique_ptr<shards<std::string_view, session_entry>> conns_;
  std::unique_ptr<shards<std::string, device_entry>> devices_;
  std::shared_ptr<cluster_directory> cluster_;
};

/// A random (version 4) UUID in its canonical text form.
std::string make_uuid_v4();

/// The same, written to `out` (36 characters, no terminator).
void write_uuid_v4(char (&out)[36]);

} // namespace warren::gateway
