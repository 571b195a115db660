#include "session.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <asio/connect.hpp>
#include <asio/error.hpp>
#include <asio/ssl/error.hpp>
#include <asio/write.hpp>
#include <openssl/ssl.h>

#include "worker.hpp"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

namespace warren::loadgen {

namespace codec = warren::net::codec;

namespace {

std::chrono::nanoseconds seconds(double s) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(s));
}

std::int64_t nanos(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

std::uint64_t micros_since(Clock::time_point t0, Clock::time_point now) {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(now - t0).count());
}

Reason connect_reason(const asio::error_code& ec) {
  if (ec == asio::error::connection_refused)
    return Reason::connect_refused;
  if (ec == asio::error::timed_out)
    return Reason::connect_timeout;
  if (ec == asio::error::address_in_use || ec == std::errc::address_not_available)
    return Reason::addr_unavailable;
  if (ec == asio::error::no_descriptors || ec == std::errc::too_many_files_open_in_system)
    return Reason::fd_exhausted;
  if (ec == asio::error::connection_reset)
    return Reason::reset;
  return Reason::connect_error;
}

Reason io_reason(const asio::error_code& ec) {
  if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated)
    return Reason::closed;
  if (ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
      ec == asio::error::connection_aborted)
    return Reason::reset;
  if (ec == asio::error::timed_out)
    return Reason::timeout;
  return Reason::io_error;
}

Violation from_codec(codec::error_reason r) {
  switch (r) {
    case codec::error_reason::frame_too_large:
      return Violation::frame_too_large;
    case codec::error_reason::unknown_frame_type:
      return Violation::unknown_frame_type;
    case codec::error_reason::bad_fixed_length:
      return Violation::bad_fixed_length;
    case codec::error_reason::ack_beyond_sent:
      return Violation::ack_beyond_sent;
    default:
      return Violation::ack_invariant;
  }
}

// Decoders accept frames a little larger than the messages we send; never below the codec default.
std::size_t max_frame(const Options& o) {
  return std::max(codec::default_max_frame, o.size + 64);
}

} // namespace

Session::Session(Worker& worker, std::uint64_t number)
  : w_(worker), number_(number), sock_(worker.io()), line_dec_(max_frame(worker.opts)),
    frame_dec_(max_frame(worker.opts)) {}

Session::~Session() {
  if (linked_)
    w_.unlink(this);
}

void Session::start() {
  w_.link(this);
  linked_ = true;
  in_attempt_ = true;
  w_.stats.inflight.add();
  w_.stats.attempted.add();
  t0_ = Clock::now();
  phase_ = Phase::connecting;
  deadline_ = t0_ + seconds(w_.opts.connect_timeout);

  if (auto* ctx = w_.tls_context())
    tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket>>(w_.io(), *ctx);
  auto& s = socket();
  const auto target = w_.target();
  asio::error_code ec;
  s.open(target.protocol(), ec);
  if (ec) {
    fail(connect_reason(ec));
    return;
  }
  s.set_option(asio::ip::tcp::no_delay(true), ec);
  asio::ip::address_v4 src;
  if (w_.next_source(src)) {
    // Let connect() pick the port for the full 4-tuple instead of reserving one at bind().
    int one = 1;
    ::setsockopt(s.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    s.bind(asio::ip::tcp::endpoint(src, 0), ec);
    if (ec) {
      fail(connect_reason(ec));
      return;
    }
  }
  s.async_connect(target, [self = shared_from_this()](const asio::error_code& e) { self->on_connect(e); });
}

void Session::on_connect(const asio::error_code& ec) {
  if (phase_ != Phase::connecting)
    return;
  if (ec) {
    fail(connect_reason(ec));
    return;
  }
  if (!tls_) {
    on_ready();
    return;
  }
  phase_ = Phase::handshaking;
  deadline_ = Clock::now() + seconds(w_.opts.handshake_timeout);
  SSL* ssl = tls_->native_handle();
  if (!w_.opts.sni.empty())
    SSL_set_tlsext_host_name(ssl, w_.opts.sni.c_str());
  if (w_.opts.tls_verify && !w_.opts.sni.empty())
    SSL_set1_host(ssl, w_.opts.sni.c_str());
  if (w_.opts.tls_resume && w_.session_cache().get())
    SSL_set_session(ssl, static_cast<SSL_SESSION*>(w_.session_cache().get()));
  tls_->async_handshake(asio::ssl::stream_base::client,
                        [self = shared_from_this()](const asio::error_code& e) { self->on_handshake(e); });
}

void Session::on_handshake(const asio::error_code& ec) {
  if (phase_ != Phase::handshaking)
    return;
  if (ec) {
    fail(Reason::handshake_failed);
    return;
  }
  if (SSL_session_reused(tls_->native_handle()))
    w_.stats.resumed.add();
  on_ready();
}

void Session::on_ready() {
  const auto now = Clock::now();
  phase_ = Phase::running;
  deadline_ = Clock::time_point::max();
  w_.stats.connect.record(micros_since(t0_, now));
  w_.stats.opened();
  is_open_ = true;
  const auto& o = w_.opts;
  if (!o.device_id_prefix.empty()) // identify = "first_message": the id goes first, alone on its line
    (void)codec::encode_line(out_, o.device_id_prefix + std::to_string(number_));
  if (!o.connect_log.empty()) {
    auto& log = w_.connect_log;
    if (o.device_id_prefix.empty())
      log += std::to_string(number_);
    else
      log.append(o.device_id_prefix).append(std::to_string(number_));
    log.append(" ").append(std::to_string(nanos(t0_))).append(" ").append(std::to_string(nanos(now)));
    log += '\n';
  }
  rbuf_.resize(o.workload == Workload::idle
                   ? 512
                   : std::max<std::size_t>(4096, std::min<std::size_t>(o.size * 2 + 64, 65536)));

  switch (o.workload) {
    case Workload::churn:
      sent_at_.assign(1, now);
      send_message();
      deadline_ = now + seconds(o.timeout);
      break;
    case Workload::stream:
      in_attempt_ = false;
      w_.stats.inflight.sub();
      w_.attempt_ended();
      w_.stats.completed.add();
      w_.last_event = now;
      sent_at_.assign(o.window, now);
      for (unsigned i = 0; i < o.window; ++i)
        send_message();
      deadline_ = now + seconds(o.timeout);
      break;
    case Workload::idle:
      in_attempt_ = false;
      w_.stats.inflight.sub();
      w_.attempt_ended();
      w_.stats.completed.add();
      w_.stats.latency.record(micros_since(t0_, now));
      w_.last_event = now;
      if (o.ping_interval > 0)
        next_ping_ = now + seconds(o.ping_interval);
      if (tls_ && o.tls_resume)
        w_.session_cache().put(tls_->native_handle());
      flush(); // the device id, if any
      break;
  }
  read();
}

void Session::send_message() {
  const std::uint64_t seq = next_seq_++;
  thread_local std::string payload;
  payload.clear();
  w_.payload(seq, payload);
  if (w_.opts.codec == Codec::line) {
    (void)codec::encode_line(out_, payload);
  } else {
    codec::encode_data(out_, seq, payload);
    acks_.sent(seq);
  }
  // Ring of send times (stream: --window entries; churn: 1).
  const std::size_t cap = sent_at_.size();
  sent_at_[(ring_head_ + ring_count_) % cap] = Clock::now();
  if (ring_count_ < cap)
    ++ring_count_;
  w_.stats.sent.add();
  flush();
}

void Session::flush() {
  if (writing_ || out_.empty() || phase_ == Phase::done)
    return;
  writing_ = true;
  writing_buf_.swap(out_);
  out_.clear();
  auto handler = [self = shared_from_this()](const asio::error_code& ec, std::size_t) { self->on_write(ec); };
  if (tls_)
    asio::async_write(*tls_, asio::buffer(writing_buf_), std::move(handler));
  else
    asio::async_write(sock_, asio::buffer(writing_buf_), std::move(handler));
}

void Session::on_write(const asio::error_code& ec) {
  writing_ = false;
  if (phase_ == Phase::done)
    return;
  if (ec) {
    fail(io_reason(ec));
    return;
  }
  writing_buf_.clear();
  if (!out_.empty()) {
    flush();
    return;
  }
  if (phase_ == Phase::closing)
    finish();
}

void Session::read() {
  auto handler = [self = shared_from_this()](const asio::error_code& ec, std::size_t n) {
    self->on_read(ec, n);
  };
  if (tls_)
    tls_->async_read_some(asio::buffer(rbuf_), std::move(handler));
  else
    sock_.async_read_some(asio::buffer(rbuf_), std::move(handler));
}

void Session::on_read(const asio::error_code& ec, std::size_t n) {
  if (phase_ != Phase::running)
    return;
  if (ec) {
    fail(io_reason(ec));
    return;
  }
  const std::string_view chunk(rbuf_.data(), n);
  if (w_.opts.codec == Codec::line) {
    auto r = line_dec_.feed(chunk, [this](std::string_view l) {
      if (phase_ == Phase::running)
        on_line(l);
    });
    if (!r.ok() && phase_ == Phase::running)
      violation(from_codec(r.error));
  } else {
    auto r = frame_dec_.feed(chunk, [this](const codec::frame& f) {
      if (phase_ == Phase::running)
        on_frame(f);
    });
    if (!r.ok() && phase_ == Phase::running)
      violation(from_codec(r.error));
    // Cumulative PUSH_ACK for everything processed in this chunk (batched).
    if (phase_ == Phase::running && last_push_ > push_acked_) {
      codec::encode_push_ack(out_, last_push_);
      push_acked_ = last_push_;
      flush();
    }
  }
  if (phase_ == Phase::running)
    read();
}

void Session::on_line(std::string_view payload) {
  if (w_.opts.workload == Workload::idle && !w_.opts.device_id_prefix.empty()) {
    // A push from the backend to this device: count it; "t=<ns>" at its front is its send time.
    const auto now = Clock::now();
    w_.stats.pushes.add();
    w_.last_event = now;
    if (payload.size() > 2 && payload[0] == 't' && payload[1] == '=') {
      std::int64_t sent = 0;
      std::size_t i = 2;
      for (; i < payload.size() && payload[i] >= '0' && payload[i] <= '9'; ++i)
        sent = sent * 10 + (payload[i] - '0');
      if (i > 2 && sent <= nanos(now))
        w_.stats.push.record(static_cast<std::uint64_t>((nanos(now) - sent) / 1000));
    }
    return;
  }
  on_echo(payload);
}

void Session::on_frame(const codec::frame& f) {
  switch (f.type) {
    case codec::frame_type::ack: {
      const auto r = acks_.check(f);
      if (r != codec::error_reason::none)
        violation(from_codec(r));
      break;
    }
    case codec::frame_type::push:
      if (f.id != last_push_ + 1) {
        violation(Violation::push_out_of_order);
        return;
      }
      last_push_ = f.id;
      on_echo(f.payload);
      break;
    case codec::frame_type::ping:
      codec::encode_pong(out_, f.id);
      flush();
      break;
    case codec::frame_type::pong:
      if (ping_id_ == 0 || f.id != ping_id_) {
        violation(Violation::pong_mismatch);
        return;
      }
      ping_id_ = 0;
      w_.stats.messages.add();
      deadline_ = Clock::time_point::max();
      next_ping_ = Clock::now() + seconds(w_.opts.ping_interval);
      break;
    case codec::frame_type::data:
    case codec::frame_type::push_ack:
      violation(Violation::unexpected_frame);
      break;
  }
}

void Session::on_echo(std::string_view payload) {
  if (ring_count_ == 0) {
    violation(Violation::unexpected_echo);
    return;
  }
  const std::uint64_t seq = ++echoes_;
  if (!w_.payload_matches(seq, payload)) {
    violation(Violation::echo_mismatch);
    return;
  }
  const auto now = Clock::now();
  const auto sent = sent_at_[ring_head_];
  ring_head_ = (ring_head_ + 1) % sent_at_.size();
  --ring_count_;
  w_.stats.messages.add();
  const auto& o = w_.opts;
  if (o.workload == Workload::churn) {
    w_.last_event = now;
    w_.stats.latency.record(micros_since(t0_, now));
    complete();
    return;
  }
  w_.stats.latency.record(micros_since(sent, now));
  if (o.workload == Workload::stream) {
    deadline_ = now + seconds(o.timeout);
    if (!w_.stopping())
      send_message();
  }
}

void Session::complete() {
  w_.stats.completed.add();
  if (tls_ && w_.opts.tls_resume)
    w_.session_cache().put(tls_->native_handle());
  if (w_.opts.codec == Codec::frame && last_push_ > push_acked_) {
    // Acknowledge the echo before closing (the frame protocol's device duty).
    codec::encode_push_ack(out_, last_push_);
    push_acked_ = last_push_;
  }
  if (writing_ || !out_.empty()) {
    phase_ = Phase::closing;
    deadline_ = Clock::now() + seconds(w_.opts.timeout);
    flush();
    return;
  }
  finish();
}

void Session::sweep(Clock::time_point now) {
  if (now >= deadline_) {
    switch (phase_) {
      case Phase::connecting:
        fail(Reason::connect_timeout);
        return;
      case Phase::handshaking:
        fail(Reason::handshake_timeout);
        return;
      case Phase::running:
        fail(Reason::timeout);
        return;
      case Phase::closing:
        finish(); // the echo arrived; only our last PUSH_ACK did not get out in time
        return;
      default:
        return;
    }
  }
  if (phase_ == Phase::running && now >= next_ping_ && ping_id_ == 0 && !w_.stopping()) {
    ping_id_ = ++pings_sent_;
    codec::encode_ping(out_, ping_id_);
    w_.stats.sent.add();
    next_ping_ = Clock::time_point::max();
    deadline_ = now + seconds(w_.opts.timeout);
    flush();
  }
}

void Session::violation(Violation v) {
  w_.stats.violation(v);
  fail(Reason::protocol_violation);
}

void Session::fail(Reason r) {
  if (phase_ == Phase::done)
    return;
  w_.stats.fail(r);
  finish();
}

void Session::abort(bool count_aborted) {
  if (phase_ == Phase::done)
    return;
  if (count_aborted && in_attempt_)
    w_.stats.aborted.add();
  finish();
}

void Session::finish() {
  if (phase_ == Phase::done)
    return;
  phase_ = Phase::done;
  deadline_ = Clock::time_point::max();
  if (is_open_) {
    is_open_ = false;
    w_.stats.open.sub();
  }
  if (in_attempt_) {
    in_attempt_ = false;
    w_.stats.inflight.sub();
    w_.attempt_ended();
  }
  close_socket();
}

void Session::close_socket() {
  auto& s = socket();
  asio::error_code ec;
  if (w_.opts.linger0 && s.is_open())
    s.set_option(asio::socket_base::linger(true, 0), ec);
  s.close(ec);
}

} // namespace warren::loadgen
