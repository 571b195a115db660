// warren::server: OTP gen_server semantics (otp-semantics.md section 2.1).
#include "warren/server.hpp"

#include "warren_test/deterministic.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <doctest/doctest.h>

// Function-based client actors take a dummy int: CAF 0.17 dereferences a null
// argument tuple for argument-less function actors, which UBSan reports.

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

// -- messages ------------------------------------------------------------------------

struct get_t {};
struct add_t {
  int n;
};
struct slow_t {};    // the server defers the reply
struct release_t {}; // cast: deliver the deferred reply
struct stop_call_t {
  bool with_reply;
};
struct boom_t {};
struct cont_call_t {};
struct note_t {
  std::string text;
};
struct stop_cast_t {};
struct cont_cast_t {};
struct unknown_t {};
struct bad_return_t {}; // handle_call returns ignore: a bad return value
struct self_call_t {};  // the server calls itself (blocking) from handle_call
struct self_async_t {}; // cast: the server calls itself with async_call

// Shared log of what the server did, in order.
struct journal {
  std::mutex mtx;
  std::vector<std::string> events;
  std::function<std::string()> probe; // evaluated in terminate, if set
  void add(std::string x) {
    std::lock_guard<std::mutex> guard{mtx};
    events.push_back(std::move(x));
  }
  std::vector<std::string> snapshot() {
    std::lock_guard<std::mutex> guard{mtx};
    return events;
  }
};
using journal_ptr = std::shared_ptr<journal>;

} // namespace

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(get_t)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(add_t)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(slow_t)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(release_t)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(stop_call_t)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(boom_t)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cont_call_t)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(note_t)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(stop_cast_t)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(cont_cast_t)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(unknown_t)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bad_return_t)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(self_call_t)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(self_async_t)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(journal_ptr)

namespace {

enum class init_mode { ok, ignore, stop, throws, cont, trap };

struct counter : warren::process_base {
  using calls =
      warren::type_list<get_t, add_t, slow_t, stop_call_t, boom_t, cont_call_t, bad_return_t, self_call_t>;
  using casts = warren::type_list<release_t, note_t, stop_cast_t, cont_cast_t, boom_t, self_async_t>;

  journal_ptr log;
  int n = 0;
  caf::typed_response_promise<int> deferred;

  warren::action init(journal_ptr j, init_mode mode) {
    log = std::move(j);
    log->add("init");
    switch (mode) {
      case init_mode::ok:
        return warren::ok();
      case init_mode::ignore:
        return warren::ignore;
      case init_mode::stop:
        return warren::stop(warren::shutdown_with("no config"));
      case init_mode::throws:
        throw std::runtime_error("init exploded");
      case init_mode::cont:
        return warren::ok().and_continue(std::string{"from-init"});
      case init_mode::trap:
        trap_exit(true);
        return warren::ok();
    }
    return warren::ok();
  }

  int handle_call(const get_t&, warren::caller&) { return n; }

  warren::call_result<int> handle_call(const add_t& x, warren::caller&) {
    n += x.n;
    return warren::reply(n);
  }

  warren::call_result<int> handle_call(const slow_t&, warren::caller& from) {
    log->add("slow");
    deferred = from.defer<int>();
    return warren::noreply();
  }

  warren::call_result<int> handle_call(const stop_call_t& x, warren::caller&) {
    log->add("stop-call");
    if (x.with_reply)
      return warren::stop(warren::shutdown_with("asked"), 42);
    return warren::stop(warren::shutdown_with("asked"));
  }

  int handle_call(const boom_t&, warren::caller&) { throw std::runtime_error("call exploded"); }

  warren::call_result<int> handle_call(const cont_call_t&, warren::caller&) {
    log->add("cont-call");
    return warren::reply(7).and_continue(std::string{"from-call"});
  }

  warren::call_result<int> handle_call(const bad_return_t&, warren::caller&) {
    return warren::action{warren::ignore};
  }

  // A blocking call to itself would wait forever; it must fail at once.
  std::string handle_call(const self_call_t&, warren::caller&) {
    auto r = warren::call<counter>(self()->system(), self_handle(), get_t{}, std::chrono::seconds(30));
    return r ? std::string{"replied"} : warren::describe_exit(r.error());
  }

  void handle_cast(const self_async_t&) {
    warren::async_call<counter>(self(), self_handle(), get_t{}, warren::infinity)
        .then([this](int) { log->add("self:replied"); },
              [this](caf::error& e) { log->add("self:" + warren::describe_exit(e)); });
  }

  void handle_cast(const release_t&) {
    log->add("release");
    deferred.deliver(n + 1000);
  }

  void handle_cast(const note_t& x) { log->add("cast:" + x.text); }

  warren::action handle_cast(const stop_cast_t&) { return warren::stop(warren::shutdown_with("cast-stop")); }

  warren::action handle_cast(const cont_cast_t&) {
    log->add("cont-cast");
    return warren::noreply().and_continue(std::string{"from-cast"});
  }

  void handle_cast(const boom_t&) { throw std::runtime_error("cast exploded"); }

  warren::action handle_info(const caf::message& msg) {
    if (msg.match_elements<std::string>())
      log->add("info:" + msg.get_as<std::string>(0));
    else if (msg.match_elements<caf::exit_msg>())
      log->add("info:exit:" + warren::describe_exit(msg.get_as<caf::exit_msg>(0).reason));
    else
      log->add("info:other");
    return warren::noreply();
  }

  warren::action handle_continue(const caf::message& msg) {
    auto what = msg.get_as<std::string>(0);
    log->add("continue:" + what);
    if (what == "from-init")
      return warren::noreply().and_continue(std::string{"chained"});
    return warren::noreply();
  }

  void terminate(const caf::error& reason) {
    std::string extra;
    if (log->probe)
      extra = log->probe();
    log->add("terminate:" + warren::describe_exit(reason) + extra);
  }
};

using counter_ref = warren::server_ref<counter>;

// A server built from its constructor, without init.
struct plain {
  using calls = warren::type_list<get_t>;
  int value;
  explicit plain(int x) : value(x) {}
  int handle_call(const get_t&, warren::caller&) { return value; }
};

// init with the supervisor's extra arguments (simple_one_for_one).
struct with_extra {
  using calls = warren::type_list<get_t>;
  int value = 0;
  void init(int base, const caf::message& extra) {
    value = base;
    if (extra.match_elements<int>())
      value += extra.get_as<int>(0);
  }
  int handle_call(const get_t&, warren::caller&) { return value; }
};

struct fixture : warren_test::deterministic {
  journal_ptr log = std::make_shared<journal>();
  caf::scoped_actor probe{sys};

  caf::actor start(init_mode mode = init_mode::ok, caf::actor parent = {}) {
    auto r = warren::start_server<counter>(warren::start_context{sys, std::move(parent)}, log, mode);
    REQUIRE(r.started());
    run();
    return r.actor();
  }

  // The reason of the next down message in the probe's mailbox.
  caf::error down_reason() {
    caf::error reason = caf::make_error(caf::sec::runtime_error, "no down message");
    probe->receive([&](caf::down_msg& x) { reason = x.reason; },
                   caf::after(std::chrono::seconds(0)) >> [] {});
    return reason;
  }

  bool probe_mailbox_empty() { return probe->mailbox().empty(); }
};

// An event-based client that records replies and errors of its async calls.
struct client_state {
  std::vector<std::string> seen;
};

} // namespace

TEST_SUITE("server") {

  TEST_CASE_FIXTURE(fixture, "init ok / ignore / stop / throw as seen by the start function") {
    auto baseline = sys.registry().running();
    SUBCASE("ok") {
      auto r = warren::start_server<counter>(warren::start_context{sys, {}}, log, init_mode::ok);
      REQUIRE(r.started());
      CHECK(r.actor() != nullptr);
      // init ran before start returned, on this thread.
      CHECK(log->snapshot() == std::vector<std::string>{"init"});
      caf::anon_send_exit(r.actor(), caf::exit_reason::kill);
    }
    SUBCASE("ignore") {
      auto r = warren::start_server<counter>(warren::start_context{sys, {}}, log, init_mode::ignore);
      CHECK(r.ignored());
    }
    SUBCASE("stop") {
      auto r = warren::start_server<counter>(warren::start_context{sys, {}}, log, init_mode::stop);
      REQUIRE(r.failed());
      CHECK(warren::describe_exit(r.error()) == "{shutdown, no config}");
    }
    SUBCASE("throw") {
      auto r = warren::start_server<counter>(warren::start_context{sys, {}}, log, init_mode::throws);
      REQUIRE(r.failed());
      CHECK(r.error().category() == warren::exit_category);
      CHECK(r.error().code() == static_cast<uint8_t>(warren::exit_code::exception));
      CHECK(warren::describe_exit(r.error()).find("init exploded") != std::string::npos);
    }
    run();
    // Failed and ignored servers terminate without handling anything; no terminate.
    CHECK(sys.registry().running() == baseline);
    for (auto& e : log->snapshot())
      CHECK(e.rfind("terminate", 0) == std::string::npos);
  }

  TEST_CASE_FIXTURE(fixture, "spawn_server, constructor-based and extra start arguments") {
    auto a = warren::spawn_server<counter>(sys, log, init_mode::ignore);
    REQUIRE(a);
    CHECK(*a == nullptr);
    auto b = warren::spawn_server<counter>(sys, log, init_mode::stop);
    CHECK(!b);
    auto c = warren::start_server<with_extra>(warren::start_context{sys, {}, caf::make_message(5)}, 10);
    REQUIRE(c.started());
    auto d = warren::start_server<plain>(warren::start_context{sys, {}, caf::make_message(5)}, 10);
    CHECK(d.failed()); // plain's constructor cannot take extra arguments
    auto e = warren::spawn_server<plain>(sys, 3);
    REQUIRE(e);
    std::vector<int> seen;
    sys.spawn(
        [&, c = c.actor(), e = *e](caf::event_based_actor* self, int) {
          warren::async_call<with_extra>(self, c, get_t{})
              .then([&](int x) { seen.push_back(x); }, [](caf::error&) {});
          warren::async_call<plain>(self, e, get_t{})
              .then([&](int x) { seen.push_back(x); }, [](caf::error&) {});
        },
        0);
    run();
    CHECK(seen == std::vector<int>{15, 3});
    caf::anon_send_exit(c.actor(), caf::exit_reason::kill);
    caf::anon_send_exit(*e, caf::exit_reason::kill);
  }

  TEST_CASE("call, cast and info through the blocking client") {
    caf::actor_system_config cfg;
    cfg.set("logger.verbosity", caf::atom("quiet"));
    caf::actor_system sys{cfg};
    auto log = std::make_shared<journal>();
    auto hdl = warren::spawn_server<counter>(sys, log, init_mode::ok);
    REQUIRE(hdl);
    counter_ref srv{*hdl};
    auto r1 = warren::call(sys, srv, add_t{5});
    REQUIRE(r1);
    CHECK(*r1 == 5);
    warren::cast(srv, note_t{"a"});
    caf::anon_send(*hdl, std::string{"hello"});
    auto r2 = warren::call(sys, srv, get_t{}); // FIFO: after the cast and the info
    REQUIRE(r2);
    CHECK(*r2 == 5);
    CHECK(log->snapshot() == std::vector<std::string>{"init", "cast:a", "info:hello"});
    // Untyped handle, reply type given explicitly.
    auto r3 = warren::call<int>(sys, *hdl, add_t{1});
    REQUIRE(r3);
    CHECK(*r3 == 6);
    // A call type the server does not declare.
    auto r4 = warren::call<int>(sys, *hdl, unknown_t{});
    REQUIRE(!r4);
    CHECK(r4.error() == caf::sec::unexpected_message);
    // A call that times out: the error, and the late reply never shows up.
    auto r5 = warren::call(sys, srv, slow_t{}, std::chrono::milliseconds(20));
    REQUIRE(!r5);
    CHECK(r5.error() == caf::sec::request_timeout);
    warren::cast(srv, release_t{});
    auto r6 = warren::call(sys, srv, get_t{});
    REQUIRE(r6);
    CHECK(*r6 == 6);
    // The same through one scoped actor reused for two calls.
    caf::scoped_actor self{sys};
    CHECK(*warren::call(self, srv, get_t{}) == 6);
    CHECK(*warren::call(self, srv, add_t{1}) == 7);
    // Calls to a dead server fail; casts to it still "succeed".
    caf::anon_send_exit(*hdl, caf::exit_reason::kill);
    self->wait_for(*hdl);
    auto r7 = warren::call(sys, srv, get_t{});
    REQUIRE(!r7);
    CHECK(r7.error() == caf::sec::request_receiver_down);
    warren::cast(srv, note_t{"x"});
    auto r8 = warren::call<int>(sys, caf::actor{}, get_t{});
    REQUIRE(!r8);
    CHECK(r8.error() == caf::sec::invalid_argument);
  }

  TEST_CASE_FIXTURE(fixture, "continue runs before queued messages") {
    SUBCASE("from init") {
      auto r = warren::start_server<counter>(warren::start_context{sys, {}}, log, init_mode::cont);
      REQUIRE(r.started());
      // Queued before the server ever ran.
      warren::cast<counter>(r.actor(), note_t{"queued"});
      caf::anon_send(r.actor(), std::string{"info"});
      CHECK(log->snapshot() == std::vector<std::string>{"init"}); // continue is not part of start
      run();
      CHECK(log->snapshot() == std::vector<std::string>{"init", "continue:from-init", "continue:chained",
                                                        "cast:queued", "info:info"});
      caf::anon_send_exit(r.actor(), caf::exit_reason::kill);
    }
    SUBCASE("from call and cast") {
      auto srv = start();
      std::vector<int> replies;
      auto client = sys.spawn(
          [&](caf::event_based_actor* self, int) {
            warren::async_call<counter>(self, srv, cont_call_t{})
                .then([&](int x) { replies.push_back(x); }, [](caf::error&) {});
          },
          0);
      sched.run_once(); // only the client runs: its call is the first message queued
      warren::cast<counter>(srv, cont_cast_t{});
      warren::cast<counter>(srv, note_t{"last"});
      run();
      CHECK(log->snapshot() == std::vector<std::string>{"init", "cont-call", "continue:from-call",
                                                        "cont-cast", "continue:from-cast", "cast:last"});
      CHECK(replies == std::vector<int>{7});
      caf::anon_send_exit(srv, caf::exit_reason::kill);
    }
  }

  TEST_CASE_FIXTURE(fixture, "stop with reply: terminate runs first, then the reply is sent") {
    auto srv = start();
    probe->monitor(srv);
    // terminate records whether the caller's mailbox already holds the reply.
    log->probe = [this] { return probe_mailbox_empty() ? " (no reply yet)" : " (reply already sent)"; };
    auto h = probe->request(srv, caf::infinite, warren::call_atom::value, stop_call_t{true});
    run();
    CHECK(log->snapshot() ==
          std::vector<std::string>{"init", "stop-call", "terminate:{shutdown, asked} (no reply yet)"});
    int got = 0;
    h.receive([&](int x) { got = x; }, [](caf::error&) {});
    CHECK(got == 42);
    CHECK(warren::describe_exit(down_reason()) == "{shutdown, asked}");
  }

  TEST_CASE_FIXTURE(fixture, "stop from a call without reply: the caller gets the reason") {
    auto srv = start();
    auto h = probe->request(srv, caf::infinite, warren::call_atom::value, stop_call_t{false});
    run();
    caf::error err;
    h.receive([](int) {}, [&](caf::error& e) { err = e; });
    CHECK(err == warren::make_error(warren::call_errc::exited));
    CHECK(warren::describe_exit(*warren::exit_reason_of(err)) == "{shutdown, asked}");
    CHECK(log->snapshot().back() == "terminate:{shutdown, asked}");
  }

  TEST_CASE_FIXTURE(fixture, "stop from a cast runs terminate and exits with the reason") {
    auto srv = start();
    probe->monitor(srv);
    warren::cast<counter>(srv, stop_cast_t{});
    run();
    CHECK(log->snapshot().back() == "terminate:{shutdown, cast-stop}");
    CHECK(warren::describe_exit(down_reason()) == "{shutdown, cast-stop}");
  }

  TEST_CASE_FIXTURE(fixture, "exits: parent, other linked actors, trap_exit, kill") {
    SUBCASE("exit from the parent runs terminate with the reason") {
      auto srv = start(init_mode::ok, caf::actor{probe});
      probe->monitor(srv);
      probe->send_exit(srv, caf::exit_reason::user_shutdown);
      run();
      CHECK(log->snapshot() == std::vector<std::string>{"init", "terminate:shutdown"});
      CHECK(down_reason() == caf::exit_reason::user_shutdown);
    }
    SUBCASE("normal exit from the parent also stops the server (as gen_server)") {
      auto srv = start(init_mode::ok, caf::actor{probe});
      probe->monitor(srv);
      probe->send_exit(srv, caf::error{});
      run();
      CHECK(log->snapshot() == std::vector<std::string>{"init", "terminate:normal"});
      CHECK(warren::describe_exit(down_reason()) == "normal");
    }
    SUBCASE("kill from the parent: no terminate") {
      auto srv = start(init_mode::ok, caf::actor{probe});
      probe->monitor(srv);
      probe->send_exit(srv, caf::exit_reason::kill);
      run();
      CHECK(log->snapshot() == std::vector<std::string>{"init"});
      CHECK(down_reason() == caf::exit_reason::kill);
    }
    SUBCASE("exit from another actor, not trapping: normal ignored, others kill without terminate") {
      auto srv = start(init_mode::ok, caf::actor{probe});
      caf::scoped_actor other{sys};
      probe->monitor(srv);
      other->send_exit(srv, caf::error{});
      run();
      CHECK(probe_mailbox_empty()); // still alive
      other->send_exit(srv, caf::exit_reason::user_shutdown);
      run();
      CHECK(log->snapshot() == std::vector<std::string>{"init"});
      CHECK(down_reason() == caf::exit_reason::user_shutdown);
    }
    SUBCASE("exit from another actor while trapping goes to handle_info") {
      auto srv = start(init_mode::trap, caf::actor{probe});
      caf::scoped_actor other{sys};
      probe->monitor(srv);
      other->send_exit(srv, caf::exit_reason::user_shutdown);
      run();
      CHECK(probe_mailbox_empty());
      CHECK(log->snapshot() == std::vector<std::string>{"init", "info:exit:shutdown"});
      probe->send_exit(srv, caf::exit_reason::user_shutdown); // the parent's still stops it
      run();
      CHECK(log->snapshot().back() == "terminate:shutdown");
      CHECK(down_reason() == caf::exit_reason::user_shutdown);
    }
  }

  TEST_CASE_FIXTURE(fixture, "an exception in a handler runs terminate and exits abnormally") {
    SUBCASE("in a cast") {
      auto srv = start();
      probe->monitor(srv);
      warren::cast<counter>(srv, boom_t{});
      run();
      auto reason = down_reason();
      CHECK(reason.category() == warren::exit_category);
      CHECK(reason.code() == static_cast<uint8_t>(warren::exit_code::exception));
      CHECK(!warren::is_normal_exit(reason));
      auto events = log->snapshot();
      REQUIRE(events.size() == 2);
      CHECK(events[1].rfind("terminate:exception", 0) == 0);
      CHECK(events[1].find("cast exploded") != std::string::npos);
    }
    SUBCASE("in a call: the caller gets the reason") {
      auto srv = start();
      auto h = probe->request(srv, caf::infinite, warren::call_atom::value, boom_t{});
      run();
      caf::error err;
      h.receive([](int) {}, [&](caf::error& e) { err = e; });
      CHECK(warren::describe_exit(err).find("call exploded") != std::string::npos);
      CHECK(log->snapshot().back().find("call exploded") != std::string::npos);
    }
  }

  TEST_CASE_FIXTURE(fixture,
                    "call timeout: the caller gets the timeout error and the late reply is dropped") {
    auto srv = start();
    std::vector<std::string> seen;
    auto client = sys.spawn(
        [&](caf::event_based_actor* self, int) -> caf::behavior {
          self->set_default_handler(
              [&](caf::scheduled_actor*, caf::message_view& x) -> caf::result<caf::message> {
                seen.push_back("unexpected:" + caf::to_string(x.copy_content_to_message()));
                return caf::message{};
              });
          warren::async_call<counter>(self, srv, slow_t{}, std::chrono::seconds(1))
              .then([&](int x) { seen.push_back("reply:" + std::to_string(x)); },
                    [&](caf::error& e) { seen.push_back("error:" + caf::to_string(e)); });
          return {[&, self](caf::atom_value) {
            warren::async_call<counter>(self, srv, add_t{2}, std::chrono::seconds(1))
                .then([&](int x) { seen.push_back("reply:" + std::to_string(x)); },
                      [&](caf::error& e) { seen.push_back("error:" + caf::to_string(e)); });
          }};
        },
        0);
    run();
    CHECK(seen.empty());
    advance(std::chrono::milliseconds(999));
    CHECK(seen.empty());
    advance(std::chrono::milliseconds(1));
    CHECK(seen == std::vector<std::string>{"error:system_error(request_timeout)"});
    // The server still runs, answers the timed-out call late; the client drops it.
    warren::cast<counter>(srv, release_t{});
    run();
    CHECK(log->snapshot().back() == "release");
    caf::anon_send(client, caf::atom("next"));
    run();
    CHECK(seen == std::vector<std::string>{"error:system_error(request_timeout)", "reply:2"});
    caf::anon_send_exit(client, caf::exit_reason::kill);
    caf::anon_send_exit(srv, caf::exit_reason::kill);
  }

  TEST_CASE_FIXTURE(fixture, "calls watch the server: an exit before the reply fails the call at once") {
    // Infinite timeouts throughout: without the watch these calls would wait forever.
    std::vector<std::string> seen;
    auto record = [&](caf::event_based_actor* self, caf::actor srv, auto req) {
      warren::async_call<counter>(self, srv, req, warren::infinity)
          .then([&](int x) { seen.push_back("reply:" + std::to_string(x)); },
                [&](caf::error& e) {
                  auto reason = warren::exit_reason_of(e);
                  seen.push_back(reason ? "exited:" + warren::describe_exit(*reason)
                                        : "other:" + caf::to_string(e));
                });
    };
    SUBCASE("after deferring the reply") {
      auto srv = start();
      auto client = sys.spawn([&](caf::event_based_actor* self, int) { record(self, srv, slow_t{}); }, 0);
      run();
      CHECK(seen.empty());
      warren::cast<counter>(srv, stop_cast_t{});
      run();
      CHECK(seen == std::vector<std::string>{"exited:{shutdown, cast-stop}"});
      caf::anon_send_exit(client, caf::exit_reason::kill);
    }
    SUBCASE("killed while holding the call") {
      auto srv = start();
      auto client = sys.spawn([&](caf::event_based_actor* self, int) { record(self, srv, slow_t{}); }, 0);
      run();
      caf::anon_send_exit(srv, caf::exit_reason::kill);
      run();
      CHECK(seen == std::vector<std::string>{"exited:killed"});
      caf::anon_send_exit(client, caf::exit_reason::kill);
    }
    SUBCASE("a bad return value") {
      auto srv = start();
      auto client =
          sys.spawn([&](caf::event_based_actor* self, int) { record(self, srv, bad_return_t{}); }, 0);
      run();
      REQUIRE(seen.size() == 1);
      CHECK(seen[0].rfind("exited:bad_return_value", 0) == 0);
      caf::anon_send_exit(client, caf::exit_reason::kill);
    }
    SUBCASE("stop without a reply: the exit reason, as a value") {
      auto srv = start();
      auto client =
          sys.spawn([&](caf::event_based_actor* self, int) { record(self, srv, stop_call_t{false}); }, 0);
      run();
      CHECK(seen == std::vector<std::string>{"exited:{shutdown, asked}"});
      caf::anon_send_exit(client, caf::exit_reason::kill);
    }
    SUBCASE("a call queued when the server stops: the exit reason, not noproc") {
      auto srv = start();
      // Both queued before the server runs: the stop first, then the call.
      auto client = sys.spawn(
          [&](caf::event_based_actor* self, int) {
            self->send(srv, warren::cast_atom::value, stop_cast_t{});
            record(self, srv, add_t{1});
          },
          0);
      run();
      CHECK(seen == std::vector<std::string>{"exited:{shutdown, cast-stop}"});
      caf::anon_send_exit(client, caf::exit_reason::kill);
    }
    SUBCASE("a call to a server already gone: request_receiver_down (noproc)") {
      auto srv = start();
      caf::anon_send_exit(srv, caf::exit_reason::kill);
      run();
      auto client = sys.spawn([&](caf::event_based_actor* self, int) { record(self, srv, add_t{1}); }, 0);
      run();
      CHECK(seen == std::vector<std::string>{
                        "other:" + caf::to_string(caf::make_error(caf::sec::request_receiver_down))});
      caf::anon_send_exit(client, caf::exit_reason::kill);
    }
    SUBCASE("a reply detaches the watch") {
      auto srv = start();
      auto client = sys.spawn([&](caf::event_based_actor* self, int) { record(self, srv, add_t{4}); }, 0);
      // The watch holds the caller weakly: once the call is done, the caller's weak
      // count is back where it was, though the server lives on.
      auto* ctrl = caf::actor_cast<caf::actor_control_block*>(client);
      auto weak_before = ctrl->weak_refs.load();
      run();
      CHECK(seen == std::vector<std::string>{"reply:4"});
      CHECK(ctrl->weak_refs.load() == weak_before);
      caf::anon_send_exit(srv, caf::exit_reason::kill);
      run();
      CHECK(seen == std::vector<std::string>{"reply:4"});
      caf::anon_send_exit(client, caf::exit_reason::kill);
    }
  }

  TEST_CASE_FIXTURE(fixture, "an async call to oneself fails at once with calling_self") {
    auto srv = start();
    warren::cast<counter>(srv, self_async_t{});
    run();
    CHECK(log->snapshot().back() == "self:calling_self");
    caf::anon_send_exit(srv, caf::exit_reason::kill);
  }

  TEST_CASE("blocking calls: an exit before the reply and a call to oneself fail at once") {
    caf::actor_system_config cfg;
    cfg.set("logger.verbosity", caf::atom("quiet"));
    caf::actor_system sys{cfg};
    auto log = std::make_shared<journal>();
    auto hdl = warren::spawn_server<counter>(sys, log, init_mode::ok);
    REQUIRE(hdl);
    counter_ref srv{*hdl};
    // A blocking call to itself from a handler: calling_self, not a 30 s wait.
    auto r1 = warren::call(sys, srv, self_call_t{});
    REQUIRE(r1);
    CHECK(*r1 == "calling_self");
    // The server defers the reply, then stops: the caller learns why, with an
    // infinite timeout.
    std::thread stopper{[&] {
      while (log->snapshot().empty() || log->snapshot().back() != "slow")
        std::this_thread::yield();
      warren::cast(srv, stop_cast_t{});
    }};
    auto r2 = warren::call(sys, srv, slow_t{}, warren::infinity);
    stopper.join();
    REQUIRE(!r2);
    CHECK(r2.error() == warren::make_error(warren::call_errc::exited));
    CHECK(warren::describe_exit(*warren::exit_reason_of(r2.error())) == "{shutdown, cast-stop}");
  }

  TEST_CASE("server_child builds a worker spec that starts the server") {
    caf::actor_system_config cfg;
    cfg.set("logger.verbosity", caf::atom("quiet"));
    caf::actor_system sys{cfg};
    auto log = std::make_shared<journal>();
    auto spec = warren::server_child<counter>("c1", log, init_mode::ok);
    CHECK(spec.id == "c1");
    CHECK(spec.type == warren::child_type::worker);
    CHECK(spec.restart == warren::restart_type::permanent);
    auto r = spec.start(warren::start_context{sys, {}});
    REQUIRE(r.started());
    auto again = spec.start(warren::start_context{sys, {}}); // a restart re-runs init
    REQUIRE(again.started());
    CHECK(log->snapshot() == std::vector<std::string>{"init", "init"});
    CHECK(*warren::call(sys, counter_ref{r.actor()}, add_t{3}) == 3);
    CHECK(*warren::call(sys, counter_ref{again.actor()}, get_t{}) == 0);
    caf::anon_send_exit(r.actor(), caf::exit_reason::kill);
    caf::anon_send_exit(again.actor(), caf::exit_reason::kill);
  }

} // TEST_SUITE
