// The requests an actor has in flight over NATS, each waiting for its reply or its
// deadline. One structure per actor instead of a CAF request timeout per message
// (CAF 0.17 registers each with its clock thread and never cancels it): tokens are
// consecutive and every request of an actor has the same timeout, so deadlines are in
// token order and expiring is a walk from the front.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <unordered_map>
#include <utility>

namespace warren::cluster {

template <class Entry>
class pending_requests {
public:
  using clock = std::chrono::steady_clock;

  /// Adds a request; returns its token (never 0).
  uint64_t add(Entry e, clock::time_point deadline) {
    auto token = ++last_;
    entries_.emplace(token, std::move(e));
    deadlines_.emplace_back(token, deadline);
    return token;
  }

  /// The request of `token` (removed), or nothing when it expired or was taken.
  std::optional<Entry> take(uint64_t token) {
    auto i = entries_.find(token);
    if (i == entries_.end())
      return std::nullopt;
    std::optional<Entry> out{std::move(i->second)};
    entries_.erase(i);
    return out;
  }

  /// Calls f(token, Entry&&) for every request whose deadline is `now` or earlier,
  /// and removes them.
  template <class F>
  void expire(clock::time_point now, F&& f) {
    while (!deadlines_.empty() && deadlines_.front().second <= now) {
      auto token = deadlines_.front().first;
      deadlines_.pop_front();
      if (auto i = entries_.find(token); i != entries_.end()) {
        auto e = std::move(i->second);
        entries_.erase(i);
        f(token, std::move(e));
      }
    }
    // Taken requests leave their deadline behind; drop those at the front.
    while (!deadlines_.empty() && !entries_.count(deadlines_.front().first))
      deadlines_.pop_front();
  }

  /// Removes every request, calling f(token, Entry&&) for each.
  template <class F>
  void clear(F&& f) {
    for (auto& [token, e] : entries_)
      f(token, std::move(e));
    entries_.clear();
    deadlines_.clear();
  }

  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }

private:
  uint64_t last_ = 0;
  std::unordered_map<uint64_t, Entry> entries_;
  std::deque<std::pair<uint64_t, clock::time_point>> deadlines_;
};

} // namespace warren::cluster
