// Throwaway self-test of tests/support/warren_test/nats_cluster.hpp with libnats.
#include "common.hpp"
#include <cassert>
#include <iostream>

static int failures = 0;
#define EXPECT(cond)                                                                                         \
  do {                                                                                                       \
    if (!(cond)) {                                                                                           \
      ++failures;                                                                                            \
      std::printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                                            \
    } else                                                                                                   \
      std::printf("ok   %s\n", #cond);                                                                       \
    std::fflush(stdout);                                                                                     \
  } while (0)

static void on_echo(natsConnection* nc, natsSubscription*, natsMsg* m, void*) {
  if (natsMsg_GetReply(m))
    natsConnection_PublishString(nc, natsMsg_GetReply(m), "pong");
  natsMsg_Destroy(m);
}

static int child_sub(const char* url, const char* subj) {
  natsConnection* nc = connect_simple(url);
  natsSubscription* sub = nullptr;
  CHECK_NATS(natsConnection_Subscribe(&sub, nc, subj, on_echo, nullptr));
  CHECK_NATS(natsConnection_Flush(nc));
  std::printf("READY\n");
  std::fflush(stdout);
  std::this_thread::sleep_for(120s);
  return 0;
}

static bool wait_reply(natsConnection* nc, const char* subj, std::chrono::milliseconds timeout) {
  auto deadline = sclock::now() + timeout;
  while (sclock::now() < deadline) {
    if (request_once(nc, subj, 200) == NATS_OK)
      return true;
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

int main(int argc, char** argv) {
  if (argc >= 4 && std::string(argv[1]) == "sub")
    return child_sub(argv[2], argv[3]);
  {
    warren_test::nats_cluster c{3};
    for (size_t i = 0; i < 3; ++i)
      std::printf("server %zu: %s cluster %u http %u pid %d routes %d\n", i, c.url(i).c_str(),
                  c.cluster_port(i), c.http_port(i), c.pid(i), c.num_routes(i));
    std::printf("urls: %s\n", c.urls().c_str());
    for (size_t i = 0; i < 3; ++i)
      EXPECT(c.num_routes(i) == 2);
    EXPECT(c.port(0) >= 20000 && c.port(0) < 30000);
    EXPECT(c.config(0).find("cluster {") != std::string::npos);
    EXPECT(c.config(0).find("jetstream") == std::string::npos ||
           c.config(0).find("# no jetstream") != std::string::npos);
    EXPECT(c.log(0).find("Server is ready") != std::string::npos);

    natsConnection* a = connect_simple(c.url(0));
    natsConnection* b = connect_simple(c.url(2));
    natsSubscription* sub = nullptr;
    CHECK_NATS(natsConnection_Subscribe(&sub, a, "st.echo", on_echo, nullptr));
    CHECK_NATS(natsConnection_Flush(a));
    EXPECT(wait_reply(b, "st.echo", 2s));
    {
      natsMsg* r = nullptr;
      natsStatus s = natsConnection_RequestString(&r, b, "st.echo", "ping", 1000);
      EXPECT(s == NATS_OK && r && std::string(natsMsg_GetData(r), natsMsg_GetDataLength(r)) == "pong");
      if (r)
        natsMsg_Destroy(r);
    }
    EXPECT(request_once(b, "st.nobody", 1000) == NATS_NO_RESPONDERS);
    { // the 503 status message itself: a sync subscription's NextMsg turns it into
      // NATS_NO_RESPONDERS, an async one gets the message (natsMsg_IsNoResponders)
      natsSubscription* inbox = nullptr;
      CHECK_NATS(natsConnection_SubscribeSync(&inbox, b, "st.inbox.1"));
      CHECK_NATS(natsConnection_PublishRequestString(b, "st.nobody", "st.inbox.1", "x"));
      natsMsg* m = nullptr;
      EXPECT(natsSubscription_NextMsg(&m, inbox, 1000) == NATS_NO_RESPONDERS);
      natsSubscription_Destroy(inbox);
      poller p{b};
      p.start("st.nobody", 5ms);
      auto t = sclock::now();
      double d = p.wait_first(2, t, 1s);
      p.stop();
      std::printf("async no-responders message after %.3f ms\n", d);
      EXPECT(d >= 0);
    }
    // kill(0): a's server dies, a does not reconnect; b on server 2 sees no responders.
    auto t0 = sclock::now();
    c.kill(0);
    natsStatus s = NATS_OK;
    while (ms_since(t0) < 5000 && (s = request_once(b, "st.echo", 100)) != NATS_NO_RESPONDERS)
      std::this_thread::sleep_for(1ms);
    EXPECT(s == NATS_NO_RESPONDERS);
    std::printf("kill(0) server -> no responders on server 2 after %.1f ms\n", ms_since(t0));
    EXPECT(!c.running(0) && c.num_routes(1) == 1 && c.num_routes(2) == 1);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(a);

    t0 = sclock::now();
    c.restart(0);
    std::printf("restart(0) took %.1f ms\n", ms_since(t0));
    for (size_t i = 0; i < 3; ++i)
      EXPECT(c.num_routes(i) == 2);
    t0 = sclock::now();
    c.isolate(1);
    std::printf("isolate(1) took %.1f ms\n", ms_since(t0));
    EXPECT(c.isolated(1) && c.num_routes(1) == 0);
    EXPECT(c.config(1).find("cluster {") == std::string::npos);
    EXPECT(c.wait_ready(1, 1s));
    // the others notice the route is gone (graceful stop: at once)
    EXPECT(c.wait_routes(0, 1, 2s) && c.num_routes(0) == 1 && c.num_routes(2) == 1);
    { // interest does not cross: subscriber on isolated 1, requester on 2
      natsConnection* i1 = connect_simple(c.url(1));
      natsSubscription* s1 = nullptr;
      CHECK_NATS(natsConnection_Subscribe(&s1, i1, "st.iso", on_echo, nullptr));
      CHECK_NATS(natsConnection_Flush(i1));
      std::this_thread::sleep_for(200ms);
      EXPECT(request_once(b, "st.iso", 500) == NATS_NO_RESPONDERS);
      natsConnection* i1b = connect_simple(c.url(1));
      EXPECT(request_once(i1b, "st.iso", 500) == NATS_OK);
      natsConnection_Destroy(i1b);
      natsSubscription_Destroy(s1);
      natsConnection_Destroy(i1);
    }
    t0 = sclock::now();
    c.rejoin(1);
    std::printf("rejoin(1) took %.1f ms\n", ms_since(t0));
    for (size_t i = 0; i < 3; ++i)
      EXPECT(c.wait_routes(i, 2, 3s));
    c.freeze(2);
    EXPECT(c.frozen(2));
    EXPECT(!c.wait_ready(2, 700ms));
    c.thaw(2);
    EXPECT(c.wait_ready(2, 2s));
    c.stop(2);
    EXPECT(!c.running(2) && c.log(2).find("Server Exiting") != std::string::npos);
    c.restart(2);
    EXPECT(c.running(2) && c.num_routes(2) == 2);
    natsConnection_Destroy(b);

    // Child-process subscriber on server 0, kill -9, first no-responders on server 2.
    b = connect_simple(c.url(2));
    for (int mode = 0; mode < 2; ++mode) {
      std::vector<double> v, vsync;
      int lost = 0;
      for (int k = 0; k < 10; ++k) {
        std::string subj = "st.child." + std::to_string(mode) + "." + std::to_string(k);
        child ch;
        spawn_child(ch, {"sub", c.url(0), subj});
        if (!ch.wait_line("READY", 5s) || !wait_reply(b, subj.c_str(), 5s)) {
          ++failures;
          std::printf("FAIL child not reachable\n");
          continue;
        }
        if (mode == 0) { // async requests every 5 ms
          poller p{b};
          p.start(subj, 5ms);
          std::this_thread::sleep_for(50ms);
          auto t = sclock::now();
          ::kill(ch.pid, SIGKILL);
          double d = p.wait_first(2, t, 5s);
          std::this_thread::sleep_for(200ms);
          p.stop();
          auto cnt = p.counts(t, t + std::chrono::milliseconds(static_cast<long>(d)));
          lost += cnt[0];
          if (d >= 0)
            v.push_back(d);
          else {
            ++failures;
            std::printf("FAIL no no-responders within 5 s\n");
          }
        } else { // blocking natsConnection_Request (timeout 100 ms) back to back
          auto t = sclock::now();
          ::kill(ch.pid, SIGKILL);
          double d = -1;
          while (ms_since(t) < 5000)
            if (request_once(b, subj.c_str(), 100) == NATS_NO_RESPONDERS) {
              d = ms_since(t);
              break;
            }
          if (d >= 0)
            vsync.push_back(d);
          else {
            ++failures;
            std::printf("FAIL no no-responders within 5 s\n");
          }
        }
        ch.reap();
      }
      if (mode == 0) {
        summary("kill -9 subscriber (on server 0) -> no responders on server 2, async 5 ms polls", v);
        std::printf("  requests sent between kill and first no-responders that got no answer: %d\n", lost);
      } else
        summary("same, blocking requests (100 ms timeout) back to back", vsync);
    }
    natsConnection_Destroy(b);
    auto d = c.dir();
    std::printf("dir %s\n", d.c_str());
  }
  { // single server
    warren_test::nats_cluster s{1};
    EXPECT(!s.clustered() && s.config(0).find("cluster {") == std::string::npos);
    EXPECT(s.urls() == s.url(0));
    natsConnection* a = connect_simple(s.url(0));
    EXPECT(request_once(a, "x.y", 500) == NATS_NO_RESPONDERS);
    natsConnection_Destroy(a);
    EXPECT(s.num_routes(0) == 0);
  }
  { // error paths
    try {
      warren_test::nats_server_options o;
      o.extra = "this is not { valid";
      warren_test::nats_cluster bad{2, o};
      EXPECT(false);
    } catch (const std::runtime_error& e) {
      std::printf("bad config -> %s\n", std::string(e.what()).substr(0, 400).c_str());
      EXPECT(std::string(e.what()).find("exited during startup") != std::string::npos);
    }
    ::setenv("WARREN_NATS_SERVER", "/nonexistent/nats-server", 1);
    try {
      warren_test::nats_cluster bad{1};
      EXPECT(false);
    } catch (const std::runtime_error& e) {
      std::printf("missing binary -> %s\n", e.what());
      EXPECT(std::string(e.what()).find("not found") != std::string::npos);
    }
    ::unsetenv("WARREN_NATS_SERVER");
  }
  nats_Close();
  std::printf("%s (%d failures)\n", failures ? "FAILED" : "PASSED", failures);
  return failures ? 1 : 0;
}
