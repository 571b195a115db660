#include "connection.hpp"

#include <amqp_tcp_socket.h>

#include <cerrno>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <unistd.h>

#include <string>

namespace warren::amqp::detail {

namespace {

timeval to_timeval(caf::timespan t) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(t).count();
  if (us <= 0)
    us = 1;
  timeval tv;
  tv.tv_sec = static_cast<time_t>(us / 1'000'000);
  tv.tv_usec = static_cast<suseconds_t>(us % 1'000'000);
  return tv;
}

std::string close_text(uint16_t code, amqp_bytes_t text) {
  return std::to_string(code) + " " + std::string{view(text)};
}

} // namespace

std::string describe_status(int status) {
  return amqp_error_string2(status);
}

std::string describe_reply(const amqp_rpc_reply_t& r, std::string_view what) {
  std::string out{what};
  out += ": ";
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return {};
    case AMQP_RESPONSE_NONE:
      return out + "no reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return out + describe_status(r.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      switch (r.reply.id) {
        case AMQP_CONNECTION_CLOSE_METHOD: {
          auto* m = static_cast<amqp_connection_close_t*>(r.reply.decoded);
          return out + "broker closed the connection: " + close_text(m->reply_code, m->reply_text);
        }
        case AMQP_CHANNEL_CLOSE_METHOD: {
          auto* m = static_cast<amqp_channel_close_t*>(r.reply.decoded);
          return out + "broker closed the channel: " + close_text(m->reply_code, m->reply_text);
        }
        default:
          return out + "unexpected server method " + std::to_string(r.reply.id);
      }
  }
  return out + "unknown reply";
}

// -- waker -------------------------------------------------------------------------

waker::waker() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

waker::~waker() {
  if (fd_ >= 0)
    ::close(fd_);
}

void waker::wake() noexcept {
  uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(fd_, &one, sizeof(one));
}

void waker::drain() noexcept {
  uint64_t n;
  [[maybe_unused]] auto r = ::read(fd_, &n, sizeof(n));
}

// -- connection --------------------------------------------------------------------

std::string connection::check(std::string_view what) {
  auto r = amqp_get_rpc_reply(state_);
  if (r.reply_type == AMQP_RESPONSE_NORMAL)
    return {};
  auto err = describe_reply(r, what);
  destroy();
  return err;
}

std::string connection::open(const options& opts) {
  destroy();
  state_ = amqp_new_connection();
  if (state_ == nullptr)
    return "amqp_new_connection failed";
  auto* sock = amqp_tcp_socket_new(state_);
  if (sock == nullptr) {
    destroy();
    return "amqp_tcp_socket_new failed";
  }
  auto tv = to_timeval(opts.connect_timeout);
  amqp_set_handshake_timeout(state_, &tv);
  amqp_set_rpc_timeout(state_, &tv);
  auto where = opts.host + ":" + std::to_string(opts.port);
  if (int st = amqp_socket_open_noblock(sock, opts.host.c_str(), opts.port, &tv); st != AMQP_STATUS_OK) {
    destroy();
    return "connect to " + where + ": " + describe_status(st);
  }
  auto r = amqp_login(state_, opts.vhost.c_str(), 0, 131072, static_cast<int>(opts.heartbeat.count()),
                      AMQP_SASL_METHOD_PLAIN, opts.user.c_str(), opts.password.c_str());
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    auto err = describe_reply(r, "login to " + where + " (vhost " + opts.vhost + ", user " + opts.user + ")");
    destroy();
    return err;
  }
  amqp_channel_open(state_, channel_no);
  return check("channel.open");
}

std::string connection::declare_from_device(const options& opts) {
  amqp_exchange_declare(state_, channel_no, bytes(opts.exchange), bytes(opts.exchange_type), 0, 1, 0, 0,
                        amqp_empty_table);
  if (auto err = check("exchange.declare " + opts.exchange); !err.empty())
    return err;
  if (opts.from_device_queue.empty())
    return {};
  amqp_queue_declare(state_, channel_no, bytes(opts.from_device_queue), 0, 1, 0, 0, amqp_empty_table);
  if (auto err = check("queue.declare " + opts.from_device_queue); !err.empty())
    return err;
  amqp_queue_bind(state_, channel_no, bytes(opts.from_device_queue), bytes(opts.exchange),
                  bytes(opts.from_device_binding), amqp_empty_table);
  return check("queue.bind " + opts.from_device_queue);
}

std::string connection::declare_to_device(const options& opts) {
  amqp_exchange_declare(state_, channel_no, bytes(opts.dead_letter_exchange), bytes("fanout"), 0, 1, 0, 0,
                        amqp_empty_table);
  if (auto err = check("exchange.declare " + opts.dead_letter_exchange); !err.empty())
    return err;
  amqp_queue_declare(state_, channel_no, bytes(opts.dead_letter_queue), 0, 1, 0, 0, amqp_empty_table);
  if (auto err = check("queue.declare " + opts.dead_letter_queue); !err.empty())
    return err;
  amqp_queue_bind(state_, channel_no, bytes(opts.dead_letter_queue), bytes(opts.dead_letter_exchange),
                  bytes(""), amqp_empty_table);
  if (auto err = check("queue.bind " + opts.dead_letter_queue); !err.empty())
    return err;
  amqp_table_entry_t arg;
  arg.key = bytes("x-dead-letter-exchange");
  arg.value.kind = AMQP_FIELD_KIND_UTF8;
  arg.value.value.bytes = bytes(opts.dead_letter_exchange);
  amqp_table_t args;
  args.num_entries = 1;
  args.entries = &arg;
  amqp_queue_declare(state_, channel_no, bytes(opts.to_device_queue), 0, 1, 0, 0, args);
  return check("queue.declare " + opts.to_device_queue);
}

void connection::close() {
  if (state_ == nullptr)
    return;
  amqp_channel_close(state_, channel_no, AMQP_REPLY_SUCCESS);
  amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
  destroy();
}

void connection::destroy() noexcept {
  if (state_ == nullptr)
    return;
  amqp_destroy_connection(state_);
  state_ = nullptr;
}

int connection::fd() const noexcept {
  return state_ ? amqp_get_sockfd(state_) : -1;
}

bool connection::has_buffered() const noexcept {
  return state_ && (amqp_frames_enqueued(state_) || amqp_data_in_buffer(state_));
}

std::string connection::handle_method(const amqp_frame_t& frame) {
  if (frame.frame_type != AMQP_FRAME_METHOD)
    return {};
  switch (frame.payload.method.id) {
    case AMQP_CONNECTION_CLOSE_METHOD: {
      auto* m = static_cast<amqp_connection_close_t*>(frame.payload.method.decoded);
      auto text = "broker closed the connection: " + close_text(m->reply_code, m->reply_text);
      amqp_connection_close_ok_t ok;
      ok.dummy = 0;
      amqp_send_method(state_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
      return text;
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
      auto* m = static_cast<amqp_channel_close_t*>(frame.payload.method.decoded);
      auto text = "broker closed the channel: " + close_text(m->reply_code, m->reply_text);
      amqp_channel_close_ok_t ok;
      ok.dummy = 0;
      amqp_send_method(state_, frame.channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
      return text;
    }
    case AMQP_BASIC_CANCEL_METHOD:
      return "broker cancelled the consumer";
    default:
      return {};
  }
}

} // namespace warren::amqp::detail
