// Throwaway NATS engine measurements for docs/cluster-engine-measurements.md.
//   ./engine a|b|c|d|e|f|g
#include "common.hpp"
#include <iostream>
#include <regex>
#include <semaphore>

using warren_test::nats_cluster;
using warren_test::nats_server_options;

static void on_echo(natsConnection* nc, natsSubscription*, natsMsg* m, void*) {
  if (natsMsg_GetReply(m))
    natsConnection_Publish(nc, natsMsg_GetReply(m), natsMsg_GetData(m), natsMsg_GetDataLength(m));
  natsMsg_Destroy(m);
}
static void on_drop(natsConnection*, natsSubscription*, natsMsg* m, void*) {
  natsMsg_Destroy(m);
}

// ---- children -------------------------------------------------------------------
// sub URL SUBJ NAME HB : replies on SUBJ, also subscribes HB ("-" = none), no reconnect
static int child_sub(char** a) {
  natsOptions* o = nullptr;
  CHECK_NATS(natsOptions_Create(&o));
  CHECK_NATS(natsOptions_SetURL(o, a[0]));
  CHECK_NATS(natsOptions_SetName(o, a[2]));
  CHECK_NATS(natsOptions_SetAllowReconnect(o, false));
  CHECK_NATS(natsOptions_SetSendAsap(o, true));
  natsConnection* nc = nullptr;
  CHECK_NATS(natsConnection_Connect(&nc, o));
  natsSubscription *s1 = nullptr, *s2 = nullptr;
  CHECK_NATS(natsConnection_Subscribe(&s1, nc, a[1], on_echo, nullptr));
  if (std::string(a[3]) != "-")
    CHECK_NATS(natsConnection_Subscribe(&s2, nc, a[3], on_drop, nullptr));
  CHECK_NATS(natsConnection_Flush(nc));
  std::printf("READY\n");
  std::fflush(stdout);
  std::this_thread::sleep_for(120s);
  return 0;
}
// echo URL SUBJ ASAP : responder for g
static int child_echo(char** a) {
  natsOptions* o = nullptr;
  CHECK_NATS(natsOptions_Create(&o));
  CHECK_NATS(natsOptions_SetURL(o, a[0]));
  CHECK_NATS(natsOptions_SetSendAsap(o, std::string(a[2]) == "1"));
  natsConnection* nc = nullptr;
  CHECK_NATS(natsConnection_Connect(&nc, o));
  natsSubscription* s1 = nullptr;
  CHECK_NATS(natsConnection_Subscribe(&s1, nc, a[1], on_echo, nullptr));
  natsSubscription_SetPendingLimits(s1, -1, -1);
  CHECK_NATS(natsConnection_Flush(nc));
  std::printf("READY\n");
  std::fflush(stdout);
  std::this_thread::sleep_for(120s);
  return 0;
}

static bool wait_reply(natsConnection* nc, const std::string& subj, std::chrono::milliseconds timeout) {
  auto deadline = sclock::now() + timeout;
  while (sclock::now() < deadline) {
    if (request_once(nc, subj.c_str(), 200) == NATS_OK)
      return true;
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

static bool start_sub_child(child& ch, nats_cluster& c, size_t srv, const std::string& subj,
                            const std::string& name, const std::string& hb, natsConnection* requester) {
  spawn_child(ch, {"sub", c.url(srv), subj, name, hb});
  return ch.wait_line("READY", 5s) && wait_reply(requester, subj, 5s);
}

/// cid of the connection named `name` on server i (from /connz), or -1.
static long cid_of(nats_cluster& c, size_t i, const std::string& name) {
  auto j = c.monitor(i, "/connz?limit=100000");
  auto p = j.find("\"" + name + "\"");
  if (p == std::string::npos)
    return -1;
  auto q = j.rfind("\"cid\"", p);
  return q == std::string::npos ? -1 : std::atol(j.c_str() + j.find(':', q) + 1);
}
static bool has_conn(nats_cluster& c, size_t i, const std::string& name) {
  auto j = c.monitor(i, "/connz?limit=100000", 1000ms);
  if (j.empty())
    return true; // unknown: treat as still there
  return j.find("\"" + name + "\"") != std::string::npos;
}

// ---- a: kill -9 of a subscribing client -----------------------------------------
static void bench_a() {
  nats_cluster c{3};
  natsConnection* req = connect_simple(c.url(2));
  for (auto period : {5000us, 1000us}) {
    std::vector<double> v, vdead;
    int lost = 0;
    for (int k = 0; k < 10; ++k) {
      std::string subj = "a.sub." + std::to_string(period.count()) + "." + std::to_string(k);
      child ch;
      if (!start_sub_child(ch, c, 0, subj, "a-child", "-", req)) {
        std::printf("child not reachable\n");
        continue;
      }
      poller p{req};
      p.start(subj, period);
      std::this_thread::sleep_for(50ms);
      auto t = sclock::now();
      ::kill(ch.pid, SIGKILL);
      int st;
      ::waitpid(ch.pid, &st, 0);
      vdead.push_back(ms_since(t));
      ch.pid = -1;
      double d = p.wait_first(2, t, 5s);
      std::this_thread::sleep_for(300ms);
      p.stop();
      auto cnt = p.counts(t, t + std::chrono::microseconds(static_cast<long>(d * 1000)));
      lost += cnt[0];
      if (d >= 0)
        v.push_back(d);
    }
    std::printf("[a] poll period %ld us\n", static_cast<long>(period.count()));
    summary("  kill -9 -> waitpid returns", vdead);
    summary("  kill -9 -> first no-responders on server 2", v);
    std::printf(
        "  requests sent after the kill, before the first no-responders, never answered: %d (10 kills)\n",
        lost);
  }
  natsConnection_Destroy(req);
}

// ---- b: SIGSTOP of a subscribing client -----------------------------------------
struct b_variant {
  const char* name;
  bool hb;       // 1/s heartbeat to the frozen client
  int req_ms;    // async requests to it every req_ms (0 = none while frozen)
  int flood_kib; // >0: 100 msgs/s of this size to it (write_deadline path)
};
static void bench_b_cluster(nats_server_options opts, const std::vector<b_variant>& variants, int runs,
                            std::chrono::seconds bound) {
  opts.debug = true;
  nats_cluster c{3, opts};
  std::printf("[b] server ping_interval %s ping_max %d write_deadline %s %s\n", opts.ping_interval.c_str(),
              opts.ping_max, opts.write_deadline.c_str(), opts.extra.c_str());
  natsConnection* req = connect_simple(c.url(2));
  natsConnection* pub = connect_simple(c.url(1));
  static int serial = 0;
  for (auto& var : variants) {
    std::vector<double> drops, nrs;
    int not_dropped = 0, timeouts = 0, replies = 0, delaying = 0, stale = 0, slow = 0;
    for (int r = 0; r < runs; ++r) {
      std::string tag = std::to_string(serial++);
      std::string subj = "b.req." + tag, hb = "b.hb." + tag, name = "frozen-b-" + tag;
      child ch;
      if (!start_sub_child(ch, c, 0, subj, name, hb, req)) {
        std::printf("child not reachable\n");
        continue;
      }
      long cid = cid_of(c, 0, name);
      auto log_before = c.log(0).size();
      std::atomic<bool> stop_hb{false};
      std::thread hb_thread;
      if (var.hb || var.flood_kib > 0)
        hb_thread = std::thread{[&] {
          std::string payload(var.flood_kib > 0 ? var.flood_kib * 1024 : 16, 'h');
          auto period = var.flood_kib > 0 ? 10ms : 1000ms;
          auto next = sclock::now();
          while (!stop_hb) {
            natsConnection_Publish(pub, hb.c_str(), payload.data(), static_cast<int>(payload.size()));
            next += period;
            while (!stop_hb && sclock::now() < next)
              std::this_thread::sleep_for(std::min<sclock::duration>(next - sclock::now(), 20ms));
          }
        }};
      std::this_thread::sleep_for(1500ms); // steady state
      poller p{req};
      auto t = sclock::now();
      ::kill(ch.pid, SIGSTOP);
      if (var.req_ms > 0)
        p.start(subj, std::chrono::milliseconds(var.req_ms));
      double drop = -1;
      while (ms_since(t) < std::chrono::duration<double, std::milli>(bound).count()) {
        if (!has_conn(c, 0, name)) {
          drop = ms_since(t);
          break;
        }
        std::this_thread::sleep_for(20ms);
      }
      if (var.req_ms == 0)
        p.start(subj, 5ms); // after the drop (or the bound): are there no responders?
      double nr = p.wait_first(2, t, 3s);
      p.stop();
      auto cnt = p.counts(t, sclock::now());
      stop_hb = true;
      if (hb_thread.joinable())
        hb_thread.join();
      auto lg = c.log(0).substr(log_before);
      std::string cidtag = "cid:" + std::to_string(cid) + " - ";
      int dl = 0, stl = 0, sl = 0;
      std::istringstream ls{lg};
      std::string line;
      while (std::getline(ls, line)) {
        if (line.find(cidtag) == std::string::npos)
          continue;
        if (line.find("Delaying PING") != std::string::npos)
          ++dl;
        if (line.find("Stale Client Connection") != std::string::npos)
          ++stl;
        if (line.find("Slow Consumer") != std::string::npos)
          ++sl;
      }
      delaying += dl;
      stale += stl;
      slow += sl;
      if (drop >= 0)
        drops.push_back(drop);
      else
        ++not_dropped;
      if (nr >= 0)
        nrs.push_back(nr);
      timeouts += cnt[0];
      replies += cnt[1];
      if (r == 0) { // a sample of the log lines for this client
        std::istringstream ls2{lg};
        int shown = 0;
        while (std::getline(ls2, line) && shown < 6)
          if (line.find(cidtag) != std::string::npos &&
              (line.find("PING") != std::string::npos || line.find("Stale") != std::string::npos ||
               line.find("Slow") != std::string::npos || line.find("closed") != std::string::npos)) {
            std::printf("    log: %s\n", line.c_str());
            ++shown;
          }
      }
      ch.reap();
    }
    std::printf("  variant %-55s runs=%d dropped=%zu not-dropped-within-%llds=%d\n", var.name, runs,
                drops.size(), static_cast<long long>(bound.count()), not_dropped);
    summary("    SIGSTOP -> client gone from server 0 /connz", drops);
    summary("    SIGSTOP -> first no-responders on server 2", nrs);
    std::printf("    requests to it unanswered: %d, answered: %d; log (cid): 'Delaying PING' %d, 'Stale "
                "Client Connection' %d, 'Slow Consumer' %d\n",
                timeouts, replies, delaying, stale, slow);
    std::fflush(stdout);
  }
  natsConnection_Destroy(pub);
  natsConnection_Destroy(req);
}
static void bench_b(const std::string& which) {
  nats_server_options o; // 1s / 2 / 2s
  if (which == "" || which == "1")
    bench_b_cluster(o,
                    {{"idle (nothing sent to it)", false, 0, 0},
                     {"heartbeat 1/s only", true, 0, 0},
                     {"requests every 5 ms only", false, 5, 0},
                     {"heartbeat 1/s + requests every 5 ms", true, 5, 0}},
                    3, 20s);
  if (which == "" || which == "2") {
    nats_server_options o2;
    o2.ping_interval = "500ms";
    bench_b_cluster(o2,
                    {{"heartbeat 1/s only", true, 0, 0},
                     {"requests every 200 ms only", false, 200, 0},
                     {"requests every 5 ms only", false, 5, 0}},
                    3, 20s);
  }
  if (which == "" || which == "3") {
    bench_b_cluster(o, {{"flood 64 KiB x 100/s (6.4 MB/s) + requests 5 ms", false, 5, 64}}, 3, 30s);
    nats_server_options o3;
    o3.extra = "max_pending: 1048576";
    bench_b_cluster(o3,
                    {{"flood 64 KiB x 100/s (6.4 MB/s) + requests 5 ms", false, 5, 64},
                     {"flood 16 KiB x 100/s (1.6 MB/s) + requests 5 ms", false, 5, 16}},
                    3, 30s);
  }
}

// ---- c: SIGSTOP of a nats-server -------------------------------------------------
struct conn_events {
  std::mutex m;
  std::vector<std::pair<std::string, sclock::time_point>> ev;
  void add(const char* what) {
    std::lock_guard<std::mutex> l{m};
    ev.emplace_back(what, sclock::now());
  }
  double first(const std::string& what, sclock::time_point t) {
    std::lock_guard<std::mutex> l{m};
    for (auto& [w, at] : ev)
      if (w == what && at >= t)
        return std::chrono::duration<double, std::milli>(at - t).count();
    return -1;
  }
  std::string list(sclock::time_point t) {
    std::lock_guard<std::mutex> l{m};
    std::string s;
    for (auto& [w, at] : ev)
      if (at >= t) {
        char b[64];
        std::snprintf(b, sizeof b, "%s@%.0fms ", w.c_str(),
                      std::chrono::duration<double, std::milli>(at - t).count());
        s += b;
      }
    return s;
  }
};
static void cb_disc(natsConnection*, void* c) {
  static_cast<conn_events*>(c)->add("disconnected");
}
static void cb_reco(natsConnection*, void* c) {
  static_cast<conn_events*>(c)->add("reconnected");
}
static void cb_closed(natsConnection*, void* c) {
  static_cast<conn_events*>(c)->add("closed");
}
static void cb_connected(natsConnection*, void* c) {
  static_cast<conn_events*>(c)->add("connected");
}
static void cb_err(natsConnection*, natsSubscription*, natsStatus s, void* c) {
  static_cast<conn_events*>(c)->add((std::string("error:") + natsStatus_GetText(s)).c_str());
}

static natsConnection* connect_watched(const std::vector<std::string>& urls, conn_events& ev, int ping_ms,
                                       int maxpings, bool global, natsStatus* st = nullptr,
                                       bool retry_failed = false) {
  natsOptions* o = nullptr;
  CHECK_NATS(natsOptions_Create(&o));
  std::vector<const char*> u;
  for (auto& s : urls)
    u.push_back(s.c_str());
  CHECK_NATS(natsOptions_SetServers(o, u.data(), static_cast<int>(u.size())));
  CHECK_NATS(natsOptions_SetNoRandomize(o, true));
  CHECK_NATS(natsOptions_SetPingInterval(o, ping_ms));
  CHECK_NATS(natsOptions_SetMaxPingsOut(o, maxpings));
  CHECK_NATS(natsOptions_SetReconnectWait(o, 100));
  CHECK_NATS(natsOptions_SetReconnectJitter(o, 0, 0));
  CHECK_NATS(natsOptions_SetMaxReconnect(o, 1000));
  CHECK_NATS(natsOptions_SetTimeout(o, 1000));
  CHECK_NATS(natsOptions_SetSendAsap(o, true));
  CHECK_NATS(natsOptions_UseGlobalMessageDelivery(o, global));
  CHECK_NATS(natsOptions_SetDisconnectedCB(o, cb_disc, &ev));
  CHECK_NATS(natsOptions_SetReconnectedCB(o, cb_reco, &ev));
  CHECK_NATS(natsOptions_SetClosedCB(o, cb_closed, &ev));
  CHECK_NATS(natsOptions_SetErrorHandler(o, cb_err, &ev));
  if (retry_failed)
    CHECK_NATS(natsOptions_SetRetryOnFailedConnect(o, true, cb_connected, &ev));
  natsConnection* nc = nullptr;
  natsStatus s = natsConnection_Connect(&nc, o);
  natsOptions_Destroy(o);
  if (st)
    *st = s;
  else
    CHECK_NATS(s);
  return nc;
}

static void bench_c(int max_traffic = 2) {
  nats_server_options opts;
  opts.debug = true;
  nats_cluster c{3, opts};
  natsConnection* req = connect_simple(c.url(2));
  natsConnection* pub1 = connect_simple(c.url(1));
  for (int traffic = 0; traffic < max_traffic; ++traffic) {
    std::vector<double> disc, reco, back, r1, r2;
    int r1_never = 0, r2_never = 0;
    for (int run = 0; run < 3; ++run) {
      conn_events& ev = *new conn_events; // leaked on purpose (closed CB runs after Destroy)
      natsConnection* x = connect_watched({c.url(0), c.url(1), c.url(2)}, ev, 1000, 2, false);
      std::string subj = "c.x." + std::to_string(traffic) + "." + std::to_string(run);
      natsSubscription* xs = nullptr;
      CHECK_NATS(natsConnection_Subscribe(&xs, x, subj.c_str(), on_echo, nullptr));
      CHECK_NATS(natsConnection_Flush(x));
      wait_reply(req, subj, 3s);
      // traffic variant: a subscriber Y on server 0 for c.load, published on server 1 at 100/s,
      // and requests from server 2 to x every 5 ms all along
      natsConnection* y = nullptr;
      natsSubscription* ys = nullptr;
      std::atomic<bool> stop{false};
      std::thread load;
      poller p{req};
      if (traffic) {
        y = connect_simple(c.url(0));
        CHECK_NATS(natsConnection_Subscribe(&ys, y, "c.load", on_drop, nullptr));
        CHECK_NATS(natsConnection_Flush(y));
        load = std::thread{[&] {
          while (!stop) {
            natsConnection_PublishString(pub1, "c.load", "x");
            std::this_thread::sleep_for(10ms);
          }
        }};
        p.start(subj, 5ms);
        std::this_thread::sleep_for(1500ms);
      }
      auto t = sclock::now();
      c.freeze(0);
      double d1 = -1, d2 = -1;
      while (ms_since(t) < 20000 && (d1 < 0 || d2 < 0 || ev.first("reconnected", t) < 0)) {
        if (d1 < 0 && c.num_routes(1) == 1)
          d1 = ms_since(t);
        if (d2 < 0 && c.num_routes(2) == 1)
          d2 = ms_since(t);
        std::this_thread::sleep_for(20ms);
      }
      if (!traffic)
        p.start(subj, 5ms);
      double ok = p.wait_first(
          1, t + std::chrono::milliseconds(static_cast<long>(std::max(0.0, ev.first("reconnected", t)))), 3s);
      double rc = ev.first("reconnected", t);
      p.stop();
      char url[256] = "";
      natsConnection_GetConnectedUrl(x, url, sizeof url);
      std::printf("  run %d traffic=%d: events %s; x now on %s; routes dropped on s1 %.0f ms, s2 %.0f ms; "
                  "first reply via new server %.0f ms after reconnect\n",
                  run, traffic, ev.list(t).c_str(), url, d1, d2, ok);
      if (ev.first("disconnected", t) >= 0)
        disc.push_back(ev.first("disconnected", t));
      if (rc >= 0)
        reco.push_back(rc);
      if (ok >= 0 && rc >= 0)
        back.push_back(ok + rc);
      if (d1 >= 0)
        r1.push_back(d1);
      else
        ++r1_never;
      if (d2 >= 0)
        r2.push_back(d2);
      else
        ++r2_never;
      stop = true;
      if (load.joinable())
        load.join();
      if (traffic && run == 0) {
        auto lg = c.log(1);
        std::istringstream ls{lg};
        std::string line;
        std::vector<std::string> lines;
        while (std::getline(ls, line))
          if (line.find("rid:") != std::string::npos &&
              (line.find("PING") != std::string::npos || line.find("Stale") != std::string::npos))
            lines.push_back(line);
        for (size_t i = lines.size() > 6 ? lines.size() - 6 : 0; i < lines.size(); ++i)
          std::printf("    s1 log: %s\n", lines[i].c_str());
      }
      c.thaw(0);
      if (ys)
        natsSubscription_Destroy(ys);
      if (y)
        natsConnection_Destroy(y);
      natsSubscription_Destroy(xs);
      natsConnection_Destroy(x);
      for (size_t i = 0; i < 3; ++i)
        c.wait_routes(i, 2, 10s);
      std::printf("    after thaw: routes %d %d %d\n", c.num_routes(0), c.num_routes(1), c.num_routes(2));
    }
    std::printf("[c] traffic=%d (0: idle; 1: 100 msg/s over route 1->0 and requests 2->x every 5 ms)\n",
                traffic);
    summary("  SIGSTOP server 0 -> client disconnected CB", disc);
    summary("  SIGSTOP server 0 -> client reconnected CB", reco);
    summary("  SIGSTOP server 0 -> first reply from client via its new server", back);
    summary("  SIGSTOP server 0 -> server 1 drops the route", r1);
    summary("  SIGSTOP server 0 -> server 2 drops the route", r2);
    std::printf("  routes not dropped within 20 s: s1 %d, s2 %d\n", r1_never, r2_never);
  }
  natsConnection_Destroy(pub1);
  natsConnection_Destroy(req);
}

// ---- d: interest propagation -------------------------------------------------------
static void bench_d() {
  nats_cluster c{3};
  natsConnection* s0 = connect_simple(c.url(0));
  natsConnection* r2 = connect_simple(c.url(2));
  std::vector<double> v, vu;
  int lost_total = 0;
  for (int k = 0; k < 200; ++k) {
    std::string subj = "d.prop." + std::to_string(k);
    natsSubscription* sub = nullptr;
    auto t = sclock::now();
    CHECK_NATS(natsConnection_Subscribe(&sub, s0, subj.c_str(), on_echo, nullptr));
    bool ok = false;
    while (ms_since(t) < 5000) {
      natsStatus s = request_once(r2, subj.c_str(), 1000);
      if (s == NATS_OK) {
        ok = true;
        break;
      }
    }
    if (ok)
      v.push_back(ms_since(t));
    // unsubscribe: async requests every 1 ms from s2 until the first no-responders
    {
      poller p{r2};
      p.start(subj, 1ms);
      std::this_thread::sleep_for(5ms);
      t = sclock::now();
      natsSubscription_Unsubscribe(sub);
      double d = p.wait_first(2, t, 5s);
      p.stop();
      auto cn = p.counts(t, t + std::chrono::microseconds(static_cast<long>(d * 1000)));
      lost_total += cn[0];
      if (d >= 0)
        vu.push_back(d);
    }
    natsSubscription_Destroy(sub);
  }
  summary("[d] subscribe on s0 -> first reply to a request from s2 (200 subjects)", v);
  summary("[d] unsubscribe on s0 -> first no-responders on s2 (async requests every 1 ms)", vu);
  std::printf("    requests sent after the unsubscribe, before the first no-responders, never answered: %d "
              "(200 unsubscribes)\n",
              lost_total);
  natsConnection_Destroy(s0);
  natsConnection_Destroy(r2);
}

// ---- e: libnats reconnect -------------------------------------------------------------
struct counter_cb {
  std::atomic<int> n{0};
  static void on(natsConnection*, natsSubscription*, natsMsg* m, void* c) {
    static_cast<counter_cb*>(c)->n++;
    natsMsg_Destroy(m);
  }
  bool wait(int want, std::chrono::milliseconds to) {
    auto d = sclock::now() + to;
    while (sclock::now() < d) {
      if (n >= want)
        return true;
      std::this_thread::sleep_for(2ms);
    }
    return n >= want;
  }
};
static bool wait_event(conn_events& ev, const char* what, sclock::time_point t,
                       std::chrono::milliseconds to) {
  auto d = sclock::now() + to;
  while (sclock::now() < d) {
    if (ev.first(what, t) >= 0)
      return true;
    std::this_thread::sleep_for(2ms);
  }
  return false;
}
static void bench_e() {
  for (int graceful = 0; graceful < 2; ++graceful) {
    nats_cluster c{1};
    conn_events& ev = *new conn_events;
    conn_events& evp = *new conn_events; // leaked: libnats calls the closed CB after Destroy returns
    natsConnection* x = connect_watched({c.url(0)}, ev, 1000, 2, true);
    natsConnection* p = connect_watched({c.url(0)}, evp, 1000, 2, false);
    counter_cb cnt;
    natsSubscription* s = nullptr;
    CHECK_NATS(natsConnection_Subscribe(&s, x, "e.one", counter_cb::on, &cnt));
    CHECK_NATS(natsConnection_Flush(x));
    natsConnection_PublishString(p, "e.one", "1");
    natsConnection_Flush(p);
    bool before = cnt.wait(1, 2s);
    auto t = sclock::now();
    graceful ? c.stop(0) : c.kill(0);
    bool disc = wait_event(ev, "disconnected", t, 5s);
    // while disconnected: a new subscription and a publish
    counter_cb cnt2;
    natsSubscription* s2 = nullptr;
    natsStatus sub_st = natsConnection_Subscribe(&s2, x, "e.two", counter_cb::on, &cnt2);
    natsStatus pub_st = natsConnection_PublishString(x, "e.one", "buffered-by-x");
    std::this_thread::sleep_for(300ms);
    auto t_restart = sclock::now();
    c.restart(0);
    double restart_ms = ms_since(t_restart);
    bool reco = wait_event(ev, "reconnected", t_restart, 5s);
    wait_event(evp, "reconnected", t_restart, 5s);
    int seen_before = cnt.n;
    natsConnection_PublishString(p, "e.one", "2");
    natsConnection_PublishString(p, "e.two", "2");
    natsConnection_Flush(p);
    bool old_ok = cnt.wait(seen_before + 1, 2s);
    bool new_ok = cnt2.wait(1, 2s);
    std::this_thread::sleep_for(200ms);
    std::printf("[e] %s, single server, x: async sub, global delivery, reconnect wait 100 ms\n",
                graceful ? "stop (SIGTERM)" : "kill (SIGKILL)");
    std::printf("    sub works before: %d; disconnected CB: %d (%.1f ms after the signal)\n", before, disc,
                ev.first("disconnected", t));
    std::printf("    while disconnected: natsConnection_Subscribe(e.two) -> %s; "
                "natsConnection_Publish(e.one) -> %s\n",
                natsStatus_GetText(sub_st), natsStatus_GetText(pub_st));
    std::printf("    reconnected CB: %d (%.1f ms after restart() began; restart() took %.1f ms)\n", reco,
                ev.first("reconnected", t_restart), restart_ms);
    std::printf("    after reconnect: old sub e.one receives: %d; sub made while disconnected (e.two) "
                "receives: %d; e.one total %d (1 before + buffered publish from x + 1 after = 3 if the "
                "buffered publish was delivered)\n",
                old_ok, new_ok, cnt.n.load());
    std::printf("    x events: %s\n", ev.list(t).c_str());
    natsSubscription_Destroy(s);
    if (s2)
      natsSubscription_Destroy(s2);
    auto tc = sclock::now();
    natsConnection_Destroy(x);
    std::this_thread::sleep_for(100ms);
    std::printf("    after natsConnection_Destroy: %s\n", ev.list(tc).c_str());
    natsConnection_Destroy(p);
  }
  { // RetryOnFailedConnect with the server down at start
    nats_cluster c{1};
    c.stop(0);
    conn_events& ev = *new conn_events;
    conn_events& evp = *new conn_events; // leaked: libnats calls the closed CB after Destroy returns
    natsStatus st;
    auto t = sclock::now();
    natsConnection* x = connect_watched({c.url(0)}, ev, 1000, 2, true, &st, true);
    counter_cb cnt;
    natsSubscription* s = nullptr;
    natsStatus sub_st = natsConnection_Subscribe(&s, x, "e.early", counter_cb::on, &cnt);
    natsStatus pub_st = natsConnection_PublishString(x, "e.early", "from-x-before-connect");
    std::this_thread::sleep_for(500ms);
    c.restart(0);
    bool conn = wait_event(ev, "connected", t, 5s);
    natsConnection* p = connect_watched({c.url(0)}, evp, 1000, 2, false);
    natsConnection_Flush(x);
    int n0 = cnt.n;
    natsConnection_PublishString(p, "e.early", "after");
    natsConnection_Flush(p);
    bool ok = cnt.wait(n0 + 1, 2s);
    std::printf("[e] RetryOnFailedConnect, server down at start: connect -> %s; subscribe -> %s; publish -> "
                "%s; connected CB %d; "
                "msgs before p published %d; sub works after connect %d; events %s\n",
                natsStatus_GetText(st), natsStatus_GetText(sub_st), natsStatus_GetText(pub_st), conn, n0, ok,
                ev.list(t).c_str());
    if (s)
      natsSubscription_Destroy(s);
    natsConnection_Destroy(x);
    natsConnection_Destroy(p);
  }
  { // cluster: kill the client's server, it reconnects to another, subs resent
    nats_cluster c{3};
    natsConnection* req = connect_simple(c.url(2));
    std::vector<double> reco, back;
    for (int run = 0; run < 5; ++run) {
      conn_events& ev = *new conn_events; // leaked on purpose (closed CB runs after Destroy)
      natsConnection* x = connect_watched({c.url(0), c.url(1), c.url(2)}, ev, 1000, 2, true);
      std::string subj = "e.cl." + std::to_string(run);
      natsSubscription* s = nullptr;
      CHECK_NATS(natsConnection_Subscribe(&s, x, subj.c_str(), on_echo, nullptr));
      CHECK_NATS(natsConnection_Flush(x));
      wait_reply(req, subj, 3s);
      poller p{req};
      p.start(subj, 1ms);
      std::this_thread::sleep_for(50ms);
      auto t = sclock::now();
      c.kill(0);
      wait_event(ev, "reconnected", t, 5s);
      double rc = ev.first("reconnected", t);
      double ok =
          p.wait_first(1, t + std::chrono::microseconds(static_cast<long>(std::max(0.0, rc) * 1000)), 3s);
      p.stop();
      auto cn = p.counts(t, t + std::chrono::microseconds(static_cast<long>((rc + ok) * 1000)));
      std::printf("  cluster run %d: events %s; first reply %.1f ms after kill; between: %d no-responders, "
                  "%d unanswered\n",
                  run, ev.list(t).c_str(), rc + ok, cn[2], cn[0]);
      if (rc >= 0)
        reco.push_back(rc);
      if (ok >= 0)
        back.push_back(rc + ok);
      natsSubscription_Destroy(s);
      natsConnection_Destroy(x);
      c.restart(0);
    }
    summary("[e] cluster: kill client's server -> reconnected CB (x lists all 3 urls)", reco);
    summary("[e] cluster: kill client's server -> first reply to x's sub via new server", back);
    natsConnection_Destroy(req);
  }
}

// ---- f: 50,000 subscriptions --------------------------------------------------------
static long subsz(nats_cluster& c, size_t i) {
  return warren_test::nats_detail::json_int(c.monitor(i, "/subsz"), "num_subscriptions");
}
static void bench_f() {
  const int N = 50000;
  nats_cluster c{3};
  natsOptions* o = nullptr;
  CHECK_NATS(natsOptions_Create(&o));
  CHECK_NATS(natsOptions_SetURL(o, c.url(0).c_str()));
  CHECK_NATS(natsOptions_UseGlobalMessageDelivery(o, true));
  natsConnection* nc = nullptr;
  CHECK_NATS(natsConnection_Connect(&nc, o));
  natsOptions_Destroy(o);
  counter_cb cnt;
  // warm up the allocator paths with one sub
  natsSubscription* w = nullptr;
  CHECK_NATS(natsConnection_Subscribe(&w, nc, "warren.warmup", counter_cb::on, &cnt));
  CHECK_NATS(natsConnection_Flush(nc));
  std::this_thread::sleep_for(500ms);
  long base0 = subsz(c, 0), base2 = subsz(c, 2);
  long rss_c0 = vmrss_kb(0), rss_s0 = vmrss_kb(c.pid(0)), rss_s2 = vmrss_kb(c.pid(2));
  std::vector<natsSubscription*> subs(N);
  auto t = sclock::now();
  std::atomic<double> at0{-1}, at2{-1}, at1{-1};
  std::thread watch{[&] { // /subsz on s0, s1, s2 every 5 ms from the first subscribe on
    while (ms_since(t) < 60000 && (at0 < 0 || at2 < 0 || at1 < 0)) {
      if (at0 < 0 && subsz(c, 0) >= base0 + N)
        at0 = ms_since(t);
      if (at1 < 0 && subsz(c, 1) >= base2 + N)
        at1 = ms_since(t);
      if (at2 < 0 && subsz(c, 2) >= base2 + N)
        at2 = ms_since(t);
      std::this_thread::sleep_for(5ms);
    }
  }};
  for (int i = 0; i < N; ++i) {
    std::string subj = "warren.dev." + std::to_string(i);
    CHECK_NATS(natsConnection_Subscribe(&subs[i], nc, subj.c_str(), counter_cb::on, &cnt));
  }
  double t_sub = ms_since(t);
  CHECK_NATS(natsConnection_FlushTimeout(nc, 30000));
  double t_flush = ms_since(t);
  watch.join();
  double t0 = at0, t2 = at2, t1 = at1;
  std::this_thread::sleep_for(1s);
  long rss_c1 = vmrss_kb(0), rss_s1 = vmrss_kb(c.pid(0)), rss_s21 = vmrss_kb(c.pid(2));
  std::printf("[f] %d subscriptions warren.dev.<i> on one connection to s0 (global delivery)\n", N);
  std::printf("    natsConnection_Subscribe x %d: %.0f ms (%.0f subs/s); + flush (server has processed "
              "them): %.0f ms (%.0f subs/s)\n",
              N, t_sub, N / t_sub * 1000, t_flush, N / t_flush * 1000);
  std::printf("    /subsz (polled every 5 ms) on s0 reaches +%d at %.0f ms, on s1 at %.0f ms, on s2 at %.0f "
              "ms after the first subscribe\n",
              N, t0, t1, t2);
  std::printf("    client RSS %ld -> %ld kB: %.0f bytes/sub\n", rss_c0, rss_c1,
              (rss_c1 - rss_c0) * 1024.0 / N);
  std::printf("    nats-server s0 RSS %ld -> %ld kB: %.0f bytes/sub; s2 (route interest) %ld -> %ld kB: %.0f "
              "bytes/sub\n",
              rss_s0, rss_s1, (rss_s1 - rss_s0) * 1024.0 / N, rss_s2, rss_s21,
              (rss_s21 - rss_s2) * 1024.0 / N);
  // a message to one of them from s2
  natsConnection* p = connect_simple(c.url(2));
  int n0 = cnt.n;
  natsConnection_PublishString(p, "warren.dev.31337", "x");
  natsConnection_Flush(p);
  std::printf("    delivery to warren.dev.31337 from s2: %d\n", cnt.wait(n0 + 1, 2s));
  t = sclock::now();
  for (auto* s : subs)
    natsSubscription_Unsubscribe(s);
  CHECK_NATS(natsConnection_FlushTimeout(nc, 30000));
  double u_flush = ms_since(t);
  double u2 = -1;
  while (ms_since(t) < 60000) {
    if (subsz(c, 2) <= base2) {
      u2 = ms_since(t);
      break;
    }
    std::this_thread::sleep_for(5ms);
  }
  std::printf("    unsubscribe all: %.0f ms incl. flush; s2 back to baseline at %.0f ms\n", u_flush, u2);
  for (auto* s : subs)
    natsSubscription_Destroy(s);
  natsSubscription_Destroy(w);
  natsConnection_Destroy(p);
  natsConnection_Destroy(nc);
}

// ---- g: request/reply throughput across a route -----------------------------------
struct rr {
  natsConnection* nc = nullptr;
  natsSubscription* sub = nullptr;
  std::string prefix;
  std::vector<int64_t> sent_ns;
  std::vector<float> lat_us;
  std::atomic<size_t> got{0};
  std::counting_semaphore<1 << 20> window{0};
  static int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(sclock::now().time_since_epoch()).count();
  }
  static void on(natsConnection*, natsSubscription*, natsMsg* m, void* cl) {
    auto* r = static_cast<rr*>(cl);
    int64_t now = now_ns();
    const char* s = natsMsg_GetSubject(m);
    size_t seq = std::strtoull(std::strrchr(s, '.') + 1, nullptr, 10);
    if (seq < r->sent_ns.size()) {
      size_t k = r->got.fetch_add(1);
      if (k < r->lat_us.size())
        r->lat_us[k] = static_cast<float>((now - r->sent_ns[seq]) / 1000.0);
    }
    r->window.release();
    natsMsg_Destroy(m);
  }
};
static void bench_g() {
  nats_cluster c{3};
  for (int asap = 0; asap < 2; ++asap) {
    child ech;
    spawn_child(ech, {"echo", c.url(0), "g.echo", std::to_string(asap)});
    if (!ech.wait_line("READY", 5s)) {
      std::printf("echo child failed\n");
      return;
    }
    natsConnection* probe = connect_simple(c.url(2));
    wait_reply(probe, "g.echo", 3s);
    natsConnection_Destroy(probe);
    auto run = [&](const char* label, int window, double rate, double seconds) {
      rr r;
      natsOptions* o = nullptr;
      CHECK_NATS(natsOptions_Create(&o));
      CHECK_NATS(natsOptions_SetURL(o, c.url(2).c_str()));
      CHECK_NATS(natsOptions_SetSendAsap(o, asap == 1));
      CHECK_NATS(natsConnection_Connect(&r.nc, o));
      natsOptions_Destroy(o);
      r.prefix = "_RR." + std::to_string(::getpid()) + "." + std::to_string(window);
      CHECK_NATS(natsConnection_Subscribe(&r.sub, r.nc, (r.prefix + ".*").c_str(), rr::on, &r));
      natsSubscription_SetPendingLimits(r.sub, -1, -1);
      CHECK_NATS(natsConnection_Flush(r.nc));
      size_t max_msgs = static_cast<size_t>(rate > 0 ? rate * seconds * 1.1 + 10 : 3000000);
      r.sent_ns.assign(max_msgs, 0);
      r.lat_us.assign(max_msgs, 0);
      r.window.release(window);
      char payload[64];
      std::memset(payload, 'p', sizeof payload);
      std::string reply;
      auto t0 = sclock::now();
      auto end = t0 + std::chrono::microseconds(static_cast<long>(seconds * 1e6));
      size_t seq = 0;
      double interval_ns = rate > 0 ? 1e9 / rate : 0;
      while (sclock::now() < end && seq < max_msgs) {
        if (rate > 0) {
          auto due = t0 + std::chrono::nanoseconds(static_cast<long>(seq * interval_ns));
          if (sclock::now() < due) {
            std::this_thread::sleep_until(due);
            continue;
          }
        }
        if (!r.window.try_acquire_for(100ms))
          continue;
        reply = r.prefix + "." + std::to_string(seq);
        r.sent_ns[seq] = rr::now_ns();
        natsConnection_PublishRequest(r.nc, "g.echo", reply.c_str(), payload, sizeof payload);
        ++seq;
      }
      double el = ms_since(t0) / 1000.0;
      auto drain = sclock::now() + 3s;
      while (r.got < seq && sclock::now() < drain)
        std::this_thread::sleep_for(1ms);
      size_t n = std::min<size_t>(r.got, r.lat_us.size());
      std::vector<double> lat(r.lat_us.begin(), r.lat_us.begin() + n);
      std::printf("  [g] asap=%d %-34s sent %zu in %.2f s = %.0f req/s; replies %zu; latency p50 %.0f us p99 "
                  "%.0f us max %.0f us\n",
                  asap, label, seq, el, seq / el, r.got.load(), pct(lat, 50), pct(lat, 99),
                  lat.empty() ? 0 : *std::max_element(lat.begin(), lat.end()));
      std::fflush(stdout);
      natsSubscription_Unsubscribe(r.sub);
      natsSubscription_Destroy(r.sub);
      natsConnection_Destroy(r.nc);
    };
    run("1 in flight (closed loop)", 1, 0, 3);
    run("window 100", 100, 0, 5);
    run("window 1000", 1000, 0, 5);
    run("offered 10,000/s (window 10000)", 10000, 10000, 5);
    run("offered 1,000/s", 1000, 1000, 3);
    ech.reap();
  }
}

int main(int argc, char** argv) {
  if (argc >= 6 && std::string(argv[1]) == "sub")
    return child_sub(argv + 2);
  if (argc >= 5 && std::string(argv[1]) == "echo")
    return child_echo(argv + 2);
  std::string what = argc > 1 ? argv[1] : "";
  std::string sub = argc > 2 ? argv[2] : "";
  std::printf("== %s, nats-server 2.9.10, libnats %s, load %s\n", what.c_str(), nats_GetVersion(),
              warren_test::nats_detail::read_file("/proc/loadavg").c_str());
  if (what == "a")
    bench_a();
  else if (what == "b")
    bench_b(sub);
  else if (what == "c")
    bench_c(sub == "idle" ? 1 : 2);
  else if (what == "d")
    bench_d();
  else if (what == "e")
    bench_e();
  else if (what == "f")
    bench_f();
  else if (what == "g")
    bench_g();
  else {
    std::fprintf(stderr, "usage: engine a|b [1|2|3]|c|d|e|f|g\n");
    return 1;
  }
  nats_Close();
  return 0;
}
