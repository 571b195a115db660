// Helpers for the amqp backend tests: an independent blocking AMQP client written
// directly against librabbitmq (not Warren's code), a fake router, fake sessions and
// a recorder to wait on.
#pragma once

#include "broker.hpp"

#include <warren_test/skip.hpp>

#include <warren/amqp/amqp.hpp>
#include <warren/backend/messages.hpp>
#include <warren/log.hpp>
#include <warren/supervisor.hpp>

#include <caf/all.hpp>
#include <doctest/doctest.h>

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace amqp_test {

namespace backend = warren::backend;

/// One broker per test executable, started on first use.
inline broker& shared_broker() {
  static broker b;
  return b;
}

/// Why this executable has no broker (not installed, or it could not start), or
/// nothing when shared_broker() is up. Tried once: a broker that failed to start is
/// not retried by every case.
inline const std::optional<std::string>& broker_unavailable() {
  static const std::optional<std::string> why = []() -> std::optional<std::string> {
    if (!broker_installed())
      return "rabbitmq-server is not installed (scripts/setup installs it)";
    try {
      shared_broker();
      return std::nullopt;
    } catch (const std::exception& e) {
      return std::string{"no RabbitMQ broker could start: "} + e.what();
    }
  }();
  return why;
}

/// Skips the test case (ctest reports the executable "Skipped") without a broker.
#define AMQP_TEST_REQUIRE_BROKER()                                                                           \
  do {                                                                                                       \
    if (const auto& why = ::amqp_test::broker_unavailable())                                                 \
      WARREN_TEST_SKIP(*why);                                                                                \
  } while (false)

/// Options for one test case: its own exchange and queues, all on `b`.
inline warren::amqp::options test_options(const broker& b, const std::string& prefix) {
  warren::amqp::options o;
  o.host = "127.0.0.1";
  o.port = b.port();
  o.heartbeat = std::chrono::seconds(5);
  o.exchange = prefix + ".from_device";
  o.from_device_queue = prefix + ".from_device";
  o.to_device_queue = prefix + ".to_device";
  o.dead_letter_exchange = prefix + ".dead_letter";
  o.dead_letter_queue = prefix + ".dead_letter";
  o.producer_name = prefix + ".producer";
  o.id = prefix;
  o.consumers = 2;
  o.reconnect_initial = std::chrono::milliseconds(50);
  o.reconnect_max = std::chrono::milliseconds(500);
  o.stats = std::make_shared<warren::amqp::counters>();
  return o;
}

/// A message read back by the independent client.
struct got_message {
  std::string body;
  std::map<std::string, std::variant<std::string, int64_t>> headers;
  uint8_t delivery_mode = 0;
  std::string message_id; ///< the message_id property ("" when absent)
  std::string routing_key;
  std::string exchange;

  std::string str(const std::string& key) const {
    auto i = headers.find(key);
    if (i == headers.end() || !std::holds_alternative<std::string>(i->second))
      return "<missing>";
    return std::get<std::string>(i->second);
  }
  std::optional<int64_t> num(const std::string& key) const {
    auto i = headers.find(key);
    if (i == headers.end() || !std::holds_alternative<int64_t>(i->second))
      return std::nullopt;
    return std::get<int64_t>(i->second);
  }
};

/// A blocking client on raw librabbitmq, for cross-checks.
class client {
public:
  explicit client(uint16_t port) {
    conn_ = amqp_new_connection();
    auto sock = amqp_tcp_socket_new(conn_);
    timeval tv{10, 0};
    if (amqp_socket_open_noblock(sock, "127.0.0.1", port, &tv) != AMQP_STATUS_OK)
      throw std::runtime_error("client: cannot connect");
    if (amqp_login(conn_, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest").reply_type !=
        AMQP_RESPONSE_NORMAL)
      throw std::runtime_error("client: login failed");
    amqp_channel_open(conn_, 1);
    check("channel.open");
  }
  ~client() {
    amqp_channel_close(conn_, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn_);
  }
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// Ready messages in `queue` (passive declare).
  uint32_t count(const std::string& queue) {
    auto* ok = amqp_queue_declare(conn_, 1, amqp_cstring_bytes(queue.c_str()), 1, 0, 0, 0, amqp_empty_table);
    check("queue.declare passive " + queue);
    return ok->message_count;
  }

  /// basic.get with ack; nullopt when the queue is empty.
  std::optional<got_message> get(const std::string& queue) {
    auto r = amqp_basic_get(conn_, 1, amqp_cstring_bytes(queue.c_str()), 1);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
      throw std::runtime_error("client: basic.get failed");
    if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD)
      return std::nullopt;
    auto* g = static_cast<amqp_basic_get_ok_t*>(r.reply.decoded);
    got_message out;
    out.routing_key.assign(static_cast<char*>(g->routing_key.bytes), g->routing_key.len);
    out.exchange.assign(static_cast<char*>(g->exchange.bytes), g->exchange.len);
    amqp_message_t msg;
    if (amqp_read_message(conn_, 1, &msg, 0).reply_type != AMQP_RESPONSE_NORMAL)
      throw std::runtime_error("client: read_message failed");
    out.body.assign(static_cast<char*>(msg.body.bytes), msg.body.len);
    if (msg.properties._flags & AMQP_BASIC_DELIVERY_MODE_FLAG)
      out.delivery_mode = msg.properties.delivery_mode;
    if (msg.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG)
      out.message_id.assign(static_cast<char*>(msg.properties.message_id.bytes),
                            msg.properties.message_id.len);
    if (msg.properties._flags & AMQP_BASIC_HEADERS_FLAG) {
      for (int i = 0; i < msg.properties.headers.num_entries; ++i) {
        auto& e = msg.properties.headers.entries[i];
        std::string key(static_cast<char*>(e.key.bytes), e.key.len);
        if (e.value.kind == AMQP_FIELD_KIND_UTF8 || e.value.kind == AMQP_FIELD_KIND_BYTES)
          out.headers[key] =
              std::string(static_cast<char*>(e.value.value.bytes.bytes), e.value.value.bytes.len);
        else if (e.value.kind == AMQP_FIELD_KIND_I64)
          out.headers[key] = e.value.value.i64;
      }
    }
    amqp_destroy_message(&msg);
    amqp_maybe_release_buffers(conn_);
    return out;
  }

  /// Everything in `queue`, in queue order.
  std::vector<got_message> drain(const std::string& queue) {
    std::vector<got_message> out;
    while (auto m = get(queue))
      out.push_back(std::move(*m));
    return out;
  }

  /// Publishes to the default exchange (routing key = queue) with string and/or
  /// long-long headers; persistent.
  void publish(const std::string& queue, const std::string& body,
               const std::vector<std::pair<std::string, std::variant<std::string, int64_t>>>& headers) {
    std::vector<amqp_table_entry_t> entries(headers.size());
    for (size_t i = 0; i < headers.size(); ++i) {
      entries[i].key = amqp_cstring_bytes(headers[i].first.c_str());
      if (auto* s = std::get_if<std::string>(&headers[i].second)) {
        entries[i].value.kind = AMQP_FIELD_KIND_UTF8;
        entries[i].value.value.bytes = amqp_cstring_bytes(s->c_str());
      } else {
        entries[i].value.kind = AMQP_FIELD_KIND_I64;
        entries[i].value.value.i64 = std::get<int64_t>(headers[i].second);
      }
    }
    amqp_basic_properties_t props;
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_HEADERS_FLAG;
    props.delivery_mode = 2;
    props.headers.num_entries = static_cast<int>(entries.size());
    props.headers.entries = entries.data();
    amqp_bytes_t b;
    b.len = body.size();
    b.bytes = const_cast<char*>(body.data());
    if (amqp_basic_publish(conn_, 1, amqp_empty_bytes, amqp_cstring_bytes(queue.c_str()), 0, 0, &props, b) !=
        AMQP_STATUS_OK)
      throw std::runtime_error("client: publish failed");
  }

  void purge(const std::string& queue) {
    amqp_queue_purge(conn_, 1, amqp_cstring_bytes(queue.c_str()));
    check("queue.purge " + queue);
  }

private:
  void check(const std::string& what) {
    if (amqp_get_rpc_reply(conn_).reply_type != AMQP_RESPONSE_NORMAL)
      throw std::runtime_error("client: " + what + " failed");
  }
  amqp_connection_state_t conn_;
};

/// Polls `pred` until it holds or `timeout` passes (a safety net, never a measure).
inline bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 30s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

/// The gateway's session registry, faked: ids to actors.
class fake_router : public backend::router {
public:
  void add(backend::address_kind kind, const std::string& id, caf::actor who) {
    std::lock_guard guard{mtx_};
    map_[{kind, id}] = std::move(who);
  }
  void remove(backend::address_kind kind, const std::string& id) {
    std::lock_guard guard{mtx_};
    map_.erase({kind, id});
  }
  caf::actor find(backend::address_kind kind, std::string_view id) const override {
    std::lock_guard guard{mtx_};
    auto i = map_.find({kind, std::string{id}});
    return i == map_.end() ? caf::actor{} : i->second;
  }

private:
  mutable std::mutex mtx_;
  std::map<std::pair<backend::address_kind, std::string>, caf::actor> map_;
};

/// What fake sessions received, shared with the test thread.
struct recorder {
  struct entry {
    std::string session;
    backend::to_device_message msg;
  };
  std::mutex mtx;
  std::vector<entry> got;

  void add(std::string session, backend::to_device_message m) {
    std::lock_guard guard{mtx};
    got.push_back({std::move(session), std::move(m)});
  }
  size_t size() {
    std::lock_guard guard{mtx};
    return got.size();
  }
  std::vector<entry> snapshot() {
    std::lock_guard guard{mtx};
    return got;
  }
};

/// How a fake session answers deliver_atom.
enum class session_mode { deliver, hold, fail };

struct session_ctl {
  std::atomic<session_mode> mode{session_mode::deliver};
};

/// A fake session: records every delivery, then answers per its control.
inline caf::behavior fake_session(caf::event_based_actor* self, std::string name,
                                  std::shared_ptr<recorder> rec, std::shared_ptr<session_ctl> ctl) {
  return {
      [=](backend::deliver_atom, backend::to_device_message& m) -> caf::result<backend::delivered_atom> {
        rec->add(name, m);
        switch (ctl->mode.load()) {
          case session_mode::deliver:
            return backend::delivered_atom::value;
          case session_mode::fail:
            return caf::make_error(caf::sec::request_receiver_down);
          case session_mode::hold:
            break;
        }
        auto rp = self->make_response_promise<backend::delivered_atom>();
        return rp; // never delivered: the consumer's request times out or the consumer dies
      },
  };
}

/// The backend's supervisor under a top supervisor, as the gateway runs it. Stopped
/// by stop() or, when a test fails half-way, by the destructor (otherwise the actor
/// system would wait for the tree forever).
class running_backend {
public:
  running_backend(caf::actor_system& sys, const warren::backend::backend_spec& spec) : sys_(sys) {
    warren::supervisor_flags flags;
    flags.intensity = 20;
    auto sup = warren::start_supervisor(sys, flags, {spec.supervisor}, "test-top");
    REQUIRE_MESSAGE(sup, "backend did not start");
    top_ = *sup;
  }
  ~running_backend() { stop(); }
  running_backend(const running_backend&) = delete;
  running_backend& operator=(const running_backend&) = delete;

  operator const caf::actor&() const { return top_; }
  caf::error stop() {
    if (!top_)
      return {};
    auto reason = warren::sup::stop(sys_, top_);
    top_ = nullptr;
    return reason;
  }

private:
  caf::actor_system& sys_;
  caf::actor top_;
};

/// The live child of `sup` (a supervisor) named `id`, found through `path` of ids.
inline caf::actor child_of(caf::actor_system& sys, caf::actor sup, const std::vector<std::string>& path) {
  for (auto& id : path) {
    auto kids = warren::sup::which_children(sys, sup);
    if (!kids) {
      MESSAGE("which_children failed: " << caf::to_string(kids.error()));
      return {};
    }
    caf::actor next;
    for (auto& k : *kids)
      if (k.id == id)
        next = k.handle;
    if (!next) {
      std::string ids;
      for (auto& k : *kids)
        ids += k.id + (k.handle ? "(running) " : "(no handle) ");
      MESSAGE("no running child " << id << " among: " << ids);
      return {};
    }
    sup = next;
  }
  return sup;
}

} // namespace amqp_test
