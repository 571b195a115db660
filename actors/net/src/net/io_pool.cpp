#include <warren/net/io_pool.hpp>

#include <warren/log.hpp>
#include <warren/net/scheduler.hpp>

#include <pthread.h>
#include <signal.h>

namespace warren::net {

namespace {

/// asio::execution_context::shutdown() is protected; this reaches it for a whole
/// pool, so that no context is destroyed while another still holds operations on it.
struct context_shutdown : asio::io_context {
  static void run(asio::io_context& c) {
    void (asio::execution_context::*f)() = &context_shutdown::shutdown;
    (c.*f)();
  }
};

} // namespace

io_pool::io_pool(std::size_t threads, bool sched_batch) {
  if (threads == 0)
    threads = std::max(1u, std::thread::hardware_concurrency());
  loops_.reserve(threads);
  for (std::size_t i = 0; i < threads; ++i) {
    auto l = std::make_unique<loop>();
    // concurrency hint 1: each context is run by exactly one thread, so Asio can
    // skip its internal locking on the hot path.
    l->ctx = std::make_unique<asio::io_context>(1);
    l->guard =
        std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(l->ctx->get_executor());
    auto* ctx = l->ctx.get();
    l->thread = std::thread([ctx, sched_batch] {
      if (sched_batch && !set_sched_batch())
        log().debug("io_pool: SCHED_BATCH refused; the loop keeps its scheduling policy");
      // TLS writes go through OpenSSL's socket BIO, i.e. write(2), not send() with
      // MSG_NOSIGNAL: a peer that reset the connection would raise SIGPIPE and kill
      // the process. Blocked here, the write fails with EPIPE instead (a socket
      // error, as for plain TCP). Sockets are only touched on these threads.
      sigset_t pipe;
      sigemptyset(&pipe);
      sigaddset(&pipe, SIGPIPE);
      pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
      for (;;) {
        try {
          ctx->run();
          return;
        } catch (const std::exception& e) {
          // A handler threw: log and keep the loop alive for the other sockets.
          log().error("io_pool: handler threw: {}", e.what());
        }
      }
    });
    loops_.push_back(std::move(l));
  }
}

io_pool::~io_pool() {
  for (auto& l : loops_)
    l->guard.reset();
  for (auto& l : loops_)
    l->ctx->stop();
  for (auto& l : loops_)
    if (l->thread.joinable())
      l->thread.join();
  // Contexts are destroyed after every thread is gone: pending handlers (and the
  // sockets they keep alive) are released here, on this thread. All of them are shut
  // down (pending operations abandoned) before any is destroyed: a pending accept on
  // one loop builds its socket on another loop's context, even when abandoned.
  for (auto& l : loops_)
    context_shutdown::run(*l->ctx);
  loops_.clear();
}

} // namespace warren::net
