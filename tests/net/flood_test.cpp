// Backpressure with real sockets: a client that writes as fast as it can against a
// protocol that stops (active-once reads: the client's writes block, the server holds
// one read buffer), and a peer that never reads while the protocol echoes (overflow
// policy close, and pause_reading that resumes when the peer reads), and a protocol
// that holds reading itself (connection_context::pause_reading / resume_reading), and a codec
// frame device that PINGs and never reads (its PONGs count against the watermark).
#include "net_support.hpp"
#include "raw_socket.hpp"

#include <warren/net/codec/frame.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>

using namespace net_test;

namespace {

constexpr std::size_t line_len = 100;               // with the LF
constexpr std::size_t cap = std::size_t{512} << 20; // a client never writes more than this

/// Line `i`: its number in 8 digits, padding, LF.
std::string make_line(uint64_t i) {
  char num[32];
  std::snprintf(num, sizeof num, "%08llu", static_cast<unsigned long long>(i));
  std::string s{num};
  s += ' ';
  s.append(line_len - s.size() - 1, 'y');
  s += '\n';
  return s;
}

/// The number of a line (without LF), or -1.
int64_t line_number(std::string_view line) {
  if (line.size() != line_len - 1)
    return -1;
  int64_t n = 0;
  for (std::size_t i = 0; i < 8; ++i) {
    if (line[i] < '0' || line[i] > '9')
      return -1;
    n = n * 10 + (line[i] - '0');
  }
  return n;
}

/// Numbered lines written by a client, in order, through non-blocking writes.
struct line_writer {
  uint64_t next = 0; ///< first line not yet taken into `out`
  std::string out;
  std::size_t off = 0;
  std::size_t written = 0; ///< bytes

  /// Lines completely written so far.
  uint64_t complete() const { return written / line_len; }

  /// Writes until the socket stays unwritable for `stall` (true), or `limit` lines
  /// were written, or an error (false).
  bool write_until_stalled(raw_socket& s, uint64_t limit, std::chrono::milliseconds stall) {
    for (;;) {
      if (off == out.size()) {
        if (next >= limit || written >= cap)
          return false;
        out.clear();
        off = 0;
        for (int i = 0; i < 256 && next < limit; ++i)
          out += make_line(next++);
      }
      auto n = s.try_write(std::string_view{out}.substr(off));
      if (n < 0)
        return false;
      if (n == 0) {
        if (!s.wait_writable(stall))
          return true;
        continue;
      }
      off += static_cast<std::size_t>(n);
      written += static_cast<std::size_t>(n);
    }
  }
};

/// A protocol that blocks in on_frames until the test opens the gate, then checks
/// that the lines come in order.
struct gate {
  std::mutex m;
  std::condition_variable cv;
  bool open = false;
  std::atomic<bool> entered{false};
  std::atomic<uint64_t> next{0}; ///< the next line number expected
  std::atomic<bool> out_of_order{false};
  std::atomic<std::size_t> max_batch{0};

  void release() {
    {
      std::lock_guard<std::mutex> g{m};
      open = true;
    }
    cv.notify_all();
  }
};

class gated_protocol : public net::protocol {
public:
  explicit gated_protocol(std::shared_ptr<gate> g) : g_(std::move(g)) {}
  void on_frames(net::connection_context&, std::span<const std::string_view> frames) override {
    {
      std::unique_lock<std::mutex> l{g_->m};
      if (!g_->open) {
        g_->entered = true;
        // The safety timeout only keeps a failing test from hanging the worker.
        g_->cv.wait_for(l, std::chrono::seconds(60), [this] { return g_->open; });
      }
    }
    if (frames.size() > g_->max_batch)
      g_->max_batch = frames.size();
    for (auto f : frames) {
      auto n = line_number(f);
      if (n != static_cast<int64_t>(g_->next.load()))
        g_->out_of_order = true;
      g_->next = g_->next + 1;
    }
  }

private:
  std::shared_ptr<gate> g_;
};

/// What hold_protocol saw (shared with the test thread).
struct hold_state {
  std::atomic<bool> held{false};
  std::atomic<uint64_t> frames_at_pause{0}; ///< ctx.frames_in() when it paused
  std::atomic<uint64_t> next{0};            ///< the next line number expected
  std::atomic<bool> out_of_order{false};
};

/// Registers its endpoint as "held" and holds reading from its first batch on
/// (ctx.pause_reading() in on_frames); the string "resume" sent to the endpoint
/// resumes it. Checks that the lines come in order.
class hold_protocol : public net::protocol {
public:
  explicit hold_protocol(std::shared_ptr<hold_state> st) : st_(std::move(st)) {}
  void on_connect(net::connection_context& ctx) override {
    auto self = ctx.self();
    warren::register_name(self->home_system(), "held", self);
  }
  void on_frames(net::connection_context& ctx, std::span<const std::string_view> frames) override {
    for (auto f : frames) {
      if (line_number(f) != static_cast<int64_t>(st_->next.load()))
        st_->out_of_order = true;
      st_->next = st_->next + 1;
    }
    if (!paused_once_) {
      paused_once_ = true;
      ctx.pause_reading();
      st_->frames_at_pause = ctx.frames_in();
      st_->held = true;
    }
  }
  bool on_message(net::connection_context& ctx, caf::message& msg) override {
    if (!msg.match_elements<std::string>() || msg.get_as<std::string>(0) != "resume")
      return false;
    ctx.resume_reading();
    return true;
  }

private:
  std::shared_ptr<hold_state> st_;
  bool paused_once_ = false;
};

/// Polls `pred` until it holds; the deadline is a safety net only.
template <class P>
bool wait_for(P pred, std::chrono::milliseconds deadline = 60s) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until)
      return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

} // namespace

TEST_CASE(
    "a flooding client against a stalled protocol: its writes block, nothing piles up, nothing is lost") {
  auto g = std::make_shared<gate>();
  net::listener_options opts;
  fixture f{opts, [g] { return std::make_unique<gated_protocol>(g); }};
  raw_socket s;
  REQUIRE(s.connect(f.port));
  line_writer w;
  // The protocol blocks in its first batch; the client writes until the kernel
  // buffers are full and its writes stay blocked (EAGAIN).
  REQUIRE(w.write_until_stalled(s, UINT64_MAX, 500ms));
  REQUIRE(wait_for([&] { return g->entered.load(); }));
  auto k = f.counters();
  MESSAGE("client wrote " << w.written << " bytes before blocking; the server read " << k.bytes_in);
  // Active-once: one read completed, no other read was started while the protocol
  // held the batch: the server holds one read buffer, whatever the client wrote.
  CHECK(k.bytes_in > 0);
  CHECK(k.bytes_in <= opts.read_buffer);
  CHECK(w.written > 64 * opts.read_buffer); // the kernel buffers took the rest

  // Release: reading resumes; the client writes 20000 more lines (blocking when the
  // protocol is behind) and every line arrives, in order.
  g->release();
  uint64_t total = w.next + 20000;
  CHECK_FALSE(w.write_until_stalled(s, total, 10s)); // false: all written, no error
  REQUIRE(w.complete() == total);
  CHECK(wait_for([&] { return g->next.load() == total; }));
  CHECK(g->next.load() == total);
  CHECK_FALSE(g->out_of_order.load());
  // One batch is at most one read buffer of lines.
  CHECK(g->max_batch.load() <= opts.read_buffer / line_len + 1);
  k = f.counters();
  CHECK(k.bytes_in == total * line_len);
  CHECK(k.frames_in == total);
  CHECK(k.active == 1);
}

TEST_CASE("a peer that never reads: overflow policy close ends the connection, counted once") {
  net::listener_options opts;
  opts.high_watermark = 256 * 1024;
  opts.low_watermark = 64 * 1024;
  opts.on_overflow = net::overflow_policy::close;
  fixture f{opts, net::echo_factory()};
  raw_socket s;
  REQUIRE(s.connect(f.port));
  line_writer w;
  // The server reads on and queues the echoes the peer does not take: once the
  // socket buffers are full, the queue passes the high watermark and the server closes.
  bool overflowed = false;
  while (!overflowed && w.written < cap) {
    bool stalled = w.write_until_stalled(s, UINT64_MAX, 200ms);
    overflowed = f.counters().overflow_closes > 0;
    if (!stalled && !overflowed)
      break; // a write error: the server closed
  }
  CHECK(f.eventually([](const auto& x) { return x.overflow_closes == 1 && x.active == 0; }, 30s));
  CHECK(s.wait_closed(30s));
  auto k = f.counters();
  CHECK(k.overflow_closes == 1);
  CHECK(k.closed == 1);
}

TEST_CASE("a peer that never reads: pause_reading stops reading, and resumes when the peer reads") {
  net::listener_options opts;
  opts.high_watermark = 256 * 1024;
  opts.low_watermark = 64 * 1024;
  opts.on_overflow = net::overflow_policy::pause_reading;
  fixture f{opts, net::echo_factory()};
  raw_socket s;
  REQUIRE(s.connect(f.port));
  line_writer w;
  // Write without reading until the client blocks: the server paused reading.
  REQUIRE(w.write_until_stalled(s, UINT64_MAX, 500ms));
  auto k = f.counters();
  MESSAGE("client wrote " << w.written << " bytes before blocking; server in " << k.bytes_in << ", out "
                          << k.bytes_out);
  // What the server read but could not write is its queue: bounded by the watermark
  // (plus the batch that crossed it), not by what the client wrote.
  CHECK(k.bytes_in < w.written);
  CHECK(k.bytes_in - k.bytes_out <= opts.high_watermark + 2 * opts.read_buffer);
  CHECK(k.overflow_closes == 0);
  CHECK(k.active == 1);

  // The peer reads now: every echo comes back in order, and the server reads again
  // (the rest of what the client wrote, then 2000 more lines).
  uint64_t total = w.next + 2000;
  uint64_t got = 0;
  bool in_order = true;
  auto until = std::chrono::steady_clock::now() + 60s;
  while (got < total && std::chrono::steady_clock::now() < until && !s.closed()) {
    if (w.off != w.out.size() || w.next < total)
      w.write_until_stalled(s, total, 1ms);
    s.read_some(10ms);
    while (auto line = s.take_line()) {
      if (line_number(*line) != static_cast<int64_t>(got))
        in_order = false;
      ++got;
    }
  }
  CHECK(got == total);
  CHECK(in_order);
  k = f.counters();
  CHECK(k.overflow_closes == 0);
  CHECK(k.bytes_in == total * line_len);
  CHECK(k.active == 1);
}

TEST_CASE("pause_reading from on_frames: the client's writes block, resume_reading reads on, in order") {
  auto st = std::make_shared<hold_state>();
  net::listener_options opts;
  opts.idle_timeout = 100ms; // a held connection is not idle: the silence is ours
  fixture f{opts, [st] { return std::make_unique<hold_protocol>(st); }};
  raw_socket s;
  REQUIRE(s.connect(f.port));
  line_writer w;
  // The protocol holds reading after its first batch: the client writes until the
  // kernel buffers are full and its writes stay blocked. (A limit, far above those
  // buffers, keeps a broken hold from writing forever.)
  REQUIRE(w.write_until_stalled(s, 1'000'000, 500ms));
  REQUIRE(wait_for([&] { return st->held.load(); }));
  auto k = f.counters();
  auto at_pause = st->frames_at_pause.load();
  MESSAGE("client wrote " << w.written << " bytes before blocking; the server read " << k.bytes_in << " ("
                          << at_pause << " lines) and held");
  // Nothing was read after the pause (no read was in flight during on_frames): what
  // came in is the lines delivered plus at most part of the next one.
  CHECK(k.frames_in == at_pause);
  CHECK(k.bytes_in < (at_pause + 1) * line_len);
  CHECK(k.bytes_in <= 2 * opts.read_buffer);
  CHECK(k.bytes_in < w.written);
  CHECK(k.idle_closes == 0);
  CHECK(k.active == 1);

  // Resume: everything the client wrote, then 20000 more lines, arrives in order.
  auto ep = warren::whereis(*f.sys, "held");
  REQUIRE(ep);
  caf::anon_send(ep, std::string{"resume"});
  uint64_t total = w.next + 20000;
  CHECK_FALSE(w.write_until_stalled(s, total, 10s)); // false: all written, no error
  REQUIRE(w.complete() == total);
  CHECK(wait_for([&] { return st->next.load() == total; }));
  CHECK(st->next.load() == total);
  CHECK_FALSE(st->out_of_order.load());
  k = f.counters();
  CHECK(k.bytes_in == total * line_len);
  CHECK(k.frames_in == total);
}

namespace {

/// Holds reading from on_connect on: the endpoint's first read, started with the
/// connection (before on_connect), must keep its batch until "resume".
class hold_at_connect : public net::protocol {
public:
  explicit hold_at_connect(std::shared_ptr<hold_state> st) : st_(std::move(st)) {}
  void on_connect(net::connection_context& ctx) override {
    ctx.pause_reading();
    auto self = ctx.self();
    warren::register_name(self->home_system(), "held_at_connect", self);
    st_->held = true;
  }
  void on_frames(net::connection_context& ctx, std::span<const std::string_view> frames) override {
    if (!resumed_)
      st_->out_of_order = true; // a batch while held
    for (auto f : frames) {
      if (line_number(f) != static_cast<int64_t>(st_->next.load()))
        st_->out_of_order = true;
      st_->next = st_->next + 1;
      ctx.send(f);
    }
  }
  bool on_message(net::connection_context& ctx, caf::message& msg) override {
    if (!msg.match_elements<std::string>() || msg.get_as<std::string>(0) != "resume")
      return false;
    resumed_ = true;
    ctx.resume_reading();
    return true;
  }

private:
  std::shared_ptr<hold_state> st_;
  bool resumed_ = false;
};

} // namespace

TEST_CASE("pause_reading from on_connect: the batch read with the connection waits for resume_reading") {
  for (bool tls : {false, true}) {
    CAPTURE(tls);
    auto st = std::make_shared<hold_state>();
    net::listener_options opts;
    if (tls)
      opts.tls = server_tls();
    fixture f{opts, [st] { return std::make_unique<hold_at_connect>(st); }};
    client c{f.port, tls ? client_tls() : nullptr};
    if (tls)
      REQUIRE(c.handshake());
    REQUIRE(wait_for([&] { return st->held.load(); }));
    std::string lines;
    for (uint64_t i = 0; i < 10; ++i)
      lines += make_line(i);
    c.send(lines);
    // The endpoint's first read takes the lines in while the protocol holds reading.
    REQUIRE(wait_for([&] { return f.counters().bytes_in == lines.size(); }));
    CHECK(f.counters().frames_in == 0);
    CHECK(st->next.load() == 0);
    auto ep = warren::whereis(*f.sys, "held_at_connect");
    REQUIRE(ep);
    caf::anon_send(ep, std::string{"resume"});
    for (uint64_t i = 0; i < 10; ++i)
      CHECK(c.read_line() == make_line(i).substr(0, line_len - 1));
    CHECK(st->next.load() == 10);
    CHECK_FALSE(st->out_of_order.load());
  }
}

namespace {

/// codec frame PINGs written by a client that never reads, through non-blocking
/// writes: the endpoint answers each with a PONG, which piles up on the server.
struct ping_writer {
  static constexpr std::size_t limit = std::size_t{64} << 20; // far above the socket buffers
  std::string block;
  std::size_t off = 0;
  std::size_t written = 0;
  uint64_t next_id = 1;

  /// Writes until the socket stays unwritable for `stall` (true), or `limit` bytes,
  /// or an error (false).
  bool write_until_stalled(raw_socket& s, std::chrono::milliseconds stall) {
    for (;;) {
      if (off == block.size()) {
        if (written >= limit)
          return false;
        block.clear();
        off = 0;
        for (int i = 0; i < 1024; ++i)
          warren::net::codec::encode_ping(block, next_id++);
      }
      auto n = s.try_write(std::string_view{block}.substr(off));
      if (n < 0)
        return false;
      if (n == 0) {
        if (!s.wait_writable(stall))
          return true;
        continue;
      }
      off += static_cast<std::size_t>(n);
      written += static_cast<std::size_t>(n);
    }
  }
};

net::listener_options ping_opts(net::overflow_policy policy) {
  net::listener_options opts;
  opts.codec = net::codec_kind::frame;
  opts.high_watermark = 256 * 1024;
  opts.low_watermark = 64 * 1024;
  opts.on_overflow = policy;
  return opts;
}

} // namespace

TEST_CASE("a device that PINGs and never reads: its PONGs count against the watermark (close)") {
  auto opts = ping_opts(net::overflow_policy::close);
  fixture f{opts, net::echo_factory()};
  raw_socket s;
  REQUIRE(s.connect(f.port));
  ping_writer w;
  // Once the socket buffers are full, the PONGs queue on the server; past the high
  // watermark the connection is closed as for any other output.
  while (w.write_until_stalled(s, 200ms) && f.counters().overflow_closes == 0) {
  }
  MESSAGE("client wrote " << w.written << " bytes of PINGs");
  CHECK(w.written < ping_writer::limit);
  CHECK(f.eventually([](const auto& x) { return x.overflow_closes == 1 && x.active == 0; }, 30s));
  CHECK(s.wait_closed(30s));
  CHECK(f.counters().pings_in > 0);
}

TEST_CASE("a device that PINGs and never reads: pause_reading stops reading it, the queue stays bounded") {
  auto opts = ping_opts(net::overflow_policy::pause_reading);
  fixture f{opts, net::echo_factory()};
  raw_socket s;
  REQUIRE(s.connect(f.port));
  ping_writer w;
  REQUIRE(w.write_until_stalled(s, 500ms)); // true: the server stopped reading
  auto k = f.counters();
  MESSAGE("client wrote " << w.written << " bytes before blocking; server in " << k.bytes_in << ", out "
                          << k.bytes_out);
  CHECK(k.bytes_in < w.written);
  // PONGs are as long as PINGs: what was read and not written is the queue.
  CHECK(k.bytes_in - k.bytes_out <= opts.high_watermark + 2 * opts.read_buffer);
  CHECK(k.overflow_closes == 0);
  CHECK(k.active == 1);
}
