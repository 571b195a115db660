#include <warren/net/endpoint.hpp>

#include "client_hello.hpp"
#include "listener_state.hpp"

#include <warren/exit.hpp>
#include <warren/log.hpp>
#include <warren/net/codec/frame.hpp>
#include <warren/net/codec/line.hpp>

#include <asio/post.hpp>
#include <asio/ssl/context.hpp>
#include <asio/steady_timer.hpp>
#include <caf/all.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <limits>
#include <list>
#include <optional>
#include <string_view>
#include <system_error>
#include <vector>

namespace warren::net::detail {

namespace {

using hs_ok_atom = caf::atom_constant<caf::atom("nhsok")>;
using hs_fail_atom = caf::atom_constant<caf::atom("nhsfail")>;
using hs_timeout_atom = caf::atom_constant<caf::atom("nhstmo")>; // (bool hello: hello_timeout)
using data_atom = caf::atom_constant<caf::atom("ndata")>;
using eof_atom = caf::atom_constant<caf::atom("neof")>;
using sock_err_atom = caf::atom_constant<caf::atom("nsockerr")>;
using wrote_atom = caf::atom_constant<caf::atom("nwrote")>;
using idle_atom = caf::atom_constant<caf::atom("nidle")>;
using timer_atom = caf::atom_constant<caf::atom("ntimer")>;
using ack_timer_atom = caf::atom_constant<caf::atom("nacktmr")>;
using linger_atom = caf::atom_constant<caf::atom("nlinger")>;

/// Why a TLS handshake failed: a counter each, and the text after "handshake_failed: ".
enum class hs_failure : int {
  peer_closed,
  not_tls,
  unsupported_version,
  no_shared_cipher,
  client_cert_required,
  bad_client_cert,
  other,
};

std::string_view to_string(hs_failure x) {
  switch (x) {
    case hs_failure::peer_closed:
      return "peer_closed";
    case hs_failure::not_tls:
      return "not_tls";
    case hs_failure::unsupported_version:
      return "unsupported_version";
    case hs_failure::no_shared_cipher:
      return "no_shared_cipher";
    case hs_failure::client_cert_required:
      return "client_cert_required";
    case hs_failure::bad_client_cert:
      return "bad_client_cert";
    case hs_failure::other:
      break;
  }
  return "other";
}

/// A reset or broken pipe is the peer going away (power loss, NAT timeout, a client
/// that closes with linger 0): routine for devices, so not a crash report each.
bool peer_gone(const asio::error_code& ec) {
  return ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::connection_aborted;
}

/// Classifies a failed server handshake by the OpenSSL error: `code` is the first
/// error of the thread's queue (ERR_get_error()), 0 if there was none.
hs_failure classify_handshake_error(unsigned long code) {
  if (code == 0 || ERR_GET_LIB(code) != ERR_LIB_SSL)
    return hs_failure::other;
  switch (ERR_GET_REASON(code)) {
    case SSL_R_HTTP_REQUEST:         // "GET ", "POST ", ...: plain HTTP
    case SSL_R_HTTPS_PROXY_REQUEST:  // "CONNECT "
    case SSL_R_WRONG_VERSION_NUMBER: // record header of something else
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_UNKNOWN_PROTOCOL:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_BAD_RECORD_TYPE:
      return hs_failure::not_tls;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
      return hs_failure::unsupported_version;
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SHARED_GROUPS:
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
      return hs_failure::no_shared_cipher;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      return hs_failure::client_cert_required;
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
      return hs_failure::bad_client_cert;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
      return hs_failure::peer_closed;
    default:
      return hs_failure::other;
  }
}

bool peer_gone_errno(int sys) {
  return sys == ECONNRESET || sys == EPIPE || sys == ECONNABORTED;
}

/// The errno of an SSL_ERROR_SYSCALL: `sys` as read after the call, else the one
/// OpenSSL may have queued as an ERR_LIB_SYS error.
int syscall_errno(int sys, unsigned long code) {
  if (sys == 0 && code != 0 && ERR_GET_LIB(code) == ERR_LIB_SYS)
    return ERR_GET_REASON(code);
  return sys;
}

std::string ssl_error_text(unsigned long code) {
  if (const char* r = ERR_reason_error_string(code))
    return r;
  char buf[256];
  ERR_error_string_n(code, buf, sizeof buf);
  return buf;
}

std::string errno_text(int sys) {
  return std::error_code(sys, std::system_category()).message();
}

/// What one non-blocking read or write attempt on the connection ended with.
enum class io_status : uint8_t {
  ok,         // bytes moved
  want_read,  // retry once the socket is readable
  want_write, // retry once the socket is writable
  eof,        // the peer is done sending (close_notify, FIN, or TLS truncation)
  error,      // see io_error
};

struct io_error {
  bool gone = false; // reset or broken pipe: the peer went away
  std::string what;
};

/// Scratch space for reads, one per io loop thread: a connection holds no read
/// buffer of its own between reads (idle connections are most of a gateway's), the
/// bytes read are copied out into a string of their size.
char* read_scratch(std::size_t size) {
  thread_local std::vector<char> buf;
  if (buf.size() < size)
    buf.resize(size);
  return buf.data();
}

/// The socket side of a connection. Lives on the socket's loop: every member is
/// touched only by handlers posted there. The actor talks to it by posting, and it
/// answers with messages to the actor (a weak reference: no cycle, and nothing is
/// delivered once the actor is gone).
///
/// TLS is OpenSSL directly on the non-blocking fd (SSL_set_fd), driven by Asio
/// readiness waits: every operation is tried at once and waits for readiness only
/// when OpenSSL asks for it (WANT_READ / WANT_WRITE, either one from either
/// direction: a read may have to write a KeyUpdate answer). No BIO pair, no copy of
/// the ciphertext, and OpenSSL's own buffers are released while idle
/// (SSL_MODE_RELEASE_BUFFERS).
struct conn_io : std::enable_shared_from_this<conn_io> {
  asio::ip::tcp::socket sock;
  SSL* ssl = nullptr;
  bool is_tls = false;
  caf::weak_actor_ptr owner;
  std::string rbuf; // the actor's spare read string, filled from read_scratch()
  std::size_t rsize = 0;
  std::size_t first_read = 0; // TLS: the actor's first read, started right after the handshake
  std::string wbuf;
  std::size_t woff = 0; // bytes of wbuf written
  // codec frame, the ACK fallback timer (see endpoint_actor::schedule_ack). Set by the
  // actor, read by the loop when the timer fires: a pending ACK that went out with a
  // later write meanwhile costs the timer nothing but its own wake-up.
  std::atomic<bool> ack_wanted{false};
  std::atomic<bool> ack_timer_armed{false};
  // Writing (see write()): the actor posts its output and counts it in `unwritten`;
  // the loop writes it in order and tells the actor only when it asked to hear
  // (`wake_below`: its queue went under the low watermark), so a reply costs the
  // actor no message back.
  std::string wqueue;                           // posted while a write was in flight
  std::atomic<std::size_t> unwritten{0};        // posted by the actor, not yet written
  std::atomic<std::size_t> wake_below{no_wake}; // tell wrote_atom once unwritten <= this
  std::atomic<uint64_t> writes_done{0};         // activity, for the idle timeout
  std::shared_ptr<void> keep;                   // the listener state, owner of *bytes_out and *admission
  std::atomic<uint64_t>* bytes_out = nullptr;   // the listener's counter
  listener_state* admission = nullptr;          // TLS: whose handshake slot we hold, if `slot`
  bool slot = false;                            // holding a handshake slot (max_handshakes)
  bool awaiting_hello = false;                  // the ClientHello is not whole yet (no slot then)
  static constexpr std::size_t no_wake = static_cast<std::size_t>(-1);

  conn_io(asio::ip::tcp::socket&& s, asio::ssl::context* ctx, bool no_delay)
    : sock(std::move(s)), is_tls(ctx != nullptr) {
    asio::error_code ec;
    if (no_delay)
      sock.set_option(asio::ip::tcp::no_delay(true), ec); // best effort: a failure costs latency only
    sock.non_blocking(true, ec);
    if (!is_tls || ec)
      return;
    ssl = SSL_new(ctx->native_handle());
    if (ssl == nullptr)
      return;
    if (SSL_set_fd(ssl, static_cast<int>(sock.native_handle())) != 1) {
      SSL_free(ssl);
      ssl = nullptr;
      return;
    }
    SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    // A TCP FIN without close_notify (a device that half-closes, or exits) ends the
    // input as close_notify would, instead of failing the session: the replies to
    // what it sent can still be written (end_of_input in the actor).
    SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    SSL_set_accept_state(ssl);
  }

  conn_io(const conn_io&) = delete;
  conn_io& operator=(const conn_io&) = delete;

  ~conn_io() {
    drop_slot();
    if (ssl != nullptr)
      SSL_free(ssl); // no close_notify: the loop went away under us
  }

  template <class... Ts>
  void tell(Ts&&... xs) {
    if (closed)
      return; // the actor has let go of the connection
    if (auto p = owner.lock())
      caf::anon_send(caf::actor_cast<caf::actor>(p), std::forward<Ts>(xs)...);
  }

  std::string peer() {
    asio::error_code ec;
    auto ep = sock.remote_endpoint(ec);
    if (ec)
      return "?";
    return ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  /// Calls `f(ec)` once the socket is ready for `st` (want_read or want_write),
  /// unless the socket was closed meanwhile (then nothing is touched: the SSL is gone).
  template <class F>
  void await(io_status st, F f) {
    auto self = shared_from_this();
    auto w = st == io_status::want_write ? asio::socket_base::wait_write : asio::socket_base::wait_read;
    sock.async_wait(w, [self, f = std::move(f)](const asio::error_code& ec) mutable {
      if (!self->finished)
        f(ec);
    });
  }

  // -- handshake ------------------------------------------------------------------

  /// TLS: runs the handshake, then at once the actor's first read of up to
  /// `read_size` bytes (it asked for it up front: one hop less per connection).
  /// Plain TCP: the first read.
  void start(std::size_t read_size) {
    if (!is_tls) {
      read(std::string{}, read_size);
      return;
    }
    first_read = read_size;
    if (ssl == nullptr) {
      drop_slot();
      tell(hs_fail_atom::value, static_cast<int>(hs_failure::other), std::string{"SSL_new failed"}, peer());
      return;
    }
    await_hello();
  }

  /// Handshake admission: the slot taken at accept is given back while the ClientHello
  /// is still arriving (a slow or trickling client holds none), and taken again once it
  /// is whole; then the handshake runs.
  void await_hello() {
    if (peek_client_hello(static_cast<int>(sock.native_handle())) == hello_progress::partial) {
      drop_slot();
      awaiting_hello = true;
      await(io_status::want_read, [this](const asio::error_code& ec) {
        if (!ec)
          await_hello();
        else if (ec != asio::error::operation_aborted)
          tell(hs_fail_atom::value, static_cast<int>(hs_failure::other), ec.message(), peer());
      });
      return;
    }
    awaiting_hello = false;
    if (!slot && admission != nullptr) {
      admission->count_handshake();
      slot = true;
    }
    handshake();
  }

  /// handshake_timeout, or hello_timeout (`hello_only`: only while the ClientHello is
  /// not whole): tells the actor, and whether the ClientHello was still not whole.
  void handshake_deadline(caf::timespan d, bool hello_only = false) {
    on_timer(d, [hello_only](conn_io& io, const asio::error_code& ec) {
      if (!ec && (io.awaiting_hello || !hello_only))
        io.tell(hs_timeout_atom::value, io.awaiting_hello);
    });
  }

  void drop_slot() {
    if (slot && admission != nullptr)
      admission->end_handshake();
    slot = false;
  }

  void handshake() {
    ERR_clear_error();
    int r = SSL_do_handshake(ssl);
    if (r == 1) {
      drop_slot();
      tell(hs_ok_atom::value, peer(), std::string{SSL_get_version(ssl)}, verified_subject(ssl));
      if (first_read > 0)
        read(std::string{}, std::exchange(first_read, 0));
      return;
    }
    int sys = errno;
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      await(e == SSL_ERROR_WANT_READ ? io_status::want_read : io_status::want_write,
            [this](const asio::error_code& ec) {
              if (!ec)
                handshake();
              else if (ec != asio::error::operation_aborted)
                tell(hs_fail_atom::value, static_cast<int>(hs_failure::other), ec.message(), peer());
            });
      return;
    }
    unsigned long code = ERR_get_error();
    ERR_clear_error();
    if (e == SSL_ERROR_SYSCALL)
      sys = syscall_errno(sys, code);
    hs_failure why = hs_failure::other;
    std::string what;
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && code == 0 && (r == 0 || sys == 0))) {
      why = hs_failure::peer_closed; // EOF in the middle of the handshake
      what = "end of file";
    } else if (e == SSL_ERROR_SYSCALL && peer_gone_errno(sys)) {
      why = hs_failure::peer_closed; // reset
      what = errno_text(sys);
    } else if (code != 0) {
      why = classify_handshake_error(code);
      what = ssl_error_text(code);
    } else if (e == SSL_ERROR_SYSCALL) {
      what = errno_text(sys);
    } else {
      what = "SSL error " + std::to_string(e);
    }
    drop_slot();
    tell(hs_fail_atom::value, static_cast<int>(why), std::move(what), peer());
  }

  // -- one attempt each -------------------------------------------------------------

  /// The end of a read or write attempt that moved nothing (TLS).
  io_status tls_failure(int r, int sys, bool reading_side, io_error& err) {
    int e = SSL_get_error(ssl, r);
    unsigned long code = ERR_get_error();
    ERR_clear_error();
    switch (e) {
      case SSL_ERROR_WANT_READ:
        return io_status::want_read;
      case SSL_ERROR_WANT_WRITE:
        return io_status::want_write;
      case SSL_ERROR_ZERO_RETURN:
        if (reading_side)
          return io_status::eof; // close_notify
        err = {true, "peer closed the TLS session"};
        return io_status::error;
      case SSL_ERROR_SYSCALL:
        sys = syscall_errno(sys, code);
        if (code == 0 && (r == 0 || sys == 0)) {
          if (reading_side)
            return io_status::eof; // EOF without close_notify: truncation, read as EOF
          err = {true, "end of file"};
          return io_status::error;
        }
        if (sys == 0) {
          err = {false, ssl_error_text(code)};
          return io_status::error;
        }
        err = {peer_gone_errno(sys), errno_text(sys)};
        return io_status::error;
      case SSL_ERROR_SSL:
        if (reading_side && ERR_GET_LIB(code) == ERR_LIB_SSL &&
            ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
          return io_status::eof; // truncation (OpenSSL 3 reports it this way)
        err = {false, ssl_error_text(code)};
        return io_status::error;
      default:
        err = {false, "SSL error " + std::to_string(e)};
        return io_status::error;
    }
  }

  /// Reads up to `n` bytes into `p`: the count, or 0 and why not in `st`.
  std::size_t recv_some(char* p, std::size_t n, io_status& st, io_error& err) {
    if (ssl != nullptr) {
      ERR_clear_error();
      errno = 0;
      int r = SSL_read(ssl, p, static_cast<int>(std::min<std::size_t>(n, 1u << 30)));
      if (r > 0) {
        st = io_status::ok;
        return static_cast<std::size_t>(r);
      }
      int sys = errno;
      st = tls_failure(r, sys, true, err);
      return 0;
    }
    asio::error_code ec;
    std::size_t got = sock.read_some(asio::buffer(p, n), ec);
    if (!ec) {
      st = io_status::ok;
      return got;
    }
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      st = io_status::want_read;
    } else if (ec == asio::error::eof) {
      st = io_status::eof;
    } else {
      st = io_status::error;
      err = {peer_gone(ec), ec.message()};
    }
    return 0;
  }

  /// Writes up to `n` bytes from `p`: the count, or 0 and why not in `st`.
  std::size_t send_some(const char* p, std::size_t n, io_status& st, io_error& err) {
    if (ssl != nullptr) {
      ERR_clear_error();
      errno = 0;
      int r = SSL_write(ssl, p, static_cast<int>(std::min<std::size_t>(n, 1u << 30)));
      if (r > 0) {
        st = io_status::ok;
        return static_cast<std::size_t>(r);
      }
      int sys = errno;
      st = tls_failure(r, sys, false, err);
      return 0;
    }
    asio::error_code ec;
    std::size_t put = sock.write_some(asio::buffer(p, n), ec); // send(MSG_NOSIGNAL)
    if (!ec) {
      st = io_status::ok;
      return put;
    }
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      st = io_status::want_write;
    } else {
      st = io_status::error;
      err = {peer_gone(ec), ec.message()};
    }
    return 0;
  }

  // -- reading ------------------------------------------------------------------------

  /// One read for the actor: a batch of up to `size` bytes. Tried at once unless the
  /// last batch ended because the socket was drained; otherwise first waits for
  /// readability, holding no buffer meanwhile.
  void read(std::string buf, std::size_t size) {
    if (closed)
      return;
    rbuf = std::move(buf);
    rsize = std::max<std::size_t>(size, 1);
    reading = true;
    if (end_status != io_status::ok) {
      // The previous batch ran into the end of the stream after its data.
      reading = false;
      if (end_status == io_status::eof)
        tell(eof_atom::value);
      else
        tell(sock_err_atom::value, end_error.gone, end_error.what);
      return;
    }
    if (drained)
      wait_readable(io_status::want_read);
    else
      do_read();
  }

  void do_read() {
    char* p = read_scratch(rsize);
    std::size_t got = 0;
    io_status st = io_status::ok;
    io_error err;
    // One batch: TLS hands out one record per SSL_read, so read on while there is more.
    while (got < rsize) {
      std::size_t n = recv_some(p + got, rsize - got, st, err);
      if (n == 0)
        break;
      got += n;
    }
    drained = st == io_status::want_read;
    if (got > 0) {
      if (st == io_status::eof || st == io_status::error) {
        end_status = st; // told at the next read, after this data was handled
        end_error = std::move(err);
      }
      reading = false;
      rbuf.assign(p, got);
      tell(data_atom::value, std::move(rbuf));
      return;
    }
    switch (st) {
      case io_status::want_read:
      case io_status::want_write:
        wait_readable(st);
        return;
      case io_status::eof:
        reading = false;
        tell(eof_atom::value);
        return;
      case io_status::error:
      case io_status::ok:
        reading = false;
        tell(sock_err_atom::value, err.gone, std::move(err.what));
        return;
    }
  }

  /// Waits until the read can go on (`st`: readable, or writable when TLS must
  /// write first). A large spare buffer is given back meanwhile.
  void wait_readable(io_status st) {
    if (rbuf.capacity() > 256)
      std::string{}.swap(rbuf);
    await(st, [this](const asio::error_code& ec) {
      if (shutting) {
        reading = false;
        step(); // closing: nothing more is read
      } else if (!ec) {
        drained = false;
        do_read();
      } else {
        reading = false;
        if (ec != asio::error::operation_aborted)
          tell(sock_err_atom::value, peer_gone(ec), ec.message());
      }
    });
  }

  // -- writing ------------------------------------------------------------------------

  /// Output from the actor: written at once, or after the write in flight.
  void write(std::string data) {
    if (closed)
      return; // an abortive close dropped it (a graceful one took wqueue along)
    if (writing) {
      wqueue += data;
      return;
    }
    wbuf = std::move(data);
    woff = 0;
    writing = true;
    do_write();
  }

  /// Writes the rest of wbuf, at once as far as the socket takes it.
  void do_write() {
    io_status st = io_status::ok;
    io_error err;
    while (woff < wbuf.size()) {
      std::size_t n = send_some(wbuf.data() + woff, wbuf.size() - woff, st, err);
      if (n == 0)
        break;
      woff += n;
    }
    if (woff == wbuf.size()) {
      write_done();
      return;
    }
    if (st == io_status::want_read || st == io_status::want_write) {
      await(st, [this](const asio::error_code& ec) {
        if (!ec) {
          do_write();
          return;
        }
        writing = false;
        if (shutting)
          finish_close();
        else if (ec != asio::error::operation_aborted)
          tell(sock_err_atom::value, peer_gone(ec), ec.message());
      });
      return;
    }
    writing = false;
    if (shutting)
      finish_close();
    else
      tell(sock_err_atom::value, err.gone, std::move(err.what));
  }

  void write_done() {
    writing = false;
    if (shutting) {
      step();
      return;
    }
    std::size_t n = wbuf.size();
    if (bytes_out != nullptr)
      bytes_out->fetch_add(n, std::memory_order_relaxed);
    writes_done.fetch_add(1, std::memory_order_relaxed);
    std::size_t left = unwritten.fetch_sub(n, std::memory_order_acq_rel) - n;
    if (left <= wake_below.load(std::memory_order_acquire) && wake_below.exchange(no_wake) != no_wake)
      tell(wrote_atom::value);
    if (!wqueue.empty()) {
      wbuf.swap(wqueue);
      wqueue.clear();
      woff = 0;
      writing = true;
      do_write();
      return;
    }
    std::string{}.swap(wbuf); // the next write brings its own (idle connections are most)
    if (wqueue.capacity() > 4096)
      std::string{}.swap(wqueue);
  }

  /// Runs a timer on the loop and tells the actor when it fires. Timers live here,
  /// not in CAF's clock, because CAF's delayed messages hold a strong reference to
  /// the receiver: a closed connection would stay in memory until its idle timer
  /// fired. close() cancels them all, which releases everything at once.
  template <class... Ts>
  void after(caf::timespan delay, Ts... xs) {
    if (closed)
      return;
    on_timer(delay, [xs...](conn_io& io, const asio::error_code& ec) {
      if (!ec)
        io.tell(xs...);
    });
  }

  /// The ACK fallback timer: tells the actor only if an ACK is still wanted then.
  void arm_ack_timer(caf::timespan delay) {
    if (closed) {
      ack_timer_armed.store(false);
      return;
    }
    on_timer(delay, [](conn_io& io, const asio::error_code& ec) {
      io.ack_timer_armed.store(false);
      if (!ec && io.ack_wanted.exchange(false))
        io.tell(ack_timer_atom::value);
    });
  }

  /// One timer in `timers` (cancelled by close()); `f(io, ec)` runs when it ends.
  template <class F>
  void on_timer(caf::timespan delay, F f) {
    auto it = timers.emplace(timers.end(), sock.get_executor());
    it->expires_after(delay);
    it->async_wait([self = shared_from_this(), it, f = std::move(f)](const asio::error_code& ec) {
      self->timers.erase(it);
      f(*self, ec);
    });
  }

  // -- closing ------------------------------------------------------------------------

  /// Abortive close: no close_notify, queued output is lost (kill, errors, timeouts).
  void close() {
    if (closed)
      return;
    closed = true;
    for (auto& t : timers)
      t.cancel();
    finish_close();
  }

  /// Graceful close, on its own once started (the actor has gone or is going): after
  /// the write in flight, writes `rest`, then over TLS sends close_notify and waits for
  /// the peer's (or its EOF), then closes. `bound` caps the whole; a peer that does not
  /// read or answer is cut off then. The handlers keep this object alive until done.
  void shutdown(std::string rest, caf::timespan bound) {
    if (closed)
      return;
    closed = true;
    shutting = true;
    for (auto& t : timers)
      t.cancel();
    tail = std::move(wqueue); // posted after the write in flight: goes first
    tail += rest;
    auto self = shared_from_this();
    bound_timer.emplace(sock.get_executor());
    bound_timer->expires_after(bound);
    bound_timer->async_wait([self](const asio::error_code& ec) {
      if (!ec)
        self->finish_close();
    });
    step();
  }

  /// The next step of a graceful close; called again by each completion.
  void step() {
    if (finished)
      return;
    if (writing)
      return; // a record is on its way; never cut it (the TLS stream would be corrupt)
    if (reading) {
      // Nothing more is read: cancel the pending wait (no write is pending, so only
      // the read's is cancelled); its handler steps on.
      if (!read_cancelled) {
        read_cancelled = true;
        asio::error_code ec;
        sock.cancel(ec);
      }
      return;
    }
    if (!tail.empty()) {
      wbuf = std::move(tail);
      tail.clear();
      woff = 0;
      writing = true;
      do_write();
      return;
    }
    if (ssl != nullptr && !tls_shutdown_started) {
      tls_shutdown_started = true;
      tls_shutdown();
      return;
    }
    finish_close();
  }

  /// Sends close_notify (retried until written), then waits for the peer's.
  void tls_shutdown() {
    ERR_clear_error();
    int r = SSL_shutdown(ssl);
    if (r == 1) {
      finish_close(); // the peer's close_notify had come already
      return;
    }
    if (r == 0) {
      await_close_notify();
      return;
    }
    int e = SSL_get_error(ssl, r);
    ERR_clear_error();
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
      finish_close();
      return;
    }
    await(e == SSL_ERROR_WANT_READ ? io_status::want_read : io_status::want_write,
          [this](const asio::error_code& ec) {
            if (ec)
              finish_close();
            else
              tls_shutdown();
          });
  }

  /// Ours is sent: reads (and drops) until the peer's close_notify, its EOF or an error.
  void await_close_notify() {
    char* p = read_scratch(4096);
    io_status st = io_status::ok;
    io_error err;
    // A peer still sending is read for a while, then the loop gets a turn.
    for (int i = 0; i < 64; ++i) {
      if (recv_some(p, 4096, st, err) == 0)
        break;
    }
    if (st == io_status::ok || st == io_status::want_read || st == io_status::want_write) {
      await(st == io_status::want_write ? st : io_status::want_read, [this](const asio::error_code& ec) {
        if (ec)
          finish_close();
        else
          await_close_notify();
      });
      return;
    }
    finish_close();
  }

  /// Closes the socket and frees the SSL; every handler still pending finds
  /// `finished` and touches nothing.
  void finish_close() {
    if (finished)
      return;
    finished = true;
    drop_slot(); // a handshake cut short (timeout, the actor's exit)
    if (bound_timer)
      bound_timer->cancel();
    asio::error_code ec;
    sock.close(ec);
    if (ssl != nullptr) {
      SSL_free(ssl);
      ssl = nullptr;
    }
    std::string{}.swap(rbuf);
    std::string{}.swap(wbuf);
    std::string{}.swap(wqueue);
    std::string{}.swap(tail);
  }

  std::list<asio::steady_timer> timers;
  std::optional<asio::steady_timer> bound_timer; // graceful close deadline
  std::string tail;                              // graceful close: output still to write
  io_error end_error;                            // with end_status
  io_status end_status = io_status::ok;          // eof/error met after a batch's data
  bool drained = false;                          // the last read found the socket empty: wait before the next
  bool reading = false;
  bool writing = false;
  bool closed = false;   // close() or shutdown() began: the actor hears nothing more
  bool shutting = false; // graceful close in progress
  bool read_cancelled = false;
  bool tls_shutdown_started = false;
  bool finished = false; // socket closed, SSL freed
};

class endpoint_actor : public caf::event_based_actor, public connection_context {
public:
  endpoint_actor(caf::actor_config& cfg, state_ptr st, socket_ptr sock, bool slot)
    : caf::event_based_actor(cfg), st_(std::move(st)), codec_(st_->opts.codec), lines_(st_->opts.max_frame),
      frames_(st_->opts.max_frame) {
    info_.id = st_->next_conn_id.fetch_add(1, std::memory_order_relaxed);
    info_.tls = st_->tls != nullptr;
    io_ = std::make_shared<conn_io>(std::move(*sock), st_->tls.get(), st_->opts.no_delay);
    io_->owner = caf::actor_cast<caf::weak_actor_ptr>(this);
    io_->keep = st_;
    io_->bytes_out = &st_->c.bytes_out;
    if (st_->max_handshakes != 0) {
      io_->admission = st_.get();
      io_->slot = slot; // the acceptor's, unless the ClientHello was not whole at accept
    }
  }

  caf::behavior make_behavior() override {
    set_exit_handler([this](caf::exit_msg& msg) {
      // Our supervisor (or a drain) asks us to stop: we go now. The socket's loop
      // writes what is queued (and the last ACK), sends close_notify and closes, on
      // its own and bounded in time.
      finish(msg.reason, true);
    });
    set_exception_handler([this](caf::scheduled_actor*, std::exception_ptr& e) -> caf::error {
      auto reason = exception_to_exit(e);
      log().warn("listener {}: connection {} ({}): protocol threw: {}", st_->id, info_.id, info_.peer,
                 describe_exit(reason));
      release(reason);
      return reason;
    });
    set_default_handler([this](caf::scheduled_actor*, caf::message_view& x) -> caf::result<caf::message> {
      // Messages from other actors go to the protocol once it is connected.
      if (!proto_ || done_)
        return caf::make_error(caf::sec::unexpected_message);
      auto msg = x.move_content_to_message();
      in_message_ = true; // a throw ends the actor: no need to reset it then
      bool handled = proto_->on_message(*this, msg);
      in_message_ = false;
      after_callback();
      if (!handled)
        return caf::make_error(caf::sec::unexpected_message);
      return caf::message{};
    });
    if (!info_.tls) {
      // Plain TCP has nothing to wait for: connect now, through our own mailbox (so
      // on_connect runs as a message handler), queued before the loop can tell us
      // anything about the socket (data, EOF, an error).
      info_.peer = io_->peer(); // before the loop has the socket
      caf::event_based_actor::send(caf::actor_cast<caf::actor>(this), hs_ok_atom::value, info_.peer,
                                   std::string{}, std::string{});
    }
    // One post starts everything on the loop: the handshake (TLS), the first read
    // (active-once: the protocol gets the first batch after on_connect), and the
    // handshake and idle timers.
    reading_ = true;
    post([read_size = st_->opts.read_buffer, tls = info_.tls, hs = st_->opts.handshake_timeout,
          hello = st_->opts.hello_timeout, idle = st_->opts.idle_timeout](conn_io& io) {
      io.start(read_size);
      if (tls) {
        io.handshake_deadline(hs);
        if (hello < hs)
          io.handshake_deadline(hello, true);
      }
      if (idle.count() > 0)
        io.after(idle, idle_atom::value, uint64_t{0});
    });
    return {
        [this](hs_ok_atom, std::string& peer, std::string& version, std::string& subject) {
          info_.peer = std::move(peer);
          info_.tls_version = std::move(version);
          info_.verified_subject = std::move(subject);
          connected();
        },
        [this](hs_fail_atom, int kind, const std::string& what, const std::string& peer) {
          handshake_failed(static_cast<hs_failure>(kind), what, peer);
        },
        [this](hs_timeout_atom, bool hello) {
          if (proto_)
            return;
          bump(st_->c.hs_timeout);
          if (hello)
            bump(st_->c.hello_timeouts);
          finish(shutdown_with("handshake_timeout"));
        },
        [this](data_atom, std::string& chunk) { on_data(chunk); },
        [this](eof_atom) {
          // The peer is done sending: answer what it sent, then close (gracefully).
          reading_ = false;
          end_of_input(caf::error{});
        },
        [this](sock_err_atom, bool gone, const std::string& what) {
          if (closing_ || lingering_)
            finish(close_reason_); // we were closing anyway
          else if (gone)
            finish(shutdown_with("connection_reset"));
          else
            finish(make_error(net_errc::socket_error, what));
        },
        [this](wrote_atom) {
          if (done_)
            return;
          check_paused();
          read_more();
        },
        [this](idle_atom, uint64_t seen) { on_idle(seen); },
        [this](timer_atom, uint64_t id) {
          if (done_ || closing_)
            return;
          proto_->on_timer(*this, id);
          after_callback();
        },
        [this](ack_timer_atom) {
          if (done_)
            return;
          schedule_ack(); // sends it, or waits again if a later ACK went out meanwhile
          after_callback();
        },
        [this](linger_atom) {
          if (done_ || closing_ || !lingering_) // acked meanwhile, or the protocol closed
            return;
          bump(st_->c.close_timeouts);
          log().debug("listener {}: connection {} ({}): close_timeout with {} messages unacknowledged",
                      st_->id, info_.id, info_.peer, frames_in_ - acked_seq_);
          lingering_ = false;
          auto reason = close_reason_;
          close(std::move(reason));
        },
    };
  }

  void on_exit() override {
    // Whatever ended us (kill included): the socket goes, the protocol hears of it.
    release(fail_state());
    // Drop the heavy parts now: the actor object itself may outlive this a little
    // (CAF keeps it while messages or handles refer to it).
    io_.reset();
    proto_.reset();
    lines_.shrink();
    frames_.shrink();
    std::string{}.swap(out_);
    std::string{}.swap(spare_in_);
    std::string{}.swap(stash_);
    std::vector<std::string_view>{}.swap(batch_);
    st_.reset();
  }

  // -- connection_context -------------------------------------------------------

  bool closing() const override { return done_ || closing_; }

  bool send(std::string_view frame) override {
    if (done_ || closing_)
      return false;
    if (out_.capacity() < 64) // one allocation per batch, not a doubling series
      out_.reserve(std::clamp<std::size_t>(last_flush_ * 2, 256, 64 * 1024));
    if (frame.size() > st_->opts.max_frame || frame.size() > std::numeric_limits<uint32_t>::max())
      return false;
    if (codec_ == codec_kind::frame)
      codec::encode_push(out_, frames_out_ + 1, frame);
    else if (!codec::encode_line(out_, frame))
      return false;
    ++frames_out_;
    bump(st_->c.frames_out);
    return check_overflow(); // a protocol sending in a loop learns of a close at once
  }

  void close(caf::error reason) override {
    if (done_ || closing_)
      return;
    closing_ = true;
    close_reason_ = std::move(reason);
    // The loop writes what is queued and the last ACK, then closes (release()):
    // bounded in time, so a peer that does not read cannot keep it around.
    finish(close_reason_, true);
  }

  const connection_info& info() const override { return info_; }

  void start_timer(uint64_t id, caf::timespan delay) override {
    if (!done_)
      timer(delay, timer_atom::value, id);
  }

  uint64_t frames_in() const override { return frames_in_; }
  uint64_t frames_out() const override { return frames_out_; }
  caf::actor self() const override { return caf::actor_cast<caf::actor>(const_cast<endpoint_actor*>(this)); }

  codec_kind codec() const override { return codec_; }

  void ack(uint64_t seq) override {
    if (done_)
      return;
    seq = std::min(seq, frames_in_);
    if (seq <= acked_seq_)
      return;
    if (codec_ != codec_kind::frame) {
      acked_seq_ = seq; // no ACK on the wire; a lingering close waits for it (end_of_input)
      return;
    }
    // DATA ids are consecutive (checked on receipt), so each accept() succeeds.
    for (; acked_seq_ < seq; ++acked_seq_)
      tracker_.accept(message_id(acked_seq_ + 1));
    if (!closing_)
      schedule_ack(); // closing: the last ACK goes out with the close
  }

  uint64_t message_id(uint64_t seq) const override {
    if (codec_ != codec_kind::frame)
      return seq;
    if (!have_first_id_ || seq == 0)
      return 0;
    return first_id_ + (seq - 1);
  }

  uint64_t push_acked() const override { return push_acked_; }

  void pause_reading() override { held_ = true; }

  // The read starts in after_callback(), once the protocol's callback returned.
  void resume_reading() override { held_ = false; }

  caf::response_promise make_response_promise() override {
    auto* el = current_mailbox_element();
    if (!in_message_ || el == nullptr || !el->mid.is_request())
      return {};
    return caf::local_actor::make_response_promise(); // invalid if already taken
  }

private:
  template <class F>
  void post(F f) {
    auto io = io_;
    asio::post(io->sock.get_executor(), [io, f = std::move(f)]() mutable { f(*io); });
  }

  template <class... Ts>
  void timer(caf::timespan delay, Ts... xs) {
    post([delay, xs...](conn_io& io) { io.after(delay, xs...); });
  }

  void connected() {
    proto_ = st_->factory();
    proto_->on_connect(*this);
    after_callback();
  }

  void handshake_failed(hs_failure why, const std::string& what, const std::string& peer) {
    auto& c = st_->c;
    switch (why) {
      case hs_failure::peer_closed:
        bump(c.hs_peer_closed);
        break;
      case hs_failure::not_tls:
        bump(c.hs_not_tls);
        break;
      case hs_failure::unsupported_version:
        bump(c.hs_unsupported_version);
        break;
      case hs_failure::no_shared_cipher:
        bump(c.hs_no_shared_cipher);
        break;
      case hs_failure::client_cert_required:
        bump(c.hs_client_cert_required);
        break;
      case hs_failure::bad_client_cert:
        bump(c.hs_bad_client_cert);
        break;
      case hs_failure::other:
        bump(c.hs_other);
        break;
    }
    if (why != hs_failure::peer_closed)
      bump(c.hs_tls_error); // the sum of the TLS-level reasons
    log().debug("listener {}: connection {} ({}): TLS handshake failed: {} ({})", st_->id, info_.id, peer,
                to_string(why), what);
    finish(shutdown_with("handshake_failed: " + std::string{to_string(why)}));
  }

  void on_data(std::string& chunk) {
    reading_ = false;
    ++activity_;
    bump(st_->c.bytes_in, chunk.size());
    if (!proto_ || held_ || paused_) {
      // The first read was started before on_connect, which held reading (or the
      // connection is not up yet): the batch waits for read_more().
      stash_ = std::move(chunk);
      return;
    }
    handle_data(chunk);
  }

  void handle_data(std::string& chunk) {
    if (closing_) {
      // A read that was in flight when the protocol closed: nothing more is handled.
      spare_in_ = std::move(chunk);
      return;
    }
    std::string bad;
    if (codec_ == codec_kind::frame) {
      bad = decode_frames(chunk);
    } else {
      auto r = lines_.feed(std::string_view{chunk}, batch_);
      deliver();
      if (!r.ok())
        bad = codec::to_string(r.error);
    }
    spare_in_ = std::move(chunk); // the decoder copied any partial frame
    if (!bad.empty() && !done_) {
      // The frames before the bad one were handled; their replies are flushed first.
      bump(st_->c.frame_errors);
      log().info("listener {}: connection {} ({}): closing: {}", st_->id, info_.id, info_.peer, bad);
      end_of_input(shutdown_with(std::move(bad)));
      after_callback();
      return;
    }
    after_callback();
  }

  /// codec frame: DATA payloads to the protocol, PING answered, PUSH_ACK recorded.
  /// Returns the reason to close for, or "" if the chunk was fine.
  std::string decode_frames(std::string_view in) {
    batch_.clear();
    uint64_t push_ack = push_acked_;
    std::string bad;
    codec::frame f;
    for (;;) {
      auto s = frames_.next(in, f);
      if (s == codec::decode_status::need_more)
        break;
      if (s == codec::decode_status::error) {
        bad = codec::to_string(frames_.error());
        break;
      }
      switch (f.type) {
        case codec::frame_type::data:
          if (!have_first_id_) {
            // The first id is the device's choice (it resends unacked ones after a
            // reconnect); from then on, +1 each.
            have_first_id_ = true;
            first_id_ = f.id;
            next_id_ = f.id;
            tracker_ = codec::ack_tracker{f.id};
          }
          if (f.id != next_id_) {
            bad = codec::to_string(codec::error_reason::id_not_consecutive);
            break;
          }
          ++next_id_;
          batch_.push_back(f.payload); // valid until the next chunk
          break;
        case codec::frame_type::ping:
          codec::encode_pong(out_, f.id);
          bump(st_->c.pings_in);
          break;
        case codec::frame_type::pong:
          break; // the gateway sends no PINGs yet; a PONG is harmless
        case codec::frame_type::push_ack:
          if (f.id > frames_out_)
            bad = "push_ack_beyond_sent";
          else
            push_ack = std::max(push_ack, f.id);
          break;
        case codec::frame_type::ack:
        case codec::frame_type::push:
          bad = "unexpected_frame_type"; // gateway-to-device frames from the device
          break;
      }
      if (!bad.empty())
        break;
    }
    deliver();
    if (push_ack > push_acked_ && !done_) {
      bump(st_->c.pushes_acked, push_ack - push_acked_);
      push_acked_ = push_ack;
      proto_->on_push_ack(*this, push_ack);
    }
    return bad;
  }

  /// The batch to the protocol; with auto_ack, acknowledged once it returns.
  void deliver() {
    if (batch_.empty() || done_)
      return;
    frames_in_ += batch_.size();
    bump(st_->c.frames_in, batch_.size());
    proto_->on_frames(*this, batch_);
    if (st_->opts.auto_ack)
      ack(frames_in_);
  }

  /// Sends the pending ACK now if the last one is at least ack_interval old: it goes
  /// out with the write this callback flushes anyway (the echo, a PUSH). Otherwise the
  /// ACK waits for a later batch past the interval, and a fallback timer on the loop
  /// (interval left + half an interval) sends it if none comes: a streaming device
  /// gets its ACKs inside the replies, with no timer message or write of their own;
  /// a device that went quiet gets its last ACK at most 1.5 intervals late.
  void schedule_ack() {
    if (!tracker_.pending() || done_)
      return;
    auto iv = st_->opts.ack_interval;
    auto now = std::chrono::steady_clock::now();
    auto since = last_ack_ ? std::chrono::duration_cast<caf::timespan>(now - *last_ack_) : iv;
    if (iv.count() <= 0 || since >= iv) {
      send_ack(out_);
      return;
    }
    io_->ack_wanted.store(true, std::memory_order_relaxed);
    if (!io_->ack_timer_armed.exchange(true)) {
      auto delay = iv - since + iv / 2;
      post([delay](conn_io& io) { io.arm_ack_timer(delay); });
    }
  }

  void send_ack(std::string& out) {
    if (io_)
      io_->ack_wanted.store(false, std::memory_order_relaxed);
    if (tracker_.write_ack(out)) {
      last_ack_ = std::chrono::steady_clock::now();
      bump(st_->c.acks_out);
    }
  }

  /// Reads and writes so far (the loop counts the writes).
  uint64_t activity() const { return activity_ + io_->writes_done.load(std::memory_order_relaxed); }

  void on_idle(uint64_t seen) {
    if (done_)
      return;
    bool writing = io_->unwritten.load(std::memory_order_relaxed) > 0; // a slow reader is not idle
    if (proto_ && seen == activity() && !writing && !held_) {          // held: the silence is ours
      bump(st_->c.idle_closes);
      finish(shutdown_with("idle_timeout"));
      return;
    }
    timer(st_->opts.idle_timeout, idle_atom::value, activity());
  }

  /// After every call into the protocol: write what it queued, then read on (or, once
  /// the peer's input ended, close when the protocol acknowledged everything).
  void after_callback() {
    if (done_)
      return;
    if (lingering_ && settled()) {
      lingering_ = false;
      auto reason = close_reason_;
      close(std::move(reason)); // writes the last replies and ACK, then closes
      return;
    }
    flush();
    check_paused();
    read_more();
  }

  /// Nothing received waits for the protocol's ack() (always so with auto_ack).
  bool settled() const { return st_->opts.auto_ack || acked_seq_ >= frames_in_; }

  /// The peer ended its input: EOF (FIN, half-close, TLS close_notify or truncation),
  /// or a frame the codec refuses. Nothing more is read. What it sent before was
  /// handled; with auto_ack off, a backend may still be about to accept some of it:
  /// the connection stays up, its ACKs and replies still go out, until the protocol
  /// acknowledged everything (ack(frames_in())) or close_timeout passed, then closes
  /// gracefully with `reason`.
  void end_of_input(caf::error reason) {
    if (done_ || closing_ || lingering_)
      return;
    if (settled() || st_->opts.close_timeout.count() <= 0) {
      close(std::move(reason));
      return;
    }
    lingering_ = true;
    close_reason_ = std::move(reason);
    timer(st_->opts.close_timeout, linger_atom::value);
  }

  /// The outbound watermark, over every byte queued for the peer (PUSH, line, ACK,
  /// PONG): past high_watermark, overflow_policy::close ends the connection (false),
  /// pause_reading stops reading until the loop wrote it down to low_watermark.
  bool check_overflow() {
    std::size_t queued = out_.size() + io_->unwritten.load(std::memory_order_relaxed);
    if (queued <= st_->opts.high_watermark)
      return true;
    if (st_->opts.on_overflow == overflow_policy::close) {
      bump(st_->c.overflow_closes);
      finish(shutdown_with("overflow"));
      return false;
    }
    paused_ = true;
    return true;
  }

  /// Hands the queued output to the loop, which writes it after any write in flight.
  /// What the endpoint queued itself (PONGs, ACKs) counts against the watermark as
  /// the protocol's messages do: a device that PINGs and never reads is bounded too.
  void flush() {
    if (out_.empty() || done_)
      return;
    if (!check_overflow())
      return;
    io_->unwritten.fetch_add(out_.size(), std::memory_order_acq_rel);
    std::string data = std::move(out_);
    out_.clear();
    last_flush_ = data.size();
    post([data = std::move(data)](conn_io& io) mutable { io.write(std::move(data)); });
  }

  /// overflow_policy::pause_reading: reading stays off until the loop has written the
  /// queue down to low_watermark; it tells us then (wrote_atom).
  void check_paused() {
    if (!paused_)
      return;
    auto low = st_->opts.low_watermark;
    if (io_->unwritten.load(std::memory_order_acquire) > low) {
      io_->wake_below.store(low, std::memory_order_release);
      // Written down meanwhile? Then the loop may have looked before the store.
      if (io_->unwritten.load(std::memory_order_acquire) > low ||
          io_->wake_below.exchange(conn_io::no_wake) == conn_io::no_wake)
        return; // the loop will tell us (or already took the wake-up and will)
    }
    paused_ = false;
  }

  /// Active-once: at most one read in flight, started only after the previous batch
  /// was handled, so a flooding peer fills its TCP window, not our mailbox. None while
  /// the outbound queue (paused_) or the protocol (held_) holds reading.
  void read_more() {
    if (reading_ || closing_ || lingering_ || done_ || paused_ || held_ || !proto_)
      return;
    if (!stash_.empty()) {
      std::string chunk = std::move(stash_);
      stash_.clear();
      handle_data(chunk);
      return;
    }
    reading_ = true;
    auto size = st_->opts.read_buffer;
    post([buf = std::move(spare_in_), size](conn_io& io) mutable { io.read(std::move(buf), size); });
  }

  /// Ends the connection now with `reason`; `graceful`: see release().
  void finish(caf::error reason, bool graceful = false) {
    if (done_)
      return;
    release(reason, graceful);
    quit(std::move(reason));
  }

  /// Closes the socket and tells the protocol, once. Graceful (peer EOF, close(),
  /// supervisor or drain exit) once connected: the loop writes what is still queued
  /// plus the last ACK, then sends TLS close_notify, bounded by
  /// min(handshake_timeout, 1 s); we do not wait for it. Otherwise abortive.
  void release(const caf::error& reason, bool graceful = false) {
    if (done_)
      return;
    done_ = true;
    if (io_) {
      if (graceful && proto_) {
        std::string rest = std::move(out_);
        out_.clear();
        if (tracker_.pending())
          send_ack(rest);
        // ctx.close() waits up to handshake_timeout for its output to be written; the
        // other graceful ends (EOF, supervisor, drain) up to 1 s.
        auto bound = closing_ ? st_->opts.handshake_timeout
                              : std::min<caf::timespan>(st_->opts.handshake_timeout, std::chrono::seconds(1));
        post([rest = std::move(rest), bound](conn_io& io) mutable { io.shutdown(std::move(rest), bound); });
      } else {
        post([](conn_io& io) { io.close(); });
      }
    }
    if (proto_) {
      try {
        proto_->on_close(reason);
      } catch (...) {
        log().warn("listener {}: connection {}: on_close threw", st_->id, info_.id);
      }
    }
  }

  state_ptr st_;
  codec_kind codec_;
  std::shared_ptr<conn_io> io_;
  codec::line_decoder lines_;
  codec::frame_decoder frames_;
  connection_info info_; // before proto_: it outlives the protocol (protocol.hpp, info())
  std::unique_ptr<protocol> proto_;
  std::vector<std::string_view> batch_;
  std::string out_;            // queued output, not yet handed to the loop
  std::size_t last_flush_ = 0; // size of the last output handed over: out_'s next reserve
  std::string spare_in_;       // read buffer handed back and forth (no allocation per read)
  std::string stash_;          // a batch read while reading was held (the first read, ahead of on_connect)
  uint64_t frames_in_ = 0;
  uint64_t frames_out_ = 0;
  uint64_t activity_ = 0;
  // codec frame
  codec::ack_tracker tracker_;
  bool have_first_id_ = false;
  uint64_t first_id_ = 0; // DATA id of from-device seq 1
  uint64_t next_id_ = 0;  // the DATA id expected next
  uint64_t acked_seq_ = 0;
  uint64_t push_acked_ = 0;
  std::optional<std::chrono::steady_clock::time_point> last_ack_; // none sent yet
  caf::error close_reason_;
  bool reading_ = false;
  bool paused_ = false;     // outbound queue over high_watermark (overflow_policy::pause_reading)
  bool held_ = false;       // the protocol's pause_reading()
  bool in_message_ = false; // inside protocol::on_message
  bool closing_ = false;
  bool lingering_ = false; // the peer's input ended; waiting for the protocol's acks (end_of_input)
  bool done_ = false;
};

} // namespace

start_fn endpoint_template(std::shared_ptr<listener_state> st, std::size_t /*idx*/) {
  return [st](const start_context& ctx) -> start_result {
    const auto& args = ctx.args();
    if (!args.match_elements<socket_ptr, bool>())
      return make_error(exit_code::bad_start, "endpoint expects a socket and its handshake slot flag");
    auto sock = args.get_as<socket_ptr>(0);
    if (!sock || !sock->is_open())
      return make_error(exit_code::bad_start, "endpoint got no open socket");
    auto h = ctx.system().spawn<endpoint_actor>(st, sock, args.get_as<bool>(1));
    bump(st->c.active);
    // Runs however the endpoint ends (kill included): the counters, and a drain's
    // wake-up. O(1) per connection.
    h->attach_functor([st] {
      st->c.active.fetch_sub(1); // seq_cst: see on_conn_closed
      bump(st->c.closed);
      st->open.fetch_sub(1);
      st->on_conn_closed(); // wakes a pending drain when this was the last connection
    });
    return caf::actor{h};
  };
}

} // namespace warren::net::detail
