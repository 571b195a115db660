// A Warren node's link to NATS: one connection (libnats, reconnecting by itself), the
// subscriptions made through it, and the inbox its requests' replies come back on.
//
// Threads: libnats runs every subscription callback on its shared delivery pool
// (options::delivery_threads; no thread per subscription) and the state callbacks on
// its own thread. Neither may block: a callback hands its message to a CAF actor
// (anon_send) and returns. publish() and subscribe() may be called from any thread.
//
// Requests are asynchronous and their replies are actor messages: an actor takes a
// slot (set_reply_target), publishes with reply subject inbox(slot, token), and
// receives (reply_atom, token, message) for it; the "no responders" answer of the
// server (nobody subscribes to that subject) arrives the same way, with
// message::no_responders(). Deadlines are the actor's (pending.hpp).
#pragma once

#include <warren/cluster/options.hpp>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct __natsConnection;
struct __natsSubscription;
struct __natsMsg;

namespace warren::cluster {

enum class link_state : uint8_t {
  connecting,   ///< never connected yet (retrying in the background)
  connected,    ///< serving
  reconnecting, ///< lost its server; retrying with backoff (publish() refuses meanwhile)
  closed        ///< gone for good (the node is being destroyed)
};
std::string to_string(link_state s);

/// A received message. Copies share it (one libnats message); views are valid while
/// any copy lives.
class message {
public:
  message() = default;
  explicit message(__natsMsg* m); ///< takes ownership
  std::string_view subject() const;
  std::string_view reply() const; ///< empty when none
  std::string_view data() const;
  /// The value of header `key`, or nothing.
  std::optional<std::string_view> header(const char* key) const;
  /// The server's "no responders" status: nobody subscribes to the request's subject.
  bool no_responders() const;
  explicit operator bool() const { return static_cast<bool>(m_); }

private:
  std::shared_ptr<__natsMsg> m_;
};

struct header {
  std::string_view key, value;
};

/// A subscription; unsubscribes when destroyed. Move-only.
class subscription {
public:
  subscription() = default;
  explicit subscription(__natsSubscription* s) : s_(s) {}
  subscription(subscription&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  subscription& operator=(subscription&& o) noexcept;
  subscription(const subscription&) = delete;
  subscription& operator=(const subscription&) = delete;
  ~subscription() { reset(); }
  void reset();
  explicit operator bool() const { return s_ != nullptr; }

private:
  __natsSubscription* s_ = nullptr;
};

/// Where a subscription's messages go: on_message(ctx, msg) on a delivery-pool thread.
/// Outlives every subscription made with it (one per kind of subject, not per
/// subscription: a device's subscription allocates nothing of its own).
struct sub_target {
  void (*on_message)(void* ctx, message m) = nullptr;
  void* ctx = nullptr;
};

/// (reply_atom, uint64_t token, message): a reply on inbox(slot, token).
using reply_atom = caf::atom_constant<caf::atom("clreply")>;

struct node_counters {
  std::atomic<uint64_t> disconnects{0};
  std::atomic<uint64_t> reconnects{0};
  std::atomic<uint64_t> publish_refused{0}; ///< publish() while not connected, or refused by libnats
  std::atomic<uint64_t> async_errors{0};    ///< libnats's error handler (slow consumer, permissions)
  std::atomic<uint64_t> stray_replies{0};   ///< inbox messages for no known slot
};

class node {
public:
  /// Checks the options (std::invalid_argument with options_problem()'s text) and
  /// prepares the connection; start() connects.
  explicit node(options opts);
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// Called on a libnats thread at every change of state (before start()).
  void on_state(std::function<void(link_state)> f);

  /// Connects. When no server answers, the node keeps trying in the background
  /// (state connecting) and this still succeeds; an error only for what retrying
  /// cannot fix (bad TLS files, bad credentials file), as std::runtime_error.
  void start();
  /// Closes the connection (state closed; subscriptions end). The destructor does it too.
  void close();

  const options& opts() const { return opts_; }
  const std::string& name() const { return opts_.node_name; }
  link_state state() const { return state_.load(std::memory_order_acquire); }
  bool connected() const { return state() == link_state::connected; }
  /// The server in use ("nats://host:port"), or empty.
  std::string server_url() const;
  /// Round trip to the server (a PING), or nothing when not connected.
  std::optional<caf::timespan> rtt() const;

  /// Subscribes (also while disconnected: libnats sends it once connected, and again
  /// after every reconnect). An empty handle if libnats refused (logged). Messages
  /// past `max_pending` waiting for their callback are dropped and reported to the
  /// error handler (counters().async_errors): a device's subject gets a few at a time.
  subscription subscribe(const std::string& subject, const sub_target* target, int max_pending = 4096);

  /// Publishes; false (nothing sent, counted) when not connected or refused.
  bool publish(const std::string& subject, const std::string& reply, std::span<const header> headers,
               std::string_view data);

  /// Replies on inbox(slot, ...) go to `target` from now on (slots 0-255; a
  /// restarted actor takes its predecessor's slot; a null handle drops them).
  void set_reply_target(uint32_t slot, caf::actor target);
  /// The reply subject of request `token` of `slot`.
  std::string inbox(uint32_t slot, uint64_t token) const;

  /// Scatter-gather, blocking (not from an actor): publishes a request and collects
  /// the replies that arrive within `window` (at most `max`). Empty when not
  /// connected or nobody answers.
  std::vector<message> gather(const std::string& subject, std::string_view data, caf::timespan window,
                              std::size_t max);

  /// A blocking request (not from an actor): publishes and waits for the first reply
  /// (which may be the server's "no responders") at most `timeout`. The caller's thread
  /// is woken by the delivery pool directly, with no actor in between: the cheapest
  /// round trip for a caller that blocks anyway (an admin API thread).
  struct request_result {
    enum outcome : uint8_t { replied, timeout, unavailable } status = unavailable;
    message reply; ///< when replied
  };
  request_result request(const std::string& subject, std::span<const header> headers, std::string_view data,
                         caf::timespan timeout);

  const node_counters& counters() const { return counters_; }

private:
  struct impl;
  static void on_inbox(void* ctx, message m);
  /// Publishes on a fresh gather token and collects up to `max` replies within `window`
  /// (a "no responders" answer ends the wait, and is the one message in `out` when
  /// `keep_no_responders`: a request's answer). False when nothing could be sent.
  bool wait_replies(const std::string& subject, std::span<const header> headers, std::string_view data,
                    caf::timespan window, std::size_t max, bool keep_no_responders,
                    std::vector<message>& out);
  void set_state(link_state s);

  options opts_;
  std::unique_ptr<impl> impl_;
  std::atomic<link_state> state_{link_state::connecting};
  node_counters counters_;
  sub_target inbox_target_;
};

} // namespace warren::cluster

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(warren::cluster::message)
