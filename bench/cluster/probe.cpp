// warren-cluster-probe: asks NATS directly whether gateway devices are reachable, the way another
// gateway node does: a request to warren.dev.<id> with `Warren-Op: deliver` (docs/cluster.md, "Wire").
// A `Warren-Status: delivered` reply means reachable (the device gets the body as a push), the server's
// "no responders" means held by no node. Ids are plain (A-Z a-z 0-9 - _), so the token is the id.
//
//   probe reach <nats-url> <ids-file> <n> <seed>
//       n random ids of the file (one id a line, "id ..." lines: first word), each asked once
//       (500 in flight, 2 s timeout): counts of delivered / no responders / timeout / other.
//   probe watch <out-file> <seconds> [--sched <start-ns> <rate>] <url>=<ids-file> [<url>=<ids-file> ...]
//       registration: every id starts pending; the 64 lowest pending ids of each file are asked
//       again 5 ms after each "no responders" until delivered. Writes "<id> <ns>" (CLOCK_MONOTONIC
//       time of the first delivered reply) per id; stops when all are delivered or after <seconds>.
//       --sched: the k-th id of a file is not asked before <start-ns> + k / <rate> s (a paced
//       loadgen launches it then), so that the probe does not load the servers with requests for
//       devices that cannot be there yet.
//   probe gone <nats-url> <ids-file> <n> <seed> <pid>
//       n random ids, asked until every one is delivered; then kill -9 <pid> and ask each again
//       (1 ms after each reply, again after 20 ms without one) until "no responders". Prints each
//       id's time from the kill to its first no responders (ms) on one line "gone_ms v1 v2 ...".
//
// The body of every request is "t=<CLOCK_MONOTONIC ns> probe", so warren-loadgen --device-id-prefix
// records its push latency.
#include <nats/nats.h>
#include <signal.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

int64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void check(natsStatus s, const char* what) {
  if (s != NATS_OK) {
    std::fprintf(stderr, "%s: %s\n", what, natsStatus_GetText(s));
    std::exit(2);
  }
}

std::vector<std::string> read_ids(const std::string& file) {
  std::ifstream in{file};
  std::vector<std::string> ids;
  std::string line;
  while (std::getline(in, line)) {
    auto sp = line.find(' ');
    if (sp != std::string::npos)
      line.resize(sp);
    if (!line.empty())
      ids.push_back(line);
  }
  return ids;
}

std::vector<std::string> sample(std::vector<std::string> ids, size_t n, unsigned seed) {
  std::mt19937 rng{seed};
  std::shuffle(ids.begin(), ids.end(), rng);
  if (ids.size() > n)
    ids.resize(n);
  return ids;
}

enum Outcome { none = 0, delivered = 1, no_responders = 2, other = 3, timed_out = 4 };

// One connection and its inbox; targets are asked by index, replies come back on <inbox>.<index>.<gen>.
struct Prober {
  struct Target {
    std::string id, subject;
    uint32_t gen = 0;
    bool outstanding = false;
    int64_t sent_ns = 0;
    int64_t due_ns = 0; // ask again at (when not outstanding)
    int last = none;
    int64_t first_delivered_ns = 0, first_nr_ns = 0;
  };
  natsConnection* nc = nullptr;
  natsSubscription* sub = nullptr;
  std::string inbox;
  std::mutex mtx;
  std::vector<Target> t;
  int64_t retry_ns = 5000000;       // after a reply that is not "done"
  bool stop_on_delivered = true;    // watch / reach
  bool stop_on_nr = false;          // gone
  std::atomic<uint64_t> replies{0}; // all replies

  Prober(const std::string& url, const std::vector<std::string>& ids) {
    natsOptions* o = nullptr;
    check(natsOptions_Create(&o), "options");
    check(natsOptions_SetURL(o, url.c_str()), "url");
    check(natsOptions_SetSendAsap(o, true), "asap");
    check(natsOptions_SetIgnoreDiscoveredServers(o, true), "discover");
    check(natsOptions_SetMaxPendingMsgs(o, 1000000), "pending");
    check(natsConnection_Connect(&nc, o), "connect");
    natsOptions_Destroy(o);
    inbox = "_PROBE." + std::to_string(::getpid()) + "." + std::to_string(reinterpret_cast<uintptr_t>(this));
    check(natsConnection_Subscribe(&sub, nc, (inbox + ".*.*").c_str(), &Prober::on_msg, this), "sub");
    natsSubscription_SetPendingLimits(sub, -1, -1);
    check(natsConnection_Flush(nc), "flush");
    for (auto& id : ids)
      t.push_back({id, "warren.dev." + id});
  }
  ~Prober() {
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
  }

  bool done(const Target& x) const {
    return (stop_on_delivered && x.first_delivered_ns) || (stop_on_nr && x.first_nr_ns);
  }

  // Under mtx.
  void send(size_t i, int64_t now) {
    auto& x = t[i];
    ++x.gen;
    x.outstanding = true;
    x.sent_ns = now;
    natsMsg* m = nullptr;
    const std::string reply = inbox + "." + std::to_string(i) + "." + std::to_string(x.gen);
    const std::string body = "t=" + std::to_string(now) + " probe";
    if (natsMsg_Create(&m, x.subject.c_str(), reply.c_str(), body.data(), int(body.size())) != NATS_OK)
      return;
    natsMsgHeader_Set(m, "Warren-Op", "deliver");
    natsConnection_PublishMsg(nc, m);
    natsMsg_Destroy(m);
  }

  static void on_msg(natsConnection*, natsSubscription*, natsMsg* m, void* cl) {
    auto* p = static_cast<Prober*>(cl);
    const int64_t now = now_ns();
    const char* s = natsMsg_GetSubject(m) + p->inbox.size() + 1;
    char* end = nullptr;
    const size_t i = std::strtoull(s, &end, 10);
    const uint32_t gen = uint32_t(std::strtoul(end + 1, nullptr, 10));
    int outcome = other;
    if (natsMsg_IsNoResponders(m)) {
      outcome = no_responders;
    } else {
      const char* v = nullptr;
      if (natsMsgHeader_Get(m, "Warren-Status", &v) == NATS_OK && v && std::strcmp(v, "delivered") == 0)
        outcome = delivered;
    }
    natsMsg_Destroy(m);
    p->replies++;
    std::lock_guard<std::mutex> l{p->mtx};
    if (i >= p->t.size() || p->t[i].gen != gen || !p->t[i].outstanding)
      return;
    auto& x = p->t[i];
    x.outstanding = false;
    x.last = outcome;
    if (outcome == delivered && !x.first_delivered_ns)
      x.first_delivered_ns = now;
    if (outcome == no_responders && !x.first_nr_ns)
      x.first_nr_ns = now;
    x.due_ns = now + p->retry_ns;
  }
};

int reach(int argc, char** argv) {
  if (argc < 6)
    return 2;
  auto ids = sample(read_ids(argv[3]), std::strtoull(argv[4], nullptr, 10), unsigned(std::atoi(argv[5])));
  Prober p{argv[2], ids};
  size_t next = 0;
  const int64_t timeout = 2000000000;
  for (;;) {
    const int64_t now = now_ns();
    size_t inflight = 0, finished = 0;
    {
      std::lock_guard<std::mutex> l{p.mtx};
      for (size_t i = 0; i < next; ++i) {
        auto& x = p.t[i];
        if (x.outstanding && now - x.sent_ns > timeout) {
          x.outstanding = false;
          x.last = timed_out;
        }
        if (x.outstanding)
          ++inflight;
        else
          ++finished;
      }
      while (next < p.t.size() && inflight < 500) {
        p.send(next++, now);
        ++inflight;
      }
    }
    if (finished == p.t.size())
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  int c[5] = {0, 0, 0, 0, 0};
  for (auto& x : p.t)
    c[x.last]++;
  std::printf("reach %s n=%zu delivered=%d no_responders=%d timeout=%d other=%d\n", argv[2], p.t.size(),
              c[delivered], c[no_responders], c[timed_out], c[other]);
  return c[delivered] == int(p.t.size()) ? 0 : 1;
}

int watch(int argc, char** argv) {
  if (argc < 5)
    return 2;
  const std::string out = argv[2];
  const double seconds = std::atof(argv[3]);
  std::vector<std::unique_ptr<Prober>> ps;
  int first = 4;
  int64_t sched_start = 0;
  double sched_rate = 0;
  if (argc > 6 && std::string(argv[4]) == "--sched") {
    sched_start = std::atoll(argv[5]);
    sched_rate = std::atof(argv[6]);
    first = 7;
  }
  for (int a = first; a < argc; ++a) {
    std::string arg = argv[a];
    auto eq = arg.find('=');
    ps.push_back(std::make_unique<Prober>(arg.substr(0, eq), read_ids(arg.substr(eq + 1))));
  }
  const size_t window = 64;
  const int64_t deadline = now_ns() + int64_t(seconds * 1e9);
  const int64_t timeout = 200000000; // ask again when no answer came within 200 ms
  std::vector<size_t> lowest(ps.size(), 0);
  for (;;) {
    const int64_t now = now_ns();
    bool all = true;
    for (size_t k = 0; k < ps.size(); ++k) {
      auto& p = *ps[k];
      std::lock_guard<std::mutex> l{p.mtx};
      while (lowest[k] < p.t.size() && p.t[lowest[k]].first_delivered_ns)
        ++lowest[k];
      size_t seen = 0;
      for (size_t i = lowest[k]; i < p.t.size() && seen < window; ++i) {
        auto& x = p.t[i];
        if (x.first_delivered_ns)
          continue;
        if (sched_rate > 0 && now < sched_start + int64_t(double(i) / sched_rate * 1e9))
          break;
        ++seen;
        if ((!x.outstanding && now >= x.due_ns) || (x.outstanding && now - x.sent_ns > timeout))
          p.send(i, now);
      }
      if (lowest[k] < p.t.size())
        all = false;
    }
    if (all || now > deadline)
      break;
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::FILE* f = std::fopen(out.c_str(), "w");
  size_t got = 0, total = 0;
  for (auto& p : ps) {
    std::lock_guard<std::mutex> l{p->mtx};
    for (auto& x : p->t) {
      ++total;
      if (x.first_delivered_ns) {
        ++got;
        std::fprintf(f, "%s %lld\n", x.id.c_str(), static_cast<long long>(x.first_delivered_ns));
      }
    }
  }
  std::fclose(f);
  uint64_t replies = 0;
  for (auto& p : ps)
    replies += p->replies;
  std::printf("watch reachable=%zu of %zu, %llu replies\n", got, total,
              static_cast<unsigned long long>(replies));
  return got == total ? 0 : 1;
}

int gone(int argc, char** argv) {
  if (argc < 7)
    return 2;
  auto ids = sample(read_ids(argv[3]), std::strtoull(argv[4], nullptr, 10), unsigned(std::atoi(argv[5])));
  const pid_t pid = pid_t(std::atoi(argv[6]));
  Prober p{argv[2], ids};
  p.retry_ns = 1000000;
  // Phase 1: every sampled device answers.
  const int64_t until = now_ns() + 30000000000LL;
  for (;;) {
    const int64_t now = now_ns();
    size_t ok = 0;
    {
      std::lock_guard<std::mutex> l{p.mtx};
      for (size_t i = 0; i < p.t.size(); ++i) {
        auto& x = p.t[i];
        if (x.first_delivered_ns) {
          ++ok;
          continue;
        }
        if ((!x.outstanding && now >= x.due_ns) || (x.outstanding && now - x.sent_ns > 200000000))
          p.send(i, now);
      }
    }
    if (ok == p.t.size())
      break;
    if (now > until) {
      std::printf("gone: only %zu of %zu reachable before the kill\n", ok, p.t.size());
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // Phase 2: kill, then ask until no responders.
  int64_t t_kill = 0;
  {
    std::lock_guard<std::mutex> l{p.mtx};
    p.stop_on_delivered = false;
    p.stop_on_nr = true;
    for (auto& x : p.t) {
      x.first_nr_ns = 0;
      x.outstanding = false;
      x.due_ns = 0;
    }
    t_kill = now_ns();
    ::kill(pid, SIGKILL);
  }
  const int64_t kill_deadline = t_kill + 30000000000LL;
  for (;;) {
    const int64_t now = now_ns();
    size_t gone_n = 0;
    {
      std::lock_guard<std::mutex> l{p.mtx};
      for (size_t i = 0; i < p.t.size(); ++i) {
        auto& x = p.t[i];
        if (x.first_nr_ns) {
          ++gone_n;
          continue;
        }
        if ((!x.outstanding && now >= x.due_ns) || (x.outstanding && now - x.sent_ns > 20000000))
          p.send(i, now);
      }
    }
    if (gone_n == p.t.size() || now > kill_deadline)
      break;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  std::lock_guard<std::mutex> l{p.mtx};
  std::printf("gone_ms");
  for (auto& x : p.t)
    std::printf(" %.3f", x.first_nr_ns ? double(x.first_nr_ns - t_kill) / 1e6 : -1.0);
  std::printf("\n");
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  int rc = 2;
  if (mode == "reach")
    rc = reach(argc, argv);
  else if (mode == "watch")
    rc = watch(argc, argv);
  else if (mode == "gone")
    rc = gone(argc, argv);
  else
    std::fprintf(stderr, "usage: probe reach|watch|gone ... (see the comment at the top of probe.cpp)\n");
  nats_Close();
  return rc;
}
