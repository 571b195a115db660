// One device connection: TCP connect (bound to a rotating loopback source address), optional TLS
// handshake, then the workload's traffic on codec line or frame, with the protocol checks.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <asio/ip/tcp.hpp>
#include <asio/ssl/stream.hpp>

#include <warren/net/codec/frame.hpp>
#include <warren/net/codec/line.hpp>

#include "stats.hpp"

namespace warren::loadgen {

using Clock = std::chrono::steady_clock;
class Worker;

class Session : public std::enable_shared_from_this<Session> {
public:
  Session(Worker& worker, std::uint64_t number);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start();
  // Closes the connection without counting a failure (end of run). count_aborted: an unfinished churn
  // attempt is counted in Stats::aborted.
  void abort(bool count_aborted);
  // Called periodically by the worker: enforces the per-phase deadline and sends PINGs.
  void sweep(Clock::time_point now);

  // Worker's intrusive list of live sessions.
  Session* prev = nullptr;
  Session* next = nullptr;

private:
  enum class Phase { idle, connecting, handshaking, running, closing, done };

  void on_connect(const asio::error_code& ec);
  void on_handshake(const asio::error_code& ec);
  void on_ready();
  void read();
  void on_read(const asio::error_code& ec, std::size_t n);
  void on_line(std::string_view payload);
  void on_frame(const net::codec::frame& f);
  void on_echo(std::string_view payload);
  void send_message();
  void flush();
  void on_write(const asio::error_code& ec);
  void violation(Violation v);
  void fail(Reason r);
  void complete(); // churn: the echo arrived
  // Leaves the attempt/open accounting once and closes the socket.
  void finish();
  void close_socket();
  bool tls() const { return tls_ != nullptr; }
  asio::ip::tcp::socket& socket() { return tls_ ? tls_->next_layer() : sock_; }

  Worker& w_;
  std::uint64_t number_; // launch number: the n of --device-id-prefix
  Phase phase_ = Phase::idle;
  bool in_attempt_ = false; // counted in Stats::inflight
  bool is_open_ = false;    // counted in Stats::open
  bool writing_ = false;
  bool linked_ = false;

  asio::ip::tcp::socket sock_;
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket>> tls_;

  Clock::time_point t0_; // connect start
  Clock::time_point deadline_ = Clock::time_point::max();
  Clock::time_point next_ping_ = Clock::time_point::max();

  std::vector<char> rbuf_;
  std::string out_;         // queued bytes
  std::string writing_buf_; // bytes being written
  net::codec::line_decoder line_dec_;
  net::codec::frame_decoder frame_dec_;
  net::codec::ack_checker acks_;
  bool broken_ = false; // a violation was seen while decoding the current chunk

  std::uint64_t next_seq_ = 1;   // next message (DATA id) to send
  std::uint64_t echoes_ = 0;     // echoes received
  std::uint64_t last_push_ = 0;  // highest PUSH id received
  std::uint64_t push_acked_ = 0; // highest PUSH id acknowledged
  std::uint64_t ping_id_ = 0;    // outstanding PING id (0 = none)
  std::uint64_t pings_sent_ = 0;
  // Send times of the messages in flight (ring of --window entries).
  std::vector<Clock::time_point> sent_at_;
  std::size_t ring_head_ = 0, ring_count_ = 0;
};

} // namespace warren::loadgen
