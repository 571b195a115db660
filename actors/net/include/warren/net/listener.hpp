// A supervised listener (Ranch's listener): listen sockets, acceptors, connection
// supervisors and one endpoint actor per connection, all in the Warren tree:
//
//   <id>          supervisor, rest_for_one
//   ├─ ctl        worker: owns the listen sockets, answers the control API
//   ├─ conns_0..  supervisor, simple_one_for_one of temporary endpoints
//   └─ acceptors  supervisor, one_for_one: acceptor_0.. (acceptor_i feeds conns_i)
//
// Control: blocking functions in warren::net::listener (ordinary threads only), or
// the messages below sent to the ctl actor (registered as listener_name(id)).
#pragma once

#include <warren/child_spec.hpp>
#include <warren/net/io_pool.hpp>
#include <warren/net/protocol.hpp>
#include <warren/net/tls.hpp>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/expected.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace warren::net {

enum class overflow_policy : uint8_t {
  close,        ///< close with reason overflow when the queue passes high_watermark
  pause_reading ///< stop reading from the peer until the queue drains to low_watermark
};

struct listener_options {
  uint16_t port = 0; ///< 0: ephemeral; see listener::port()
  std::string bind_address = "0.0.0.0";
  std::optional<tls_options> tls;      ///< none: plain TCP
  codec_kind codec = codec_kind::line; ///< see protocol.hpp
  std::size_t max_frame = 65536;       ///< payload bytes (line: bytes before LF)
  /// codec frame: at most one ACK per connection per interval while acks are pending
  /// (the first one after a quiet interval goes at once). Later ones ride along with
  /// the next write past the interval, or a fallback timer sends them at most 1.5
  /// intervals after the previous ACK. 0: one ACK per ack() call.
  caf::timespan ack_interval = std::chrono::milliseconds(5);
  /// codec frame: acknowledge every DATA frame as soon as on_frames returns (echo);
  /// false: the protocol calls connection_context::ack() once the backend accepted.
  bool auto_ack = true;
  std::size_t num_acceptors = 0; ///< 0: one per io thread (and at least one per listen socket)
  /// 0: one, shared by every acceptor (as Ranch): a single kernel accept queue, so a
  /// connection never waits behind one acceptor while another has room. n > 1:
  /// SO_REUSEPORT sockets, each with its own queue, which the kernel fills unevenly
  /// (a hash of the peer's address and port); at most num_acceptors.
  std::size_t num_listen_sockets = 0;
  /// Connections of the whole listener at once. Past it a new connection is accepted
  /// and closed at once (RST), counted in `refused` and logged (at most one warning
  /// per log_interval): the device sees a refusal, not a hang. 0: connection_budget()
  /// when the listener starts (from the open-file limit).
  std::size_t max_connections = 0;
  /// TLS: handshakes in progress at once (stampede admission). A slot is taken before
  /// each accept; at the bound the acceptors stop accepting, so a stampede's excess waits
  /// in the kernel's accept queue (see backlog), where its time does not count against
  /// handshake_timeout, and every admitted handshake gets the CPU to finish quickly. A
  /// connection whose ClientHello has not fully arrived gives its slot back until it has
  /// (the record is peeked, not read): clients trickling a ClientHello hold none. 0: 128
  /// per io thread. Devices far away hold a slot for about one round trip: handshakes/s
  /// stay below max_handshakes / RTT.
  std::size_t max_handshakes = 0;
  /// From accept to the whole ClientHello (TLS; within handshake_timeout): a slow-hello
  /// (slowloris) client is closed then, counted in handshake_timeout and hello_timeouts.
  caf::timespan hello_timeout = std::chrono::seconds(3);
  /// From accept to the end of the TLS handshake.
  caf::timespan handshake_timeout = std::chrono::seconds(5);
  /// Rate of the listener's warnings (refusals, accept errors), at most one per interval,
  /// and the period of its info summary of handshake timeouts and overflow closes (a
  /// line only for an interval that had any).
  caf::timespan log_interval = std::chrono::seconds(10);
  caf::timespan idle_timeout = std::chrono::minutes(5); ///< 0: none
  /// With auto_ack off: how long a connection whose peer ended its input (EOF,
  /// half-close, TLS without close_notify, a frame error) stays up for the ACKs and
  /// replies of what it received before that (until the protocol acked frames_in()).
  /// Then it closes gracefully. 0: closes at once.
  caf::timespan close_timeout = std::chrono::seconds(5);
  std::size_t high_watermark = 1 << 20; ///< outbound queue, bytes
  std::size_t low_watermark = 1 << 18;
  overflow_policy on_overflow = overflow_policy::close;
  std::size_t read_buffer = 16384; ///< bytes per read
  /// The accept queue of each listen socket, where a stampede waits for handshake slots.
  /// The kernel caps it at net.core.somaxconn (4096 by default): raise that above the
  /// largest reconnect wave (docs/operations.md). Past it new connections wait for SYN
  /// retransmits (1 s, 3 s, 7 s, ...).
  int backlog = 65535;
  /// TCP_NODELAY on every connection (Ranch's default too): a small reply or ACK goes
  /// out at once instead of waiting for the peer's delayed ACK (up to 40 ms on Linux).
  bool no_delay = true;
};

/// Counters of one listener since it started (the ctl child's start).
struct listener_counters {
  uint64_t accepted = 0;
  uint64_t active = 0; ///< endpoint actors alive (handshaking or connected)
  uint64_t closed = 0;
  uint64_t handshake_timeout = 0;
  uint64_t hello_timeouts = 0; ///< of handshake_timeout: the ClientHello was not whole yet
  uint64_t handshake_tls_error = 0;
  uint64_t handshake_peer_closed = 0;
  uint64_t frames_in = 0;
  uint64_t frames_out = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t overflow_closes = 0;
  uint64_t frame_errors = 0; ///< connections closed because a frame was invalid
  uint64_t idle_closes = 0;
  uint64_t accept_errors = 0;
  uint64_t close_timeouts = 0; ///< closes after close_timeout with messages still unacknowledged
  uint64_t refused = 0;        ///< connections closed at once: max_connections reached
  // Handshake failures by reason; handshake_tls_error is the sum of these six.
  uint64_t handshake_not_tls = 0;             ///< garbage or plain HTTP instead of a ClientHello
  uint64_t handshake_unsupported_version = 0; ///< no common TLS version
  uint64_t handshake_no_shared_cipher = 0;
  uint64_t handshake_client_cert_required = 0; ///< mTLS: the client sent no certificate
  uint64_t handshake_bad_client_cert = 0;      ///< mTLS: its certificate did not verify
  uint64_t handshake_other = 0;                ///< any other TLS error
  // codec frame
  uint64_t acks_out = 0;     ///< ACK frames sent
  uint64_t pushes_acked = 0; ///< PUSH frames acknowledged by PUSH_ACKs
  uint64_t pings_in = 0;     ///< PINGs answered with a PONG
  uint64_t handshake_failures() const {
    return handshake_timeout + handshake_tls_error + handshake_peer_closed;
  }
};

/// How a connection ends: normal when the peer closes; `{shutdown, reason}` (a normal
/// exit: no crash report per misbehaving device) for peer-caused ends:
/// "handshake_failed: R" (R: peer_closed, not_tls, unsupported_version, no_shared_cipher,
/// client_cert_required, bad_client_cert, other), handshake_timeout, idle_timeout,
/// overflow, connection_reset and the codec errors (frame_too_large,
/// unknown_frame_type, bad_fixed_length, id_not_consecutive, unexpected_frame_type,
/// push_ack_beyond_sent);
/// `net_errc::socket_error` (abnormal) for any other socket error.
constexpr caf::atom_value net_error_category = caf::atom("net");
enum class net_errc : uint8_t { socket_error = 1, bind_failed };
caf::error make_error(net_errc x, std::string text);

/// The open-file soft limit (RLIMIT_NOFILE) less a reserve for everything else of
/// the process (1/16 of it, at least 64): the default max_connections. One fd per
/// connection; the gateway raises the soft limit to the hard limit at start.
std::size_t connection_budget();

/// The child spec of a whole listener (a supervisor child). Binds when it starts;
/// a bind failure fails the start.
child_spec listener_child(std::string id, io_pool& pool, listener_options opts, protocol_factory factory);

/// Registered name of a listener's ctl actor.
std::string listener_name(const std::string& id);

// -- message interface (to the ctl actor) -----------------------------------------
using port_atom = caf::atom_constant<caf::atom("netport")>;      // () -> uint16_t
using counters_atom = caf::atom_constant<caf::atom("netcount")>; // () -> listener_counters
using suspend_atom = caf::atom_constant<caf::atom("netsusp")>;   // () -> ok
using resume_atom = caf::atom_constant<caf::atom("netresume")>;  // () -> ok
using drain_atom = caf::atom_constant<caf::atom("netdrain")>;    // (timespan) -> uint64_t closed by force
using max_conns_atom = caf::atom_constant<caf::atom("netmaxc")>; // (uint64_t n >= 1) -> ok

namespace listener {
// Blocking API for ordinary threads; `id` is the listener's child id.
caf::expected<uint16_t> port(caf::actor_system& sys, const std::string& id);
caf::expected<listener_counters> counters(caf::actor_system& sys, const std::string& id);
/// Stops accepting and closes the listen sockets (Ranch's suspend): new connections
/// are refused, or go to another process listening on the same port. Connections
/// already accepted stay.
caf::error suspend(caf::actor_system& sys, const std::string& id);
/// Opens the listen sockets again, on the same port, and accepts.
caf::error resume(caf::actor_system& sys, const std::string& id);
/// Stops accepting, waits up to `deadline` for connections to end, then closes the
/// rest (returns how many). The listener stays suspended. Answered as soon as the last
/// connection ends (no polling); concurrent drains are all answered; an error if the
/// listener stops meanwhile.
caf::expected<uint64_t> drain(caf::actor_system& sys, const std::string& id, caf::timespan deadline);
/// Changes max_connections (of the listener, n >= 1) until the listener restarts.
/// Lowering it closes nothing: new connections are refused until enough have ended.
caf::error set_max_connections(caf::actor_system& sys, const std::string& id, std::size_t n);
} // namespace listener

} // namespace warren::net

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(warren::net::listener_counters)
