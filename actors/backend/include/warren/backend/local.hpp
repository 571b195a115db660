// The `local` backend, the gateway's embedded default: device messages go to a
// JSON-lines sink (stdout, a file, or nowhere) and to in-process subscribers; a pool
// of consumers delivers messages to devices through the router.
//
//   supervisor "backend" (one_for_one)
//   ├─ producer      registered as backend_spec::producer_name; accepts at once
//   └─ consumer_0..  registered as consumer_name(i); (deliver_atom, to_device_message)
//                    -> delivered_atom, or backend_errc::no_such_device
//
// Each JSON line: {"connection_id", "device_id", "from_device_seq", "message_id"
// (null for codec line), "payload", "payload_encoding" ("utf-8" or "base64"),
// "received_at" (RFC 3339 UTC, ms)}.
#pragma once

#include <warren/backend/messages.hpp>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace warren::backend {

/// In-process subscribers of the local backend. Thread-safe; callbacks run on the
/// producer's thread, one batch at a time, in order: keep them short.
class local_hub {
public:
  using callback = std::function<void(const device_message&)>;

  /// Calls `f` for every device message from now on; returns a token for unsubscribe.
  uint64_t subscribe(callback f);
  /// Sends every device message from now on to `who` as (device_message).
  uint64_t subscribe(caf::actor who);
  void unsubscribe(uint64_t token);
  std::size_t subscribers() const;

  /// Called by the producer: every subscriber gets each message of `batch` in order
  /// (owning copies, made only when there are subscribers).
  void publish(const device_batch& batch);

private:
  struct sub {
    uint64_t token;
    callback fn;
  };
  using list = std::vector<sub>;
  mutable std::mutex mtx_;
  std::shared_ptr<const list> subs_ = std::make_shared<const list>();
  uint64_t next_ = 1;
};

struct local_options {
  /// "stdout" (or "-"), "none", or a file path (appended to).
  std::string sink = "stdout";
  /// Flush the sink after every batch (else only on flush_atom and at exit).
  bool flush_each_batch = true;
  std::size_t consumers = 2;
  std::shared_ptr<local_hub> hub; ///< created when null
};

/// The local backend's child spec (id "backend").
backend_spec make_local_backend(local_options opts, std::shared_ptr<router> routes);

/// Registered name of consumer `i` (local backend).
std::string consumer_name(std::size_t i);

/// One JSON line (no LF) for a device message of connection `connection_id` (a
/// device_batch's ids and one of its messages); `now_ms` is the Unix time in ms.
std::string to_json_line(std::string_view connection_id, std::string_view device_id,
                         const device_message_view& msg, int64_t now_ms);

/// True if `s` is valid UTF-8 (no overlongs, no surrogates).
bool is_utf8(std::string_view s) noexcept;

/// Base64 (RFC 4648, padded).
std::string base64_encode(std::string_view s);

} // namespace warren::backend
