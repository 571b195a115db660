// The contract between device sessions and backends (Owsla's producer and consumer
// pool), shared by every backend (local, echo, amqp) and by the gateway.
//
//   device -> backend: the session sends its producer one message per read
//       (publish_atom, device_batch)                           sender = the session
//     a device_batch being the device messages of that one connection, in
//     from_device_seq order: connection id and device id once, the payloads back to
//     back in one buffer. It is immutable and shared: copying it (into another
//     message, a queue, another thread) costs a reference count, never the payloads.
//     The producer, once the backend has *accepted* them (local: handed over; amqp:
//     the broker confirmed), sends back to that sender
//       (accepted_atom, uint64_t connection_seq)               cumulative, per session
//     where connection_seq is the highest from_device_seq now accepted. Until then
//     the session holds the device's ACKs (codec frame) and, past a bound, stops
//     reading: a slow or absent backend is backpressure, never loss. The session keeps
//     the publish message until then (to publish it again to a restarted producer);
//     a producer takes the batch by const reference (a mutable one would make CAF
//     copy the message, copy on write) and keeps copies of it as long as it likes.
//     A backend may run several producers (backend_spec::producers): a session then
//     publishes to producer_name_at(producer_name, producer_index(connection id, n)),
//     always the same one for a connection.
//
//   backend -> device, one message: a consumer finds the session through a `router`
//     and sends
//       request(session, timeout, deliver_atom, to_device_message)
//     the session answers `delivered_atom` once the message is written to its
//     connection's outbound queue (or ordered behind a to_device_seq gap), or an
//     error (no such device, closing): the consumer then rejects or dead-letters the
//     message per backend; it is never dropped silently. (local and amqp consumers.)
//
//   backend -> device, a batch, one-way (for a backend that needs no per-message
//     answer): a sender that found the session through the `router` sends
//       (deliver_atom, std::vector<to_device_message>)
//     or, when it is also that session's producer, the batch with its acceptance
//       (deliver_atom, std::vector<to_device_message>, accepted_atom, uint64_t connection_seq)
//     which the session handles as the batch followed by (accepted_atom, connection_seq).
//     The session queues every message of the batch in order in one pass (to_device_seq
//     rules as for single messages; `kind`/`target` are not read: the batch was routed
//     already, and may be left empty). No answer: a message the session cannot queue
//     (closing) is counted as undeliverable, nothing else.
//
//   backend -> device, a device batch back, one-way (echo): the payloads of a
//     published device_batch go back to the connection that batch.connection_id()
//     names, found through the `router`, as the very same batch (no copy):
//       (deliver_atom, device_batch)
//     or, when the sender is also that session's producer, with its acceptance
//       (deliver_atom, device_batch, accepted_atom, uint64_t connection_seq)
//     The session writes every payload in order, as a to_device_message without
//     to_device_seq would be (no ordering, no hold), then handles the acceptance.
//     No answer; a payload the session cannot queue is counted as undeliverable.
#pragma once

#include <warren/child_spec.hpp>

#include <caf/actor.hpp>
#include <caf/atom.hpp>

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace warren::backend {

/// A message from a device, owning all its fields: what local_hub subscribers get
/// (device_batch::message). On its way to the backend it travels in a device_batch.
struct device_message {
  std::string connection_id;          ///< UUID v4 of the connection
  std::string device_id;              ///< may be empty (device not identified)
  uint64_t from_device_seq = 0;       ///< 1, 2, 3, ... per connection
  std::optional<uint64_t> message_id; ///< codec frame: the device's DATA id
  std::string payload;
};

/// One message of a device_batch: a view into the batch, valid while any copy of the
/// batch lives.
struct device_message_view {
  uint64_t from_device_seq = 0;       ///< 1, 2, 3, ... per connection
  std::optional<uint64_t> message_id; ///< codec frame: the device's DATA id
  std::string_view payload;
};

/// The device messages of one connection that a session publishes together (one
/// read), in from_device_seq order. Built once (device_batch::builder), then
/// immutable: every copy shares the same data (a reference count, like CAF's copy
/// on write types), so copies may go to other actors and threads freely. The
/// connection id and device id are stored once; the payloads lie back to back in one
/// buffer. A default-constructed batch is empty (and has empty ids).
class device_batch {
  struct entry {
    uint64_t seq;
    std::optional<uint64_t> message_id;
    std::size_t end; ///< offset in `text` just past the payload
  };
  struct impl {
    std::string text;              ///< connection id, device id, then the payloads, back to back
    std::size_t conn_len = 0;      ///< the connection id is text[0, conn_len)
    std::size_t device_id_end = 0; ///< the device id is text[conn_len, device_id_end)
    std::vector<entry> entries;
    std::string_view slice(std::size_t begin, std::size_t end) const {
      return {text.data() + begin, end - begin};
    }
  };

public:
  /// Builds a batch: `builder b{conn_id, device_id, count, bytes}; b.add(...);
  /// device_batch batch = std::move(b).done();`. `expected_count` and `expected_bytes`
  /// (the payloads' total size) are reserved up front; exceeding them is allowed.
  class builder {
  public:
    builder(std::string_view connection_id, std::string_view device_id, std::size_t expected_count = 0,
            std::size_t expected_bytes = 0);
    /// Appends a message; its seq should be above the previous one's.
    builder& add(uint64_t from_device_seq, std::optional<uint64_t> message_id, std::string_view payload);
    std::size_t size() const { return impl_->entries.size(); }
    /// The batch; the builder is spent.
    device_batch done() &&;

  private:
    std::shared_ptr<impl> impl_;
  };

  /// Iterates the messages as device_message_view (by value).
  class const_iterator {
  public:
    using iterator_category = std::input_iterator_tag;
    using value_type = device_message_view;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = device_message_view;
    const_iterator() = default;
    device_message_view operator*() const { return (*batch_)[i_]; }
    const_iterator& operator++() {
      ++i_;
      return *this;
    }
    const_iterator operator++(int) {
      auto old = *this;
      ++i_;
      return old;
    }
    bool operator==(const const_iterator& other) const { return i_ == other.i_; }

  private:
    friend class device_batch;
    const_iterator(const device_batch* b, std::size_t i) : batch_(b), i_(i) {}
    const device_batch* batch_ = nullptr;
    std::size_t i_ = 0;
  };

  // Container-like (CAF's type traits read value_type of anything with begin/end).
  using value_type = device_message_view;
  using iterator = const_iterator;
  using size_type = std::size_t;

  device_batch() = default;

  std::string_view connection_id() const {
    return impl_ ? impl_->slice(0, impl_->conn_len) : std::string_view{};
  }
  /// May be empty (device not identified).
  std::string_view device_id() const {
    return impl_ ? impl_->slice(impl_->conn_len, impl_->device_id_end) : std::string_view{};
  }
  std::size_t size() const { return impl_ ? impl_->entries.size() : 0; }
  bool empty() const { return size() == 0; }

  /// Message `i` (< size()).
  device_message_view operator[](std::size_t i) const {
    auto& e = impl_->entries[i];
    auto begin = i == 0 ? impl_->device_id_end : impl_->entries[i - 1].end;
    return {e.seq, e.message_id, impl_->slice(begin, e.end)};
  }
  const_iterator begin() const { return {this, 0}; }
  const_iterator end() const { return {this, size()}; }

  /// from_device_seq of the last message; 0 when empty.
  uint64_t last_seq() const { return empty() ? 0 : impl_->entries.back().seq; }

  /// Message `i` (< size()) as an owning device_message, every field copied.
  device_message message(std::size_t i) const;

private:
  explicit device_batch(std::shared_ptr<const impl> p) : impl_(std::move(p)) {}
  std::shared_ptr<const impl> impl_;
};

/// How a backend message names its device.
enum class address_kind : uint8_t { connection, device };

/// A message from the backend for one device.
struct to_device_message {
  address_kind kind = address_kind::device;
  std::string target;                    ///< connection id or device id
  std::optional<uint64_t> to_device_seq; ///< orders messages per device; none: deliver at once
  std::string payload;
};

using publish_atom = caf::atom_constant<caf::atom("bpublish")>;   // (device_batch)
using accepted_atom = caf::atom_constant<caf::atom("baccepted")>; // (uint64_t connection_seq)
using deliver_atom = caf::atom_constant<caf::atom("bdeliver")>;   // (to_device_message) -> delivered_atom,
                                                                // (vector<to_device_message> or device_batch
                                                                // [, accepted_atom, uint64_t]) one-way
using delivered_atom = caf::atom_constant<caf::atom("bdelivered")>; // reply to deliver_atom

/// Finds the session (endpoint actor) of a device or connection. The gateway
/// implements it over its session registry; lookups are lock-light and may run on
/// any thread.
class router {
public:
  virtual ~router() = default;
  /// The session actor, or a null handle when no such device is connected here.
  virtual caf::actor find(address_kind kind, std::string_view id) const = 0;
  /// For a device not connected here: the actor that reaches it on another node of the
  /// cluster, answering (deliver_atom, to_device_message) as a session would (plus
  /// backend_errc::no_such_device when no node has it, cluster_unavailable and
  /// no_answer); a null handle without a cluster (the default).
  virtual caf::actor remote(address_kind, std::string_view) const { return {}; }
  /// Where a deliver_atom request for `id` goes: find(), else remote().
  caf::actor route(address_kind kind, std::string_view id) const {
    auto a = find(kind, id);
    return a ? a : remote(kind, id);
  }
};

/// What a backend contributes to the gateway's tree: one supervisor child (its
/// producer(s) and consumers), started before any listener, stopped after them. Its
/// producer registers itself (warren::register_name) as `producer_name`; with
/// `producers` > 1, producer i registers as producer_name_at(producer_name, i) (the
/// first one as `producer_name` itself) and each session uses one of them.
struct backend_spec {
  std::string kind; ///< "local", "echo", "amqp"
  child_spec supervisor;
  std::string producer_name = "warren.backend.producer";
  std::size_t producers = 1;

  /// The registered names of the pool, producer i at index i (producer_name_at).
  std::vector<std::string> producer_names() const;
};

/// The registered name of producer `i` of a pool: `base` for 0, `base.<i>` otherwise.
std::string producer_name_at(const std::string& base, std::size_t i);

/// Which of `n` producers a connection publishes to (stable per connection id).
std::size_t producer_index(std::string_view connection_id, std::size_t n);

std::string to_string(address_kind x);

} // namespace warren::backend

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(warren::backend::device_message)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(warren::backend::device_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(warren::backend::to_device_message)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<warren::backend::to_device_message>)
