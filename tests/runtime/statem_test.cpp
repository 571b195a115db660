// warren::sm: OTP gen_statem semantics (OTP's gen_statem manual page and gen_statem.erl). Time is the
// deterministic test clock: the tests advance it and assert exactly what fires.
#include "warren/statem.hpp"

#include "warren_test/deterministic.hpp"

#include <caf/scoped_actor.hpp>
#include <doctest/doctest.h>

// Function-based client actors take a dummy int: CAF 0.17 dereferences a null
// argument tuple for argument-less function actors, which UBSan reports.

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace doctest {
template <>
struct StringMaker<std::vector<std::string>> {
  static String convert(const std::vector<std::string>& xs) {
    std::string out = "[";
    for (auto& x : xs)
      out += (out.size() > 1 ? ", \"" : "\"") + x + "\"";
    return (out + "]").c_str();
  }
};
} // namespace doctest

using namespace std::chrono_literals;
namespace sm = warren::sm;

namespace {

struct journal {
  std::vector<std::string> events;
  std::function<std::string()> probe; // evaluated in terminate, if set
  void add(std::string x) { events.push_back(std::move(x)); }
  std::vector<std::string> take() { return std::exchange(events, {}); }
};
using journal_ptr = std::shared_ptr<journal>;

std::vector<std::string> split(const std::string& x) {
  std::vector<std::string> out;
  size_t pos = 0;
  for (;;) {
    auto next = x.find(':', pos);
    out.push_back(x.substr(pos, next - pos));
    if (next == std::string::npos)
      return out;
    pos = next + 1;
  }
}

// A scriptable machine in handle_event_function mode: casts (and internal events) are
// commands such as "goto:open" or "etimeout:1000"; see handle_command.
struct machine : warren::process_base {
  using state_type = std::string;
  static constexpr bool state_enter = true;
  using result = sm::transition<std::string>;

  journal_ptr log;

  result init(journal_ptr j, std::string initial) {
    log = std::move(j);
    if (initial == "ignore")
      return warren::ignore;
    if (initial == "stop")
      return sm::stop(warren::shutdown_with("no"));
    if (initial == "throw")
      throw std::runtime_error("init exploded");
    // An init action: an internal event processed before any message.
    return sm::next_state(initial).next_event(std::string{"ping"});
  }

  result handle_event(const sm::event& ev, const std::string& s) {
    switch (ev.type()) {
      case sm::event_type::enter:
        log->add("enter:" + ev.old_state<std::string>() + "->" + s);
        if (s == "open")
          return sm::keep_state().state_timeout(10s, std::string{"lock"});
        return sm::keep_state();
      case sm::event_type::timeout:
      case sm::event_type::state_timeout:
        log->add(std::string{sm::to_string(ev.type())} + ":" + ev.get<std::string>());
        if (ev.type() == sm::event_type::state_timeout && ev.get<std::string>() == "lock")
          return sm::next_state(std::string{"locked"});
        return sm::keep_state();
      case sm::event_type::generic_timeout:
        log->add("generic_timeout:" + ev.timeout_name() + ":" + ev.get<std::string>());
        return sm::keep_state();
      case sm::event_type::call: {
        auto cmd = ev.get<std::string>();
        if (cmd == "get")
          return sm::keep_state().reply(ev.from(), s);
        if (cmd == "stop")
          return sm::stop(warren::shutdown_with("asked")).reply(ev.from(), std::string{"bye"});
        if (cmd == "wait") { // answered after the next state change
          if (s == "busy")
            return sm::keep_state().postpone();
          return sm::keep_state().reply(ev.from(), "waited in " + s);
        }
        return sm::keep_state().reply_error(ev.from(), caf::make_error(caf::sec::unexpected_message));
      }
      case sm::event_type::internal:
        log->add("internal:" + ev.get<std::string>());
        return handle_command(ev.get<std::string>(), s);
      case sm::event_type::cast:
        return handle_command(ev.get<std::string>(), s);
      case sm::event_type::info:
        if (auto str = ev.get_if<std::string>())
          log->add("info:" + *str);
        else
          log->add("info:other");
        return sm::keep_state();
    }
    return sm::keep_state();
  }

  result handle_command(const std::string& cmd, const std::string& s) {
    auto xs = split(cmd);
    auto ms = [&](size_t i) { return std::chrono::milliseconds(std::stoi(xs.at(i))); };
    const auto& op = xs[0];
    if (op == "goto")
      return sm::next_state(xs.at(1));
    if (op == "same")
      return sm::next_state(s);
    if (op == "repeat") {
      log->add("repeat");
      return sm::repeat_state();
    }
    if (op == "ping") {
      log->add("ping@" + s);
      return sm::keep_state();
    }
    if (op == "etimeout")
      return sm::keep_state().event_timeout(ms(1), std::string{"idle"});
    if (op == "stimeout")
      return sm::keep_state().state_timeout(ms(1), std::string{"st"});
    if (op == "scancel")
      return sm::keep_state().cancel_state_timeout();
    if (op == "gtimeout")
      return sm::keep_state().timeout(xs.at(1), ms(2), "msg-" + xs.at(1));
    if (op == "gcancel")
      return sm::keep_state().cancel_timeout(xs.at(1));
    if (op == "ginfinity")
      return sm::keep_state().timeout(xs.at(1), warren::infinity, std::string{});
    if (op == "job") {
      if (s == "busy") {
        log->add("postpone:" + xs.at(1));
        return sm::keep_state().postpone();
      }
      log->add("run:" + xs.at(1) + "@" + s);
      return sm::keep_state();
    }
    if (op == "insert") // insert:A:B -> internal events "ping" then "job:A", "job:B"
      return sm::keep_state()
          .next_event(std::string{"job:" + xs.at(1)})
          .next_event(std::string{"job:" + xs.at(2)});
    if (op == "gotoinsert") // a state change that also inserts an event: it goes before postponed ones
      return sm::next_state(xs.at(1)).next_event(std::string{"job:inserted"});
    if (op == "stop")
      return sm::stop(warren::shutdown_with("cast"));
    if (op == "throw")
      throw std::runtime_error("handler exploded");
    log->add("unknown:" + cmd);
    return sm::keep_state();
  }

  void terminate(const caf::error& reason, const std::string& s) {
    std::string extra;
    if (log->probe)
      extra = log->probe();
    log->add("terminate:" + warren::describe_exit(reason) + "@" + s + extra);
  }
};

// A state_functions machine: a light switch with a brightness counter.
struct light : warren::process_base {
  static constexpr bool state_enter = true;
  using result = sm::state_result<light>;

  journal_ptr log;
  int presses = 0;

  result init(journal_ptr j) {
    log = std::move(j);
    return sm::next_state(&light::off);
  }

  result off(const sm::event& ev) {
    if (ev.type() == sm::event_type::enter) {
      log->add(std::string{"enter off from "} + name(ev.old_state<sm::state_fn<light>>()));
      return sm::keep_state();
    }
    if (ev.is_call() && ev.is<std::string>() && ev.get<std::string>() == "state")
      return sm::keep_state().reply(ev.from(), std::string{"off"});
    if (ev.type() == sm::event_type::cast && ev.is<int>()) {
      ++presses;
      return sm::next_state(&light::on);
    }
    return sm::keep_state();
  }

  result on(const sm::event& ev) {
    if (ev.type() == sm::event_type::enter) {
      log->add(std::string{"enter on from "} + name(ev.old_state<sm::state_fn<light>>()));
      return sm::keep_state().state_timeout(5s, std::string{"auto-off"});
    }
    if (ev.is_call() && ev.is<std::string>() && ev.get<std::string>() == "state")
      return sm::keep_state().reply(ev.from(), "on:" + std::to_string(presses));
    if (ev.type() == sm::event_type::state_timeout) {
      log->add("auto-off");
      return sm::next_state(&light::off);
    }
    if (ev.type() == sm::event_type::cast && ev.is<int>()) {
      ++presses;
      return sm::next_state(&light::off);
    }
    return sm::keep_state();
  }

  static std::string name(const sm::state_fn<light>& s) {
    return s == sm::state_fn<light>{&light::on} ? "on" : "off";
  }
};

struct fixture : warren_test::deterministic {
  journal_ptr log = std::make_shared<journal>();
  caf::scoped_actor probe{sys};

  caf::actor start(std::string initial = "idle", caf::actor parent = {}) {
    auto r = warren::start_statem<machine>(warren::start_context{sys, std::move(parent)}, log, initial);
    REQUIRE(r.started());
    run();
    return r.actor();
  }

  void cast(const caf::actor& x, std::string cmd) {
    warren::cast(x, std::move(cmd));
    run();
  }

  std::string call(const caf::actor& x, std::string cmd) {
    auto h = probe->request(x, caf::infinite, warren::call_atom::value, std::move(cmd));
    run();
    std::string out = "<no reply>";
    h.receive([&](std::string& y) { out = y; }, [&](caf::error& e) { out = "error:" + caf::to_string(e); });
    return out;
  }

  caf::error down_reason() {
    caf::error reason = caf::make_error(caf::sec::runtime_error, "no down message");
    probe->receive([&](caf::down_msg& x) { reason = x.reason; },
                   caf::after(std::chrono::seconds(0)) >> [] {});
    return reason;
  }

  using strings = std::vector<std::string>;
};

} // namespace

TEST_SUITE("statem") {

  TEST_CASE_FIXTURE(fixture, "init ok / ignore / stop / throw as seen by the start function") {
    auto baseline = sys.registry().running();
    auto ctx = warren::start_context{sys, {}};
    CHECK(warren::start_statem<machine>(ctx, log, std::string{"ignore"}).ignored());
    auto stopped = warren::start_statem<machine>(ctx, log, std::string{"stop"});
    REQUIRE(stopped.failed());
    CHECK(warren::describe_exit(stopped.error()) == "{shutdown, no}");
    auto thrown = warren::start_statem<machine>(ctx, log, std::string{"throw"});
    REQUIRE(thrown.failed());
    CHECK(thrown.error().code() == static_cast<uint8_t>(warren::exit_code::exception));
    run();
    CHECK(sys.registry().running() == baseline);
    CHECK(log->events.empty());
    auto spec = warren::statem_child<machine>("m", log, std::string{"idle"});
    CHECK(spec.type == warren::child_type::worker);
    auto ok = spec.start(ctx);
    REQUIRE(ok.started());
    run();
    // The initial state's enter call, then init's inserted event, before any message.
    CHECK(log->take() == strings{"enter:idle->idle", "internal:ping", "ping@idle"});
    caf::anon_send_exit(ok.actor(), caf::exit_reason::kill);
  }

  TEST_CASE_FIXTURE(fixture, "state enter calls and the state timeout") {
    auto m = start("locked");
    log->take();
    SUBCASE("not cancelled by other events; fires at its deadline; a state change follows") {
      cast(m, "goto:open");
      CHECK(log->take() == strings{"enter:locked->open"});
      advance(5s);
      cast(m, "ping"); // an event, but no state change
      advance(4999ms);
      CHECK(log->take() == strings{"ping@open"});
      advance(1ms);
      CHECK(log->take() == strings{"state_timeout:lock", "enter:open->locked"});
    }
    SUBCASE("cancelled by a state change") {
      cast(m, "goto:open");
      advance(5s);
      cast(m, "goto:closed");
      advance(20s);
      CHECK(log->take() == strings{"enter:locked->open", "enter:open->closed"});
    }
    SUBCASE("setting it again restarts it") {
      cast(m, "goto:open");
      advance(5s);
      cast(m, "stimeout:10000"); // re-set in the same state (message st)
      advance(9999ms);
      CHECK(log->take() == strings{"enter:locked->open"});
      advance(1ms);
      CHECK(log->take() == strings{"state_timeout:st"});
    }
    SUBCASE("cancel_state_timeout and infinity") {
      cast(m, "goto:open");
      cast(m, "scancel");
      advance(20s);
      CHECK(log->take() == strings{"enter:locked->open"});
    }
    caf::anon_send_exit(m, caf::exit_reason::kill);
  }

  TEST_CASE_FIXTURE(fixture, "repeat_state vs next_state to the same state") {
    auto m = start("idle");
    log->take();
    cast(m, "stimeout:1000");
    cast(m, "goto:busy");
    CHECK(log->take() == strings{"enter:idle->busy"}); // the state change cancelled it
    cast(m, "stimeout:1000");
    cast(m, "job:1");
    advance(300ms);
    cast(m, "same"); // next_state(busy): no state change: no enter, no retry, timer kept
    advance(300ms);
    cast(m, "repeat"); // repeat_state: enter runs again, still no retry, timer kept
    CHECK(log->take() == strings{"postpone:1", "repeat", "enter:busy->busy"});
    advance(399ms);
    CHECK(log->take().empty());
    advance(1ms);
    CHECK(log->take() == strings{"state_timeout:st"});
    cast(m, "goto:ready"); // a real state change retries the postponed job
    CHECK(log->take() == strings{"enter:busy->ready", "run:1@ready"});
    caf::anon_send_exit(m, caf::exit_reason::kill);
  }

  TEST_CASE_FIXTURE(fixture, "event timeout: fires when idle, cancelled by any event") {
    auto m = start("idle");
    log->take();
    cast(m, "etimeout:1000");
    advance(999ms);
    CHECK(log->take().empty());
    advance(1ms);
    CHECK(log->take() == strings{"timeout:idle"});
    cast(m, "etimeout:1000");
    advance(500ms);
    cast(m, "ping"); // any event cancels it
    advance(2s);
    CHECK(log->take() == strings{"ping@idle"});
    cast(m, "etimeout:1000");
    caf::anon_send(m, std::string{"an info"}); // info messages are events too
    run();
    advance(2s);
    CHECK(log->take() == strings{"info:an info"});
    // A generic timeout firing is an event as well.
    cast(m, "gtimeout:g:500");
    cast(m, "etimeout:1000");
    advance(2s);
    CHECK(log->take() == strings{"generic_timeout:g:msg-g"});
    caf::anon_send_exit(m, caf::exit_reason::kill);
  }

  TEST_CASE_FIXTURE(fixture, "generic timeouts: each name independent, re-armed or cancelled explicitly") {
    auto m = start("idle");
    log->take();
    cast(m, "gtimeout:a:1000");
    cast(m, "gtimeout:b:2000");
    advance(500ms);
    cast(m, "gtimeout:a:1000"); // re-armed: now due at 1500
    cast(m, "goto:other");      // a state change does not cancel generic timeouts
    advance(500ms);
    CHECK(log->take() == strings{"enter:idle->other"});
    advance(500ms);
    CHECK(log->take() == strings{"generic_timeout:a:msg-a"});
    advance(500ms);
    CHECK(log->take() == strings{"generic_timeout:b:msg-b"});
    cast(m, "gtimeout:a:1000");
    cast(m, "gtimeout:b:1000");
    cast(m, "gtimeout:c:1000");
    cast(m, "gcancel:a");
    cast(m, "ginfinity:c"); // infinity cancels too
    advance(5s);
    CHECK(log->take() == strings{"generic_timeout:b:msg-b"});
    caf::anon_send_exit(m, caf::exit_reason::kill);
  }

  TEST_CASE_FIXTURE(fixture, "postponed events: retried after a state change, in order, before newer ones") {
    auto m = start("busy");
    log->take();
    // All queued before the machine runs: two postponed jobs, the state change, a newer job.
    warren::cast(m, std::string{"job:1"});
    warren::cast(m, std::string{"job:2"});
    warren::cast(m, std::string{"goto:ready"});
    warren::cast(m, std::string{"job:3"});
    run();
    CHECK(log->take() == strings{"postpone:1", "postpone:2", "enter:busy->ready", "run:1@ready",
                                 "run:2@ready", "run:3@ready"});
    SUBCASE("a postponed call is answered after the state change") {
      cast(m, "goto:busy");
      auto h = probe->request(m, caf::infinite, warren::call_atom::value, std::string{"wait"});
      run();
      CHECK(probe->mailbox().empty());
      cast(m, "goto:ready");
      std::string got;
      h.receive([&](std::string& x) { got = x; }, [](caf::error&) {});
      CHECK(got == "waited in ready");
    }
    SUBCASE("events inserted with next_event go before postponed ones") {
      cast(m, "goto:busy");
      warren::cast(m, std::string{"job:4"});
      warren::cast(m, std::string{"gotoinsert:ready"});
      warren::cast(m, std::string{"job:5"});
      run();
      CHECK(log->take() == strings{"enter:ready->busy", "postpone:4", "enter:busy->ready",
                                   "internal:job:inserted", "run:inserted@ready", "run:4@ready",
                                   "run:5@ready"});
    }
    SUBCASE("next_event order") {
      cast(m, "insert:a:b");
      CHECK(log->take() == strings{"internal:job:a", "run:a@ready", "internal:job:b", "run:b@ready"});
    }
    caf::anon_send_exit(m, caf::exit_reason::kill);
  }

  TEST_CASE_FIXTURE(fixture, "calls and replies") {
    auto m = start("idle");
    CHECK(call(m, "get") == "idle");
    cast(m, "goto:open");
    CHECK(call(m, "get") == "open");
    CHECK(call(m, "nonsense") == "error:system_error(unexpected_message)");
    // Through the generic client from server.hpp.
    std::vector<std::string> seen;
    sys.spawn(
        [&](caf::event_based_actor* self, int) {
          warren::async_call<std::string>(self, m, std::string{"get"})
              .then([&](std::string& x) { seen.push_back(x); }, [](caf::error&) {});
        },
        0);
    run();
    CHECK(seen == strings{"open"});
    caf::anon_send_exit(m, caf::exit_reason::kill);
  }

  TEST_CASE_FIXTURE(fixture, "stop and reply: the reply goes out first, then terminate runs") {
    auto m = start("idle");
    probe->monitor(m);
    log->take();
    log->probe = [this] { return probe->mailbox().empty() ? " (no reply yet)" : " (reply already sent)"; };
    CHECK(call(m, "stop") == "bye");
    CHECK(log->take() == strings{"terminate:{shutdown, asked}@idle (reply already sent)"});
    CHECK(warren::describe_exit(down_reason()) == "{shutdown, asked}");
  }

  TEST_CASE_FIXTURE(fixture, "termination: stop, parent exit, kill, exceptions") {
    SUBCASE("stop from a cast") {
      auto m = start("idle");
      probe->monitor(m);
      cast(m, "goto:open");
      cast(m, "stop");
      CHECK(log->take().back() == "terminate:{shutdown, cast}@open");
      CHECK(warren::describe_exit(down_reason()) == "{shutdown, cast}");
    }
    SUBCASE("exit from the parent runs terminate") {
      auto m = start("idle", caf::actor{probe});
      probe->monitor(m);
      probe->send_exit(m, caf::exit_reason::user_shutdown);
      run();
      CHECK(log->take().back() == "terminate:shutdown@idle");
      CHECK(down_reason() == caf::exit_reason::user_shutdown);
    }
    SUBCASE("kill: no terminate") {
      auto m = start("idle", caf::actor{probe});
      probe->monitor(m);
      log->take();
      probe->send_exit(m, caf::exit_reason::kill);
      run();
      CHECK(log->take().empty());
      CHECK(down_reason() == caf::exit_reason::kill);
    }
    SUBCASE("an exception in a handler: terminate, then an abnormal exit") {
      auto m = start("idle");
      probe->monitor(m);
      cast(m, "throw");
      auto last = log->take().back();
      CHECK(last.rfind("terminate:exception", 0) == 0);
      CHECK(last.find("handler exploded") != std::string::npos);
      auto reason = down_reason();
      CHECK(reason.code() == static_cast<uint8_t>(warren::exit_code::exception));
      CHECK(!warren::is_normal_exit(reason));
    }
    SUBCASE("pending timers of a dead machine do nothing") {
      auto m = start("idle");
      cast(m, "gtimeout:a:1000");
      cast(m, "stop");
      log->take();
      advance(2s);
      CHECK(log->take().empty());
    }
  }

  TEST_CASE_FIXTURE(fixture, "state_functions mode") {
    auto r = warren::start_statem<light>(warren::start_context{sys, {}}, log);
    REQUIRE(r.started());
    auto m = r.actor();
    run();
    CHECK(log->take() == strings{"enter off from off"});
    CHECK(call(m, "state") == "off");
    warren::cast(m, 1);
    run();
    CHECK(log->take() == strings{"enter on from off"});
    CHECK(call(m, "state") == "on:1");
    advance(5s);
    CHECK(log->take() == strings{"auto-off", "enter off from on"});
    warren::cast(m, 1);
    run();
    advance(2s);
    warren::cast(m, 1); // switched off by hand: the state timeout is gone
    run();
    advance(10s);
    CHECK(log->take() == strings{"enter on from off", "enter off from on"});
    CHECK(call(m, "state") == "off");
    caf::anon_send_exit(m, caf::exit_reason::kill);
  }

} // TEST_SUITE
