// The device session: the warren::net protocol that runs in each connection's
// endpoint actor. It registers the connection (UUID v4) and its device id, carries
// device messages to the backend's producer (one publish per read), acknowledges
// them to the device once the backend accepted them, and delivers backend messages
// to the device in to_device_seq order.
#pragma once

#include "metrics.hpp"
#include "registry.hpp"

#include <warren/net/identity.hpp>
#include <warren/net/protocol.hpp>

#include <caf/timespan.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace warren::gateway {

/// How a session learns its device id.
enum class identify_mode : uint8_t {
  none,         ///< never: sessions are addressed by connection id only
  cert,         ///< the verified client certificate's subject CN (mTLS); none without one
  first_message ///< the first line/frame is the device id (not published)
};

std::string to_string(identify_mode x);
bool from_string(std::string_view s, identify_mode& out);

struct session_options {
  std::string listener; ///< listener id, shown by the admin API
  identify_mode identify = identify_mode::cert;
  /// Which device ids are accepted (net/identity.hpp): any printable Unicode text, or
  /// strict (ASCII letters, digits, -_.:). A device whose id is refused is closed with
  /// {shutdown, identify_failed}.
  net::identity_profile identity_profile = net::identity_profile::unicode;
  /// A to_device_seq gap waits this long for the missing messages, then is skipped.
  caf::timespan gap_timeout = std::chrono::seconds(1);
  /// Messages held behind a gap per session; past it the gap is skipped at once.
  std::size_t max_reorder = 1024;
  /// Device messages published but not yet accepted by the backend before the session
  /// stops reading from its device (connection_context::pause_reading); it reads again
  /// once no more than half of them wait. At most max_unaccepted + one read's batch wait.
  std::size_t max_unaccepted = 4096;
  /// The backend's producer pool (backend_spec::producer_names()): a session publishes
  /// to producer_names[backend::producer_index(connection id, size)].
  std::vector<std::string> producer_names{"warren.backend.producer"};
};

class cluster_directory;

struct session_env {
  std::shared_ptr<session_registry> registry;
  std::shared_ptr<gateway_metrics> metrics;
  std::shared_ptr<cluster_directory> cluster; ///< null: one node
};

net::protocol_factory session_factory(session_options opts, session_env env);

} // namespace warren::gateway
