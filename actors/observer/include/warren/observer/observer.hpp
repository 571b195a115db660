// A live view of a supervision tree in the browser, for any Warren application.
//
//   GET  /                      the page (HTML, CSS, JS compiled into the binary)
//   GET  /ui/<file>             its files, and the application's extra files
//   GET  /v1/tree/stream        Server-Sent Events: `snapshot` (the tree, the restart
//                               timeline, seq S), then `delta` batches of events with
//                               seq S+1, S+2, ... (warren/observe/tree_events.hpp); a
//                               watcher too slow to keep up gets a new `snapshot`;
//                               with a sampler, a `sample` every sample_every
//   GET  /v1/tree/children      one page of a supervisor's children:
//                               ?path=<actor id>.<actor id>...&offset=&limit=&q=
//   POST /v1/tree/kill          ?path=...: kills that child (only with allow_kill)
//
// One call serves it on its own port (server_child), or mount() adds the routes to
// an application's own cpp-httplib server. On a plain httplib server each open
// stream holds one of the server's threads while it lasts (a thread per request),
// so streams are capped at max_watchers and server_child sizes its pool for them. A
// server that carries streams itself (the gateway's admin API: one thread writes
// every stream) passes a stream_carrier to install(), and pulls each stream.
#pragma once

#include "warren/observer/asset.hpp"

#include <warren/child_spec.hpp>

#include <caf/actor.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace httplib {
class Server;
struct Request;
struct Response;
} // namespace httplib

namespace warren::observer {

struct options {
  std::function<caf::actor()> top; ///< the root supervisor to show (null handle: 503)
  std::string title = "Warren";
  std::size_t max_watchers = 64;    ///< open streams at most; more get 503 (counted, logged)
  std::size_t page_threshold = 100; ///< supervisors with more children are shown paged
  std::size_t queue_limit = 4096;   ///< unread events per stream before it resyncs
  /// Optional: a JSON text pushed to every stream as a `sample` event (e.g. counters
  /// the page plots). Taken at most once per sample_every, whatever the watchers.
  std::function<std::string()> sample;
  std::chrono::milliseconds sample_every{1000};
  /// Extra files served under /ui/; every .js among them is loaded by the page after
  /// observer.js (it may call warren.panel(...), see assets/observer.js).
  std::vector<asset> extra;
  bool allow_kill = false; ///< POST /v1/tree/kill (OTP observer's "kill process")
};

/// The stream counters (for an application's metrics).
struct stream_counters {
  std::atomic<uint64_t> opened{0};
  std::atomic<uint64_t> refused{0}; ///< over max_watchers
  std::atomic<uint64_t> resyncs{0}; ///< snapshots sent again to a reader that fell behind
  std::atomic<int64_t> open{0};
};

/// One watcher's event stream (snapshot, deltas, samples, keep-alives as SSE text).
/// One reader at a time; released, it closes the subscription.
class stream {
public:
  /// Appends what is due to `out` (possibly nothing), waiting up to `wait` for
  /// events. False: the stream is over (the routes stop); send what `out` holds
  /// and close.
  bool pull(std::string& out, std::chrono::milliseconds wait);

  struct state;
  explicit stream(std::shared_ptr<state> st) : st_(std::move(st)) {}

private:
  std::shared_ptr<state> st_;
};

/// For a server with its own connection handling: called on GET /v1/tree/stream
/// with a stream opened for it. True: the server took the connection and writes
/// the response (head: 200, Content-Type: text/event-stream) and every pulled
/// byte itself, until pull() is false or the client goes. False: the route serves
/// the stream on the request's thread as usual.
using stream_carrier =
    std::function<bool(const httplib::Request&, httplib::Response&, std::shared_ptr<stream>)>;

/// The routes on a server. stop() ends every open stream (returning once they ended,
/// 1 s at most): call it before stopping the server, whose stop waits for them.
class routes {
public:
  routes(caf::actor_system& sys, options opts);
  ~routes();
  void install(httplib::Server& server, stream_carrier carrier = {});
  void stop();
  const stream_counters& counters() const;

  struct impl;

private:
  std::shared_ptr<impl> impl_;
};

/// Adds the routes to `server`; keep the result while the server runs.
std::shared_ptr<routes> mount(httplib::Server& server, caf::actor_system& sys, options opts);

/// The one call for an embedder: a child that serves the page on bind:port (0: any
/// free port, written to *bound_port once listening) with its own threads, stopped
/// with the tree.
child_spec server_child(options opts, std::string bind = "127.0.0.1", uint16_t port = 0,
                        std::shared_ptr<std::atomic<uint16_t>> bound_port = {});

} // namespace warren::observer
