// The broker goes away and comes back: backpressure, no loss, reconnects.
#include "amqp_support.hpp"

#include <warren/registry.hpp>

#include <set>
#include <stop_token>
#include <thread>

using namespace amqp_test;
using warren::backend::accepted_atom;
using warren::backend::address_kind;
using warren::backend::device_batch;
using warren::backend::publish_atom;

namespace {

device_batch batch(uint64_t from, uint64_t to) {
  device_batch::builder b{"conn-o", "dev-o", to - from + 1};
  for (auto seq = from; seq <= to; ++seq)
    b.add(seq, std::nullopt, "payload-" + std::to_string(seq));
  return std::move(b).done();
}

/// Drains accepted_atom replies already in `self`'s mailbox; returns the highest.
uint64_t poll_accepted(caf::scoped_actor& self, uint64_t last, caf::timespan wait = caf::timespan{0}) {
  for (bool more = true; more;)
    self->receive(
        [&](accepted_atom, uint64_t k) {
          CHECK(k > last);
          last = k;
        },
        caf::after(wait) >> [&] { more = false; });
  return last;
}

} // namespace

TEST_CASE("with the broker down, the producer buffers up to max_buffered, then holds batches back") {
  AMQP_TEST_REQUIRE_BROKER();
  auto& b = shared_broker();
  b.stop();
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto o = test_options(b, "o1");
  o.consumers = 1;
  o.max_buffered = 20;
  running_backend top(sys, warren::amqp::backend(o, std::make_shared<fake_router>()));
  auto producer = warren::whereis(sys, o.producer_name);
  REQUIRE(producer);
  caf::scoped_actor s{sys};
  for (uint64_t seq = 1; seq <= 50; seq += 10)
    s->send(producer, publish_atom::value, batch(seq, seq + 9));
  REQUIRE(eventually([&] { return o.stats->buffered.load() == 20 && o.stats->deferred.load() == 30; }));
  CHECK(o.stats->producer_connected.load() == 0);
  CHECK(poll_accepted(s, 0) == 0); // nothing confirmed, nothing acknowledged

  b.start();
  // Reconnected by itself; everything held is published in order and accepted.
  uint64_t accepted = 0;
  REQUIRE(eventually(
      [&] {
        accepted = poll_accepted(s, accepted);
        return accepted == 50;
      },
      90s));
  CHECK(o.stats->deferred.load() == 0);
  CHECK(o.stats->buffered.load() == 0);
  REQUIRE(eventually([&] { return o.stats->consumers_connected.load() == 1; }));
  client cl{b.port()};
  auto msgs = cl.drain(o.from_device_queue);
  REQUIRE(msgs.size() == 50);
  for (size_t i = 0; i < msgs.size(); ++i)
    CHECK(msgs[i].num("from_device_seq") == static_cast<int64_t>(i + 1));
  top.stop();
}

TEST_CASE("broker stopped mid-stream and restarted: nothing accepted is lost, everyone reconnects") {
  AMQP_TEST_REQUIRE_BROKER();
  auto& b = shared_broker();
  b.start();
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto router = std::make_shared<fake_router>();
  auto rec = std::make_shared<recorder>();
  auto ctl = std::make_shared<session_ctl>();
  router->add(address_kind::device, "dev-o", sys.spawn(fake_session, std::string{"dev-o"}, rec, ctl));
  auto o = test_options(b, "o2");
  o.consumers = 2;
  running_backend top(sys, warren::amqp::backend(o, router));
  auto producer = warren::whereis(sys, o.producer_name);
  REQUIRE(producer);
  REQUIRE(eventually(
      [&] { return o.stats->producer_connected.load() == 1 && o.stats->consumers_connected.load() == 2; }));

  // A device streams 4000 messages in batches of 20 from its own thread, as a
  // session would; `accepted` is the highest seq the producer acknowledged.
  constexpr uint64_t total = 4000;
  std::atomic<uint64_t> sent{0}, accepted{0};
  std::atomic<bool> stream_ok{true};
  std::jthread stream([&](std::stop_token stop) { // joined (and told to stop) if a REQUIRE fails
    caf::scoped_actor s{sys};
    uint64_t acc = 0;
    for (uint64_t seq = 1; seq <= total && !stop.stop_requested(); seq += 20) {
      sent = seq + 19; // before the send: `sent` is never behind what the producer has
      s->send(producer, publish_atom::value, batch(seq, seq + 19));
      acc = poll_accepted(s, acc);
      accepted = acc;
      std::this_thread::sleep_for(5ms);
    }
    auto deadline = std::chrono::steady_clock::now() + 120s;
    while (acc < total && std::chrono::steady_clock::now() < deadline && !stop.stop_requested()) {
      acc = poll_accepted(s, acc, std::chrono::milliseconds(100));
      accepted = acc;
    }
    stream_ok = acc == total;
  });

  REQUIRE(eventually([&] { return accepted.load() >= 300; }));
  auto sent_at_stop = sent.load();
  MESSAGE("stopping the broker at accepted=" << accepted.load() << " sent=" << sent_at_stop);
  CHECK(sent_at_stop < total); // really mid-stream
  b.stop();
  REQUIRE(eventually(
      [&] { return o.stats->producer_connected.load() == 0 && o.stats->consumers_connected.load() == 0; }));
  // Everything sent from now on goes out while the broker is down: none of it can be
  // confirmed, so none of it may be acknowledged until the broker is back.
  auto sent_while_down = sent.load();
  REQUIRE(eventually([&] { return sent.load() >= std::min(total, sent_while_down + 400); }));
  CHECK(accepted.load() <= sent_while_down);
  CHECK(o.stats->producer_connected.load() == 0);

  b.start();
  stream.join();
  CHECK(stream_ok.load());
  CHECK(accepted.load() == total);
  REQUIRE(eventually(
      [&] { return o.stats->producer_connected.load() == 1 && o.stats->consumers_connected.load() == 2; }));
  CHECK(o.stats->producer_disconnects.load() >= 1);
  CHECK(o.stats->consumer_disconnects.load() >= 2);

  // Every accepted message is in the queue (at least once), in order of first
  // appearance; duplicates are only republished unconfirmed ones.
  client cl{b.port()};
  auto msgs = cl.drain(o.from_device_queue);
  std::set<int64_t> seen;
  int64_t highest_first = 0;
  size_t dups = 0;
  bool ordered = true;
  for (auto& m : msgs) {
    auto seq = m.num("from_device_seq").value_or(-1);
    if (!seen.insert(seq).second) {
      ++dups;
      continue;
    }
    if (seq != highest_first + 1)
      ordered = false;
    highest_first = seq;
  }
  MESSAGE("queue held " << msgs.size() << " messages, " << dups << " duplicates; republished "
                        << o.stats->republished.load());
  CHECK(seen.size() == total);
  CHECK(*seen.begin() == 1);
  CHECK(*seen.rbegin() == static_cast<int64_t>(total));
  CHECK(ordered);
  CHECK(dups <= o.stats->republished.load());

  // The consumers route again after the restart.
  cl.publish(o.to_device_queue, "after-restart", {{"device_id", "dev-o"}});
  REQUIRE(eventually([&] { return o.stats->acked.load() == 1; }));
  CHECK(rec->snapshot().back().msg.payload == "after-restart");
  top.stop();
}
