// Throwaway helpers for the NATS measurements (not part of the repository).
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nats/nats.h>
#include <signal.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>
#include <warren_test/nats_cluster.hpp>

using namespace std::chrono_literals;
using sclock = std::chrono::steady_clock;

inline double ms_since(sclock::time_point t0) {
  return std::chrono::duration<double, std::milli>(sclock::now() - t0).count();
}
inline double pct(std::vector<double> v, double p) {
  if (v.empty())
    return -1;
  std::sort(v.begin(), v.end());
  size_t k = static_cast<size_t>(p / 100.0 * (v.size() - 1) + 0.5);
  return v[std::min(k, v.size() - 1)];
}
inline void summary(const char* what, const std::vector<double>& v, const char* unit = "ms") {
  if (v.empty()) {
    std::printf("%-60s n=0\n", what);
    return;
  }
  std::printf("%-60s n=%zu p50=%.3f p99=%.3f min=%.3f max=%.3f %s\n", what, v.size(), pct(v, 50), pct(v, 99),
              *std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end()), unit);
  std::fflush(stdout);
}
#define CHECK_NATS(x)                                                                                        \
  do {                                                                                                       \
    natsStatus s_ = (x);                                                                                     \
    if (s_ != NATS_OK) {                                                                                     \
      std::fprintf(stderr, "%s:%d %s -> %s %s\n", __FILE__, __LINE__, #x, natsStatus_GetText(s_),            \
                   nats_GetLastError(nullptr) ? nats_GetLastError(nullptr) : "");                            \
      std::exit(2);                                                                                          \
    }                                                                                                        \
  } while (0)

inline natsConnection* connect_simple(const std::string& url, bool reconnect = false, bool asap = true) {
  natsOptions* o = nullptr;
  CHECK_NATS(natsOptions_Create(&o));
  CHECK_NATS(natsOptions_SetSendAsap(o, asap)); // write at once, not after libnats's 1 ms flusher wait
  CHECK_NATS(natsOptions_SetURL(o, url.c_str()));
  CHECK_NATS(natsOptions_SetAllowReconnect(o, reconnect));
  CHECK_NATS(natsOptions_SetIgnoreDiscoveredServers(o, true));
  natsConnection* nc = nullptr;
  CHECK_NATS(natsConnection_Connect(&nc, o));
  natsOptions_Destroy(o);
  return nc;
}

/// One request; returns NATS_OK (reply), NATS_NO_RESPONDERS, NATS_TIMEOUT, ...
inline natsStatus request_once(natsConnection* nc, const char* subj, int64_t timeout_ms) {
  natsMsg* reply = nullptr;
  natsStatus s = natsConnection_RequestString(&reply, nc, subj, "ping", timeout_ms);
  if (reply)
    natsMsg_Destroy(reply);
  return s;
}

// A child process running this same binary with argv[1..]; stdout is a pipe we read.
struct child {
  pid_t pid = -1;
  int out = -1;
  bool wait_line(const char* want, std::chrono::milliseconds timeout) {
    std::string got;
    auto deadline = sclock::now() + timeout;
    char c;
    while (sclock::now() < deadline) {
      pollfd p{out, POLLIN, 0};
      if (::poll(&p, 1, 50) == 1) {
        if (::read(out, &c, 1) != 1)
          return false;
        if (c == '\n') {
          if (got == want)
            return true;
          got.clear();
        } else
          got += c;
      }
    }
    return false;
  }
  void reap() {
    if (pid <= 0)
      return;
    ::kill(pid, SIGCONT);
    ::kill(pid, SIGKILL);
    int st;
    ::waitpid(pid, &st, 0);
    pid = -1;
    if (out >= 0)
      ::close(out);
    out = -1;
  }
  ~child() { reap(); }
};
inline void spawn_child(child& c, std::vector<std::string> args) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0)
    std::exit(3);
  std::vector<char*> argv;
  std::string self = "/proc/self/exe";
  argv.push_back(self.data());
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(p[1], 1);
    ::execv("/proc/self/exe", argv.data());
    ::_exit(127);
  }
  ::close(p[1]);
  c.pid = pid;
  c.out = p[0];
}

inline long vmrss_kb(pid_t pid) {
  std::ifstream in{pid == 0 ? std::string("/proc/self/status") : "/proc/" + std::to_string(pid) + "/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0)
      return std::atol(line.c_str() + 6);
  return -1;
}

#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>

/// Fires a request every `period` at `subject` (async: publish with reply
/// "<prefix>.<seq>" on a wildcard inbox subscription) and records what comes back.
struct poller {
  struct rec {
    sclock::time_point sent, got;
    int outcome = 0;
  }; // 0 none, 1 reply, 2 no responders
  natsConnection* nc = nullptr;
  natsSubscription* sub = nullptr;
  std::string prefix, subject;
  std::mutex mtx;
  std::vector<rec> recs;
  std::atomic<bool> running{false};
  std::thread th;
  static inline std::atomic<int> ids{0};

  explicit poller(natsConnection* c) : nc{c} {
    prefix = "_POLL." + std::to_string(::getpid()) + "." + std::to_string(ids++);
    CHECK_NATS(natsConnection_Subscribe(&sub, nc, (prefix + ".*").c_str(), &poller::on_msg, this));
    natsSubscription_SetPendingLimits(sub, -1, -1);
    CHECK_NATS(natsConnection_Flush(nc));
  }
  ~poller() {
    stop();
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
  }

  static void on_msg(natsConnection*, natsSubscription*, natsMsg* m, void* cl) {
    auto* p = static_cast<poller*>(cl);
    auto now = sclock::now();
    const char* s = natsMsg_GetSubject(m);
    const char* dot = std::strrchr(s, '.');
    size_t seq = std::strtoull(dot + 1, nullptr, 10);
    {
      std::lock_guard<std::mutex> l{p->mtx};
      if (seq < p->recs.size() && p->recs[seq].outcome == 0) {
        p->recs[seq].outcome = natsMsg_IsNoResponders(m) ? 2 : 1;
        p->recs[seq].got = now;
      }
    }
    natsMsg_Destroy(m);
  }
  void start(const std::string& subj, std::chrono::microseconds period) {
    stop();
    subject = subj;
    {
      std::lock_guard<std::mutex> l{mtx};
      recs.clear();
      recs.reserve(200000);
    }
    running = true;
    th = std::thread{[this, period] {
      auto next = sclock::now();
      while (running) {
        size_t seq;
        {
          std::lock_guard<std::mutex> l{mtx};
          seq = recs.size();
          recs.push_back({sclock::now(), {}, 0});
        }
        auto reply = prefix + "." + std::to_string(seq);
        natsConnection_PublishRequest(nc, subject.c_str(), reply.c_str(), "ping", 4);
        next += period;
        std::this_thread::sleep_until(next);
      }
    }};
  }
  void stop() {
    running = false;
    if (th.joinable())
      th.join();
  }
  /// Time (ms after t) of the first outcome `want` among requests sent at or after t, or -1.
  double first(int want, sclock::time_point t) {
    std::lock_guard<std::mutex> l{mtx};
    double best = -1;
    for (auto& r : recs)
      if (r.sent >= t && r.outcome == want) {
        double d = std::chrono::duration<double, std::milli>(r.got - t).count();
        if (best < 0 || d < best)
          best = d;
      }
    return best;
  }
  /// Waits up to `timeout` for a `want` outcome of a request sent at or after t.
  double wait_first(int want, sclock::time_point t, std::chrono::milliseconds timeout) {
    auto deadline = sclock::now() + timeout;
    while (sclock::now() < deadline) {
      double d = first(want, t);
      if (d >= 0)
        return d;
      std::this_thread::sleep_for(1ms);
    }
    return -1;
  }
  /// Counts of outcomes of requests sent in [from, to): {none, reply, no responders}.
  std::array<int, 3> counts(sclock::time_point from, sclock::time_point to) {
    std::lock_guard<std::mutex> l{mtx};
    std::array<int, 3> c{0, 0, 0};
    for (auto& r : recs)
      if (r.sent >= from && r.sent < to)
        ++c[r.outcome];
    return c;
  }
};
