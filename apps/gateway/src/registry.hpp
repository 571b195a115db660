// The gateway's session registry: connection id -> session and device id ->
// connection, in sharded hash maps (one shard lock per lookup, shared for reads). It
// implements backend::router for the consumers.
//
// Not the runtime's register_name: that allows one name per actor, and a session has
// two (connection id and device id), changes one at takeover, and is looked up per
// message on the hot path.
#pragma once

#include <warren/backend/messages.hpp>

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
  std::atomic<uint64_t> accepted{0};
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

class session_registry final : public backend::router {
public:
  struct session_entry {
    caf::actor session;
    std::string device_id;
    std::string peer;
    std::string listener;
    std::string tls_version;
    int64_t connected_since_ms = 0;
    std::shared_ptr<session_stats> stats;
  };

  session_registry();
  ~session_registry() override;

  // -- router ------------------------------------------------------------------------
  caf::actor find(backend::address_kind kind, std::string_view id) const override;

  /// Adds a connection. The id is a fresh UUID: never taken.
  void add_connection(const std::string& conn_id, session_entry entry);

  /// Gives `device_id` to connection `conn_id`. Returns the session that held it
  /// before (to be closed: takeover), or a null handle; `state` receives the device's
  /// ordering state (inherited from the previous session, or new).
  caf::actor claim_device(const std::string& device_id, const std::string& conn_id, const caf::actor& session,
                          std::shared_ptr<device_state>& state);

  /// Removes the connection and, if it still holds it, its device id. Idempotent.
  void release(const std::string& conn_id);

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
  };
  template <class V>
  struct shard {
    mutable std::shared_mutex mtx;
    std::unordered_map<std::string, V, hash, std::equal_to<>> map;
  };
  template <class V>
  using shards = std::array<shard<V>, shard_count>;

  static std::size_t index(std::string_view key) noexcept { return hash{}(key) % shard_count; }

  std::unique_ptr<shards<session_entry>> conns_;
  std::unique_ptr<shards<device_entry>> devices_;
};

/// A random (version 4) UUID in its canonical text form.
std::string make_uuid_v4();

} // namespace warren::gateway
