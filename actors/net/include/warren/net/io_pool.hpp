// A fixed set of Asio event loops, one std::thread each. Sockets live on one loop for
// their whole life, so every operation on a socket runs on that loop's thread and no
// strand is needed. CAF actors never touch sockets directly: they post to the loop.
//
// The pool must outlive every actor that uses it: declare it before the actor_system
// (so it is destroyed after the system has waited for all actors).
#pragma once

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <atomic>
#include <cstddef>
#include <memory>
#include <thread>
#include <vector>

namespace warren::net {

class io_pool {
public:
  /// `threads` event loops; 0 means std::thread::hardware_concurrency() (at least 1).
  /// `sched_batch`: the loops run under SCHED_BATCH, so a loop woken by a post does
  /// not preempt the CAF worker that posted (set_sched_batch() in scheduler.hpp).
  explicit io_pool(std::size_t threads = 0, bool sched_batch = true);
  ~io_pool();

  io_pool(const io_pool&) = delete;
  io_pool& operator=(const io_pool&) = delete;

  std::size_t size() const noexcept { return loops_.size(); }
  asio::io_context& at(std::size_t i) noexcept { return *loops_[i % loops_.size()]->ctx; }
  /// Round-robin: the loop for the next new socket.
  asio::io_context& next() noexcept { return at(next_.fetch_add(1, std::memory_order_relaxed)); }

private:
  struct loop {
    std::unique_ptr<asio::io_context> ctx;
    std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>> guard;
    std::thread thread;
  };
  std::vector<std::unique_ptr<loop>> loops_;
  std::atomic<std::size_t> next_{0};
};

} // namespace warren::net
