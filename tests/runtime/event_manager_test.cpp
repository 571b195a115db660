#include "warren/event_manager.hpp"

#include "warren/exit.hpp"
#include "warren/log.hpp"
#include "warren/supervisor.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <doctest/doctest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>

using namespace std::chrono_literals;

namespace {

using ping_atom = caf::atom_constant<caf::atom("ping")>;

struct threaded_config : caf::actor_system_config {
  threaded_config() {
    set("scheduler.max-threads", 2);
    set("logger.verbosity", caf::atom("quiet"));
  }
};

struct fixture {
  threaded_config cfg;
  caf::actor_system sys{cfg};
};

// What the handlers did, in order.
struct journal {
  std::mutex mtx;
  std::vector<std::string> lines;

  void add(std::string line) {
    std::lock_guard guard{mtx};
    lines.push_back(std::move(line));
  }

  std::vector<std::string> take() {
    std::lock_guard guard{mtx};
    return std::exchange(lines, {});
  }
};

using journal_ptr = std::shared_ptr<journal>;

std::string text(const caf::message& msg) {
  if (msg.empty())
    return "-";
  if (msg.match_elements<std::string>())
    return msg.get_as<std::string>(0);
  return caf::to_string(msg);
}

// Records every callback. Events are strings: "crash" throws in handle_event (when
// fragile), "leave" asks for removal. Init refuses args "refuse" and throws on
// "throw". Calls answer (id, number of events seen) or throw on "crash".
class recorder : public warren::event_handler {
public:
  explicit recorder(journal_ptr j, bool fragile = false) : j_(std::move(j)), fragile_(fragile) {}

  caf::error init(const warren::handler_init& ctx) override {
    auto arg = text(ctx.args);
    if (arg == "refuse")
      return caf::make_error(caf::sec::runtime_error, "refused");
    if (arg == "throw")
      throw std::runtime_error("init failed");
    std::string line = id() + ":init:" + arg;
    if (ctx.swapped)
      line += ctx.old_result ? ":from:" + text(*ctx.old_result) : ":from:none";
    j_->add(line);
    return {};
  }

  void handle_event(const caf::message& event) override {
    auto ev = text(event);
    if (ev == "crash" && fragile_)
      throw std::runtime_error("boom");
    ++events_;
    j_->add(id() + ":event:" + ev);
    if (ev == "leave")
      remove_handler();
  }

  caf::message handle_call(const caf::message& request) override {
    auto req = text(request);
    if (req == "crash")
      throw std::logic_error("bad call");
    if (req == "leave")
      remove_handler();
    return caf::make_message(id(), events_);
  }

  void handle_info(const caf::message& info) override { j_->add(id() + ":info:" + caf::to_string(info)); }

  caf::message terminate(const warren::terminate_reason& why) override {
    std::string line = id() + ":terminate:" + warren::to_string(why.what());
    if (why.what() == warren::terminate_reason::kind::args)
      line.append(":").append(text(why.args()));
    if (why.reason())
      line.append(":").append(warren::describe_exit(why.reason()));
    j_->add(line);
    return caf::make_message("bye " + id());
  }

private:
  journal_ptr j_;
  bool fragile_;
  int events_ = 0;
};

caf::message msg(std::string x) {
  return caf::make_message(std::move(x));
}

std::shared_ptr<recorder> rec(const journal_ptr& j, bool fragile = false) {
  return std::make_shared<recorder>(j, fragile);
}

using ids = std::vector<std::string>;
using lines = std::vector<std::string>;

ids handlers_of(caf::actor_system& sys, const caf::actor& mgr) {
  auto res = warren::ev::which_handlers(sys, mgr);
  REQUIRE(res);
  return *res;
}

bool is(const caf::error& err, warren::event_errc code) {
  return err == warren::make_error(code);
}

// Test actors take a dummy argument: CAF 0.17 dereferences a null argument tuple
// when a function-based actor takes nothing but `self`, which UBSan reports.
caf::behavior idle(caf::event_based_actor*, int) {
  return {[](ping_atom) {}};
}

// Receives the next gen_event_exit notification in `self`'s mailbox.
std::pair<std::string, caf::error> next_exit_note(caf::scoped_actor& self) {
  std::pair<std::string, caf::error> result;
  self->receive([&](warren::gen_event_exit_atom, std::string& id, caf::error& reason) {
    CHECK(self->current_sender() != nullptr);
    result = {std::move(id), std::move(reason)};
  });
  return result;
}

bool mailbox_empty(caf::scoped_actor& self) {
  bool empty = false;
  self->receive([](const caf::message&) {}, caf::after(0s) >> [&] { empty = true; });
  return empty;
}

} // namespace

TEST_CASE("add_handler, which_handlers (newest first) and delete_handler") {
  fixture f;
  auto j = std::make_shared<journal>();
  auto mgr = warren::spawn_event_manager(f.sys);
  CHECK(handlers_of(f.sys, mgr).empty());
  REQUIRE(!warren::ev::add_handler(f.sys, mgr, "a", rec(j), msg("x")));
  REQUIRE(!warren::ev::add_handler(f.sys, mgr, "b", rec(j)));
  REQUIRE(!warren::ev::add_handler(f.sys, mgr, "c", rec(j)));
  CHECK(handlers_of(f.sys, mgr) == ids{"c", "b", "a"});
  CHECK(j->take() == lines{"a:init:x", "b:init:-", "c:init:-"});

  CHECK(is(warren::ev::add_handler(f.sys, mgr, "b", rec(j)), warren::event_errc::already_exists));
  CHECK(is(warren::ev::add_handler(f.sys, mgr, "", rec(j)), warren::event_errc::invalid_handler));
  CHECK(is(warren::ev::add_handler(f.sys, mgr, "n", nullptr), warren::event_errc::invalid_handler));

  auto res = warren::ev::delete_handler(f.sys, mgr, "b", msg("because"));
  REQUIRE(res);
  CHECK(text(*res) == "bye b");
  CHECK(j->take() == lines{"b:terminate:args:because"});
  CHECK(handlers_of(f.sys, mgr) == ids{"c", "a"});

  auto missing = warren::ev::delete_handler(f.sys, mgr, "b");
  REQUIRE(!missing);
  CHECK(is(missing.error(), warren::event_errc::module_not_found));
  CHECK(warren::ev::stop(f.sys, mgr) == warren::shutdown());
}

TEST_CASE("a handler whose init fails is not added") {
  fixture f;
  auto j = std::make_shared<journal>();
  auto mgr = warren::spawn_event_manager(f.sys);
  auto err = warren::ev::add_handler(f.sys, mgr, "r", rec(j), msg("refuse"));
  CHECK(err == caf::sec::runtime_error);
  err = warren::ev::add_handler(f.sys, mgr, "t", rec(j), msg("throw"));
  CHECK(err.category() == warren::exit_category);
  CHECK(warren::describe_exit(err).find("init failed") != std::string::npos);
  CHECK(handlers_of(f.sys, mgr).empty());
  CHECK(j->take().empty());
  warren::ev::stop(f.sys, mgr);
}

TEST_CASE("events reach handlers newest first; sync_notify returns after all ran") {
  fixture f;
  auto j = std::make_shared<journal>();
  auto mgr = warren::spawn_event_manager(f.sys);
  for (auto id : {"a", "b", "c"})
    REQUIRE(!warren::ev::add_handler(f.sys, mgr, id, rec(j)));
  j->take();
  warren::ev::notify(mgr, std::string{"e1"});
  warren::ev::notify(mgr, msg("e2"));
  REQUIRE(!warren::ev::sync_notify(f.sys, mgr, msg("e3")));
  CHECK(j->take() == lines{"c:event:e1", "b:event:e1", "a:event:e1", "c:event:e2", "b:event:e2", "a:event:e2",
                           "c:event:e3", "b:event:e3", "a:event:e3"});
  warren::ev::stop(f.sys, mgr);
}

TEST_CASE("a crashing handler is removed, reported, and the others live on") {
  fixture f;
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  warren::set_logger(std::make_shared<spdlog::logger>("warren", sink));
  struct restore_logger {
    ~restore_logger() {
      warren::set_logger(std::make_shared<spdlog::logger>(
          "warren", std::make_shared<spdlog::sinks::stderr_color_sink_mt>()));
    }
  } restore;
  auto j = std::make_shared<journal>();
  auto mgr = warren::spawn_event_manager(f.sys);
  REQUIRE(!warren::ev::add_handler(f.sys, mgr, "a", rec(j)));
  REQUIRE(!warren::ev::add_handler(f.sys, mgr, "fragile", rec(j, true)));
  REQUIRE(!warren::ev::add_handler(f.sys, mgr, "c", rec(j)));
  j->take();
  REQUIRE(!warren::ev::sync_notify(f.sys, mgr, msg("crash")));
  auto got = j->take();
  REQUIRE(got.size() == 3);
  CHECK(got[0] == "c:event:crash");
  CHECK(got[1].rfind("fragile:terminate:error:exception", 0) == 0);
  CHECK(got[1].find("boom") != std::string::npos);
  CHECK(got[2] == "a:event:crash");
  CHECK(handlers_of(f.sys, mgr) == ids{"c", "a"});
  REQUIRE(!warren::ev::sync_notify(f.sys, mgr, msg("after")));
  CHECK(j->take() == lines{"c:event:after", "a:event:after"});
  sink->flush();
  CHECK(captured.str().find("handler fragile crashed in handle_event") != std::string::npos);
  warren::ev::stop(f.sys, mgr);
}

TEST_CASE("call: reply, missing handler, crashing handler") {
  fixture f;
  auto j = std::make_shared<journal>();
  auto mgr = warren::spawn_event_manager(f.sys);
  REQUIRE(!warren::ev::add_handler(f.sys, mgr, "a", rec(j)));
  REQUIRE(!warren::ev::add_handler(f.sys, mgr, "b", rec(j)));
  REQUIRE(!warren::ev::sync_notify(f.sys, mgr, msg("e")));
  j->take();

  auto reply = warren::ev::call(f.sys, mgr, "a", msg("how many"));
  REQUIRE(reply);
  REQUIRE(reply->match_elements<std::string, int>());
  CHECK(reply->get_as<std::string>(0) == "a");
  CHECK(reply->get_as<int>(1) == 1);

  auto missing = warren::ev::call(f.sys, mgr, "zzz", msg("hello"));
  REQUIRE(!missing);
  CHECK(is(missing.error(), warren::event_errc::bad_module));

  auto crashed = warren::ev::call(f.sys, mgr, "b", msg("crash"));
  REQUIRE(!crashed);
  CHECK(crashed.error().category() == warren::exit_category);
  CHECK(warren::describe_exit(crashed.error()).find("bad call") != std::string::npos);
  auto got = j->take();
  REQUIRE(got.size() == 1);
  CHECK(got[0].rfind("b:terminate:error:exception", 0) == 0);
  CHECK(handlers_of(f.sys, mgr) == ids{"a"});

  // A call may ask for removal: the reply still arrives, then terminate(remove_handler).
  reply = warren::ev::call(f.sys, mgr, "a", msg("leave"));
  REQUIRE(reply);
  CHECK(j->take() == lines{"a:terminate:remove_handler"});
  CHECK(handlers_of(f.sys, mgr).empty());
  warren::ev::stop(f.sys, mgr);
}

TEST_CASE("a handler removes itself from handle_event") {
  fixture f;
  auto j = std::make_shared<journal>();
  auto mgr = warren::spawn_event_manager(f.sys);
  REQUIRE(!warren::ev::add_handler(f.sys, mgr, "a", rec(j)));
  REQUIRE(!warren::ev::add_handler(f.sys, mgr, "b", rec(j)));
  j->take();
  REQUIRE(!warren::ev::sync_notify(f.sys, mgr, msg("leave")));
  CHECK(j->take() ==
        lines{"b:event:leave", "b:terminate:remove_handler", "a:event:leave", "a:terminate:remove_handler"});
  CHECK(handlers_of(f.sys, mgr).empty());
  warren::ev::stop(f.sys, mgr);
}

TEST_CASE("swap_handler: terminate the old, hand its result to the new") {
  fixture f;
  auto j = std::make_shared<journal>();
  auto mgr = warren::spawn_event_manager(f.sys);
  REQUIRE(!warren::ev::add_handler(f.sys, mgr, "old", rec(j)));
  REQUIRE(!warren::ev::add_handler(f.sys, mgr, "other", rec(j)));
  j->take();
  REQUIRE(!warren::ev::swap_handler(f.sys, mgr, "old", msg("a1"), "new", rec(j), msg("a2")));
  CHECK(j->take() == lines{"old:terminate:args:a1", "new:init:a2:from:bye old"});
  CHECK(handlers_of(f.sys, mgr) == ids{"new", "other"});

  SUBCASE("the old handler is missing: the new one is added anyway") {
    REQUIRE(!warren::ev::swap_handler(f.sys, mgr, "ghost", msg("a1"), "newer", rec(j), msg("a2")));
    CHECK(j->take() == lines{"newer:init:a2:from:none"});
    CHECK(handlers_of(f.sys, mgr) == ids{"newer", "new", "other"});
  }
  SUBCASE("the new handler refuses: the old one is gone anyway") {
    auto err = warren::ev::swap_handler(f.sys, mgr, "new", msg("a1"), "newer", rec(j), msg("refuse"));
    CHECK(err == caf::sec::runtime_error);
    CHECK(j->take() == lines{"new:terminate:args:a1"});
    CHECK(handlers_of(f.sys, mgr) == ids{"other"});
  }
  SUBCASE("the new id is taken") {
    auto err = warren::ev::swap_handler(f.sys, mgr, "new", msg("a1"), "other", rec(j), msg("a2"));
    CHECK(is(err, warren::event_errc::already_exists));
    CHECK(j->take().empty());
    CHECK(handlers_of(f.sys, mgr) == ids{"new", "other"});
  }
  warren::ev::stop(f.sys, mgr);
}

TEST_CASE("supervised handlers tell their owner why they went") {
  fixture f;
  caf::scoped_actor owner{f.sys};
  auto j = std::make_shared<journal>();
  auto mgr = warren::spawn_event_manager(f.sys);
  REQUIRE(!warren::ev::add_sup_handler(f.sys, mgr, "del", rec(j), owner));
  REQUIRE(!warren::ev::add_sup_handler(f.sys, mgr, "crash", rec(j, true), owner));
  REQUIRE(!warren::ev::add_sup_handler(f.sys, mgr, "leave", rec(j), owner));
  REQUIRE(!warren::ev::add_sup_handler(f.sys, mgr, "swap", rec(j), owner));
  REQUIRE(!warren::ev::add_sup_handler(f.sys, mgr, "stop", rec(j), owner));
  REQUIRE(!warren::ev::add_handler(f.sys, mgr, "plain", rec(j)));

  REQUIRE(warren::ev::delete_handler(f.sys, mgr, "del"));
  auto [id1, why1] = next_exit_note(owner);
  CHECK(id1 == "del");
  CHECK(!why1); // normal

  REQUIRE(!warren::ev::sync_notify(f.sys, mgr, msg("crash")));
  auto [id2, why2] = next_exit_note(owner);
  CHECK(id2 == "crash");
  CHECK(why2.category() == warren::exit_category);

  REQUIRE(warren::ev::call(f.sys, mgr, "leave", msg("leave")));
  auto [id3, why3] = next_exit_note(owner);
  CHECK(id3 == "leave");
  CHECK(!why3);

  REQUIRE(!warren::ev::swap_handler(f.sys, mgr, "swap", {}, "swapped", rec(j)));
  auto [id4, why4] = next_exit_note(owner);
  CHECK(id4 == "swap");
  CHECK(why4 == warren::make_error(warren::event_errc::swapped));
  CHECK(handlers_of(f.sys, mgr) == ids{"swapped", "plain", "stop"});

  CHECK(warren::ev::stop(f.sys, mgr) == warren::shutdown());
  // Manager stop: every supervised handler's owner hears `shutdown` (the swapped-in
  // handler kept the old one's owner), and the plain one is terminated silently.
  std::set<std::string> stopped;
  for (int i = 0; i < 2; ++i) {
    auto [id, why] = next_exit_note(owner);
    CHECK(why == warren::shutdown());
    stopped.insert(id);
  }
  CHECK(stopped == std::set<std::string>{"swapped", "stop"});
  CHECK(mailbox_empty(owner));
}

TEST_CASE("a supervised handler goes with its owner: terminate({stop, Reason})") {
  fixture f;
  caf::scoped_actor self{f.sys};
  auto j = std::make_shared<journal>();
  auto mgr = warren::spawn_event_manager(f.sys);
  auto owner = f.sys.spawn(idle, 0);
  // Monitor before the manager does: exit observers run newest first, so the
  // manager's down message is enqueued before ours arrives.
  self->monitor(owner);
  REQUIRE(!warren::ev::add_sup_handler(f.sys, mgr, "owned1", rec(j), owner));
  REQUIRE(!warren::ev::add_handler(f.sys, mgr, "free", rec(j)));
  REQUIRE(!warren::ev::add_sup_handler(f.sys, mgr, "owned2", rec(j), owner));
  j->take();
  self->send_exit(owner, caf::exit_reason::user_shutdown);
  self->receive([](const caf::down_msg&) {});
  CHECK(handlers_of(f.sys, mgr) == ids{"free"});
  CHECK(j->take() == lines{"owned2:terminate:owner_exit:shutdown", "owned1:terminate:owner_exit:shutdown"});
  // An owner that is already dead: the handler goes at once.
  REQUIRE(!warren::ev::add_sup_handler(f.sys, mgr, "late", rec(j), owner));
  CHECK(handlers_of(f.sys, mgr) == ids{"free"});
  CHECK(j->take() == lines{"late:init:-", "late:terminate:owner_exit:shutdown"});
  warren::ev::stop(f.sys, mgr);
}

TEST_CASE("stopping the manager terminates every handler with stop") {
  fixture f;
  caf::scoped_actor self{f.sys};
  auto j = std::make_shared<journal>();

  SUBCASE("through ev::stop") {
    auto mgr = warren::spawn_event_manager(f.sys);
    for (auto id : {"a", "b", "c"})
      REQUIRE(!warren::ev::add_handler(f.sys, mgr, id, rec(j)));
    j->take();
    CHECK(warren::ev::stop(f.sys, mgr, warren::shutdown_with("done")) == warren::shutdown_with("done"));
    CHECK(j->take() == lines{"c:terminate:stop", "b:terminate:stop", "a:terminate:stop"});
    auto gone = warren::ev::which_handlers(f.sys, mgr);
    REQUIRE(!gone);
    CHECK(is(gone.error(), warren::event_errc::noproc));
    CHECK(is(warren::ev::stop(f.sys, mgr), warren::event_errc::noproc));
  }
  SUBCASE("through an exit message from the parent; others are handle_info") {
    auto parent = f.sys.spawn(
        [](caf::event_based_actor* p, int) -> caf::behavior {
          return {[=](ping_atom, caf::actor& mgr) { p->send_exit(mgr, warren::shutdown()); }};
        },
        0);
    auto mgr = warren::spawn_event_manager(f.sys, parent);
    REQUIRE(!warren::ev::add_handler(f.sys, mgr, "a", rec(j)));
    REQUIRE(!warren::ev::add_handler(f.sys, mgr, "b", rec(j)));
    j->take();
    self->send_exit(mgr, caf::exit_reason::user_shutdown); // not from the parent
    self->send(mgr, ping_atom::value);                     // any other message
    auto alive = warren::ev::which_handlers(f.sys, mgr);
    REQUIRE(alive);
    auto got = j->take();
    REQUIRE(got.size() == 4);
    INFO(got[0]);
    CHECK(got[0].rfind("b:info:(exit_msg", 0) == 0);
    CHECK(got[1].rfind("a:info:(exit_msg", 0) == 0);
    CHECK(got[2] == "b:info:('ping')");
    CHECK(got[3] == "a:info:('ping')");
    self->monitor(mgr);
    self->send(parent, ping_atom::value, mgr);
    self->receive([&](const caf::down_msg& msg) { CHECK(msg.reason == warren::shutdown()); });
    CHECK(j->take() == lines{"b:terminate:stop", "a:terminate:stop"});
    self->send_exit(parent, caf::exit_reason::kill);
  }
}

TEST_CASE("an event manager runs under a supervisor") {
  fixture f;
  auto j = std::make_shared<journal>();
  auto sup = warren::start_supervisor(f.sys, {}, {warren::event_manager_child("events")});
  REQUIRE(sup);
  auto children = warren::sup::which_children(f.sys, *sup);
  REQUIRE(children);
  REQUIRE(children->size() == 1);
  auto mgr = children->front().handle;
  REQUIRE(mgr);
  REQUIRE(!warren::ev::add_handler(f.sys, mgr, "a", rec(j)));
  REQUIRE(!warren::ev::sync_notify(f.sys, mgr, msg("hello")));
  CHECK(warren::sup::stop(f.sys, *sup) == warren::shutdown());
  CHECK(j->take() == lines{"a:init:-", "a:event:hello", "a:terminate:stop"});
}
