#include "warren/event_manager.hpp"

#include "warren/log.hpp"

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/message_builder.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/sec.hpp>

#include <algorithm>
#include <map>
#include <utility>

namespace warren {

// -- errors ----------------------------------------------------------------------

std::string to_string(event_errc x) {
  switch (x) {
    case event_errc::module_not_found:
      return "module_not_found";
    case event_errc::bad_module:
      return "bad_module";
    case event_errc::already_exists:
      return "already_exists";
    case event_errc::invalid_handler:
      return "invalid_handler";
    case event_errc::swapped:
      return "swapped";
    case event_errc::noproc:
      return "noproc";
  }
  return "unknown";
}

caf::error make_error(event_errc x) {
  return caf::error{static_cast<uint8_t>(x), event_error_category};
}

caf::error make_error(event_errc x, std::string what) {
  return caf::error{static_cast<uint8_t>(x), event_error_category, caf::make_message(std::move(what))};
}

std::string to_string(terminate_reason::kind x) {
  switch (x) {
    case terminate_reason::kind::args:
      return "args";
    case terminate_reason::kind::remove_handler:
      return "remove_handler";
    case terminate_reason::kind::stop:
      return "stop";
    case terminate_reason::kind::owner_exit:
      return "owner_exit";
    case terminate_reason::kind::error:
      return "error";
  }
  return "unknown";
}

// -- event_handler defaults ------------------------------------------------------

event_handler::~event_handler() = default;

caf::error event_handler::init(const handler_init&) {
  return {};
}

void event_handler::handle_event(const caf::message&) {
  // nop
}

caf::message event_handler::handle_call(const caf::message&) {
  return {};
}

void event_handler::handle_info(const caf::message&) {
  // nop
}

caf::message event_handler::terminate(const terminate_reason&) {
  return {};
}

class event_manager_access {
public:
  static void bind(event_handler& h, std::string id, caf::event_based_actor* mgr) {
    h.id_ = std::move(id);
    h.manager_ = mgr;
    h.remove_requested_ = false;
  }
  static bool take_remove_request(event_handler& h) { return std::exchange(h.remove_requested_, false); }
};

namespace {

// A message holding one element, `x` itself (make_message would unwrap it).
caf::message nest(caf::message x) {
  caf::message_builder mb;
  mb.append(std::move(x));
  return mb.to_message();
}

class event_manager_actor : public caf::event_based_actor {
public:
  event_manager_actor(caf::actor_config& cfg, const caf::actor& parent)
    : caf::event_based_actor(cfg), parent_(parent.address()) {}

  const char* name() const override { return "warren.event_manager"; }

  // Killed (or otherwise ended without shut_down): as in OTP, no terminate; the
  // handlers are destroyed and owner handles released, which breaks any cycle with
  // an owner holding this manager.
  void on_exit() override {
    handlers_.clear();
    owners_.clear();
  }

  caf::behavior make_behavior() override {
    set_exit_handler([this](caf::exit_msg& msg) { on_exit_msg(msg); });
    set_down_handler([this](caf::down_msg& msg) { on_down(msg); });
    set_default_handler([this](caf::scheduled_actor*, caf::message_view& x) -> caf::result<caf::message> {
      info(x.move_content_to_message());
      return caf::message{};
    });
    return {
        [this](add_handler_atom, std::string& id, handler_ptr& h, caf::message& args) -> caf::result<void> {
          return to_result(add(std::move(id), std::move(h), handler_init{std::move(args), false, {}}, {}));
        },
        [this](add_sup_handler_atom, std::string& id, handler_ptr& h,
               caf::message& args) -> caf::result<void> {
          auto owner = caf::actor_cast<caf::actor>(current_sender());
          return to_result(add(std::move(id), std::move(h), handler_init{std::move(args), false, {}}, owner));
        },
        [this](add_sup_handler_atom, std::string& id, handler_ptr& h, caf::message& args,
               caf::actor& owner) -> caf::result<void> {
          return to_result(add(std::move(id), std::move(h), handler_init{std::move(args), false, {}}, owner));
        },
        [this](delete_handler_atom, const std::string& id, caf::message& args) -> caf::result<caf::message> {
          auto i = find(id);
          if (i == handlers_.size())
            return make_error(event_errc::module_not_found, id);
          auto res = remove_at(i, terminate_reason::with_args(std::move(args)), caf::error{});
          if (!res)
            return std::move(res.error());
          return nest(std::move(*res));
        },
        [this](swap_handler_atom, const std::string& old_id, caf::message& args1, std::string& new_id,
               handler_ptr& h, caf::message& args2) -> caf::result<void> {
          return to_result(swap(old_id, std::move(args1), std::move(new_id), std::move(h), std::move(args2),
                                std::nullopt));
        },
        [this](swap_sup_handler_atom, const std::string& old_id, caf::message& args1, std::string& new_id,
               handler_ptr& h, caf::message& args2) -> caf::result<void> {
          auto owner = caf::actor_cast<caf::actor>(current_sender());
          return to_result(
              swap(old_id, std::move(args1), std::move(new_id), std::move(h), std::move(args2), owner));
        },
        [this](swap_sup_handler_atom, const std::string& old_id, caf::message& args1, std::string& new_id,
               handler_ptr& h, caf::message& args2, caf::actor& owner) -> caf::result<void> {
          return to_result(
              swap(old_id, std::move(args1), std::move(new_id), std::move(h), std::move(args2), owner));
        },
        [this](which_handlers_atom) {
          std::vector<std::string> ids;
          ids.reserve(handlers_.size());
          for (auto& e : handlers_)
            ids.push_back(e.id);
          return ids;
        },
        [this](notify_atom, const caf::message& event) { dispatch(event); },
        [this](sync_notify_atom, const caf::message& event) -> caf::result<void> {
          dispatch(event);
          return caf::unit;
        },
        [this](event_call_atom, const std::string& id,
               const caf::message& request) -> caf::result<caf::message> { return call(id, request); },
        [this](event_stop_atom, caf::error& reason) -> caf::result<void> {
          shut_down(std::move(reason));
          return caf::unit;
        },
    };
  }

private:
  struct entry {
    std::string id;
    handler_ptr handler;
    caf::actor owner; // null unless supervised
  };

  static caf::result<void> to_result(caf::error err) {
    if (err)
      return err;
    return caf::unit;
  }

  size_t find(const std::string& id) const {
    auto i = std::find_if(handlers_.begin(), handlers_.end(), [&](const entry& e) { return e.id == id; });
    return static_cast<size_t>(i - handlers_.begin());
  }

  // Runs one handler callback; a throw becomes the returned crash reason.
  template <class F>
  caf::error guarded(F&& f) {
    try {
      f();
      return {};
    } catch (...) {
      auto eptr = std::current_exception();
      return exception_to_exit(eptr);
    }
  }

  void report_crash(const entry& e, const char* callback, const caf::error& crash) {
    log().error("event manager {}: handler {} crashed in {}: {}; handler removed", id(), e.id, callback,
                describe_exit(crash));
  }

  // -- adding and removing -------------------------------------------------------

  caf::error add(std::string id, handler_ptr h, handler_init init, const std::optional<caf::actor>& owner) {
    if (id.empty() || !h)
      return make_error(event_errc::invalid_handler, "a handler needs an id and an object");
    if (find(id) != handlers_.size())
      return make_error(event_errc::already_exists, id);
    event_manager_access::bind(*h, id, this);
    caf::error refused;
    if (auto crash = guarded([&] { refused = h->init(init); }))
      return crash;
    if (refused)
      return refused;
    event_manager_access::take_remove_request(*h);
    entry e{std::move(id), std::move(h), owner ? *owner : caf::actor{}};
    if (e.owner && owners_[e.owner.address()]++ == 0)
      monitor(e.owner); // a dead owner: the down message removes the handler at once
    handlers_.insert(handlers_.begin(), std::move(e));
    return {};
  }

  // Removes handlers_[i]: terminate(why), then tells a supervising owner `owner_note`
  // (unless it is the owner's own exit). Returns what terminate returned, or the
  // crash if terminate threw.
  caf::expected<caf::message> remove_at(size_t i, const terminate_reason& why,
                                        std::optional<caf::error> owner_note) {
    auto e = std::move(handlers_[i]);
    handlers_.erase(handlers_.begin() + static_cast<std::ptrdiff_t>(i));
    caf::message result;
    auto crash = guarded([&] { result = e.handler->terminate(why); });
    if (crash)
      report_crash(e, "terminate", crash);
    if (e.owner) {
      if (owner_note)
        send(e.owner, gen_event_exit_atom::value, e.id, std::move(*owner_note));
      auto o = owners_.find(e.owner.address());
      if (o != owners_.end() && --o->second == 0) {
        owners_.erase(o);
        demonitor(e.owner);
      }
    }
    if (crash)
      return crash;
    return result;
  }

  // A callback threw: remove the handler with terminate({error, crash}).
  void remove_crashed(size_t i, const char* callback, const caf::error& crash) {
    report_crash(handlers_[i], callback, crash);
    remove_at(i, terminate_reason::crash(crash), crash);
  }

  caf::error swap(const std::string& old_id, caf::message args1, std::string new_id, handler_ptr h,
                  caf::message args2, std::optional<caf::actor> new_owner) {
    if (new_id.empty() || !h)
      return make_error(event_errc::invalid_handler, "a handler needs an id and an object");
    if (new_id != old_id && find(new_id) != handlers_.size())
      return make_error(event_errc::already_exists, new_id);
    handler_init init{std::move(args2), true, std::nullopt};
    std::optional<caf::actor> owner = new_owner;
    auto i = find(old_id);
    if (i != handlers_.size()) {
      if (!owner)
        owner = handlers_[i].owner; // swap_handler keeps the supervision
      auto res = remove_at(i, terminate_reason::with_args(std::move(args1)),
                           make_error(event_errc::swapped, new_id));
      if (res)
        init.old_result = std::move(*res);
    }
    if (owner && !*owner)
      owner.reset();
    return add(std::move(new_id), std::move(h), std::move(init), owner);
  }

  // -- dispatching ---------------------------------------------------------------

  // Runs `f(handler)` on every handler, newest first, removing the ones that throw
  // or ask to be removed.
  template <class F>
  void for_each_handler(const char* callback, F f) {
    for (size_t i = 0; i < handlers_.size();) {
      auto& h = *handlers_[i].handler;
      if (auto crash = guarded([&] { f(h); })) {
        remove_crashed(i, callback, crash);
        continue;
      }
      if (event_manager_access::take_remove_request(h)) {
        remove_at(i, terminate_reason::remove(), caf::error{});
        continue;
      }
      ++i;
    }
  }

  void dispatch(const caf::message& event) {
    for_each_handler("handle_event", [&](event_handler& h) { h.handle_event(event); });
  }

  void info(const caf::message& msg) {
    for_each_handler("handle_info", [&](event_handler& h) { h.handle_info(msg); });
  }

  caf::result<caf::message> call(const std::string& id, const caf::message& request) {
    auto i = find(id);
    if (i == handlers_.size())
      return make_error(event_errc::bad_module, id);
    auto& h = *handlers_[i].handler;
    caf::message reply;
    if (auto crash = guarded([&] { reply = h.handle_call(request); })) {
      remove_crashed(i, "handle_call", crash);
      return crash;
    }
    if (event_manager_access::take_remove_request(h))
      remove_at(i, terminate_reason::remove(), caf::error{});
    return nest(std::move(reply));
  }

  // -- exits ---------------------------------------------------------------------

  void on_exit_msg(caf::exit_msg& msg) {
    if (parent_ ? msg.source == parent_ : static_cast<bool>(msg.reason)) {
      shut_down(std::move(msg.reason));
      return;
    }
    info(caf::make_message(std::move(msg)));
  }

  void on_down(caf::down_msg& msg) {
    if (owners_.count(msg.source) == 0) {
      info(caf::make_message(std::move(msg)));
      return;
    }
    // The owner died: its handlers go with terminate({stop, Reason}), unannounced.
    for (size_t i = 0; i < handlers_.size();) {
      if (handlers_[i].owner && handlers_[i].owner.address() == msg.source)
        remove_at(i, terminate_reason::owner_exit(msg.reason), std::nullopt);
      else
        ++i;
    }
  }

  // Every handler gets terminate(stop), newest first; owners hear `shutdown`.
  void shut_down(caf::error reason) {
    while (!handlers_.empty())
      remove_at(0, terminate_reason::stop(), warren::shutdown());
    quit(std::move(reason));
  }

  caf::actor_addr parent_;                   // weak: a strong handle would make a cycle with the supervisor
  std::vector<entry> handlers_;              // newest first
  std::map<caf::actor_addr, size_t> owners_; // owner -> number of handlers it supervises
};

} // namespace

// -- starting --------------------------------------------------------------------

caf::actor spawn_event_manager(caf::actor_system& sys, caf::actor parent) {
  return sys.spawn<event_manager_actor>(parent);
}

child_spec event_manager_child(std::string id, restart_type restart) {
  child_spec spec;
  spec.id = std::move(id);
  spec.restart = restart;
  spec.type = child_type::worker;
  spec.start = [](const start_context& ctx) -> start_result {
    return spawn_event_manager(ctx.system(), ctx.parent());
  };
  return spec;
}

// -- blocking API ----------------------------------------------------------------

namespace ev {

namespace {

caf::error normalize(caf::error err) {
  if (err == caf::sec::request_receiver_down)
    return make_error(event_errc::noproc);
  return err;
}

template <class... Ts>
caf::error request_unit(caf::actor_system& sys, const caf::actor& mgr, Ts&&... xs) {
  if (!mgr)
    return make_error(event_errc::noproc);
  caf::scoped_actor self{sys};
  caf::error result;
  self->request(mgr, caf::infinite, std::forward<Ts>(xs)...)
      .receive([] {}, [&](caf::error& err) { result = normalize(std::move(err)); });
  return result;
}

template <class... Ts>
caf::expected<caf::message> request_message(caf::actor_system& sys, const caf::actor& mgr,
                                            caf::duration timeout, Ts&&... xs) {
  if (!mgr)
    return make_error(event_errc::noproc);
  caf::scoped_actor self{sys};
  caf::expected<caf::message> result{caf::message{}};
  self->request(mgr, timeout, std::forward<Ts>(xs)...)
      .receive([&](caf::message& reply) { result = std::move(reply); },
               [&](caf::error& err) { result = normalize(std::move(err)); });
  return result;
}

} // namespace

caf::error add_handler(caf::actor_system& sys, const caf::actor& mgr, std::string id, handler_ptr handler,
                       caf::message args) {
  return request_unit(sys, mgr, add_handler_atom::value, std::move(id), std::move(handler), std::move(args));
}

caf::error add_sup_handler(caf::actor_system& sys, const caf::actor& mgr, std::string id, handler_ptr handler,
                           const caf::actor& owner, caf::message args) {
  return request_unit(sys, mgr, add_sup_handler_atom::value, std::move(id), std::move(handler),
                      std::move(args), owner);
}

caf::expected<caf::message> delete_handler(caf::actor_system& sys, const caf::actor& mgr,
                                           const std::string& id, caf::message args) {
  return request_message(sys, mgr, caf::infinite, delete_handler_atom::value, id, std::move(args));
}

caf::error swap_handler(caf::actor_system& sys, const caf::actor& mgr, const std::string& old_id,
                        caf::message args1, std::string new_id, handler_ptr handler, caf::message args2) {
  return request_unit(sys, mgr, swap_handler_atom::value, old_id, std::move(args1), std::move(new_id),
                      std::move(handler), std::move(args2));
}

caf::error swap_sup_handler(caf::actor_system& sys, const caf::actor& mgr, const std::string& old_id,
                            caf::message args1, std::string new_id, handler_ptr handler,
                            const caf::actor& owner, caf::message args2) {
  return request_unit(sys, mgr, swap_sup_handler_atom::value, old_id, std::move(args1), std::move(new_id),
                      std::move(handler), std::move(args2), owner);
}

caf::expected<std::vector<std::string>> which_handlers(caf::actor_system& sys, const caf::actor& mgr) {
  if (!mgr)
    return make_error(event_errc::noproc);
  caf::scoped_actor self{sys};
  caf::expected<std::vector<std::string>> result{std::vector<std::string>{}};
  self->request(mgr, caf::infinite, which_handlers_atom::value)
      .receive([&](std::vector<std::string>& ids) { result = std::move(ids); },
               [&](caf::error& err) { result = normalize(std::move(err)); });
  return result;
}

void notify(const caf::actor& mgr, caf::message event) {
  caf::anon_send(mgr, notify_atom::value, std::move(event));
}

caf::error sync_notify(caf::actor_system& sys, const caf::actor& mgr, caf::message event) {
  return request_unit(sys, mgr, sync_notify_atom::value, std::move(event));
}

caf::expected<caf::message> call(caf::actor_system& sys, const caf::actor& mgr, const std::string& id,
                                 caf::message request, caf::timespan timeout) {
  return request_message(sys, mgr, caf::duration{timeout}, event_call_atom::value, id, std::move(request));
}

caf::error stop(caf::actor_system& sys, const caf::actor& mgr, caf::error reason) {
  if (!mgr)
    return make_error(event_errc::noproc);
  caf::scoped_actor self{sys};
  self->monitor(mgr);
  caf::error failed;
  self->request(mgr, caf::infinite, event_stop_atom::value, std::move(reason))
      .receive([] {}, [&](caf::error& err) { failed = normalize(std::move(err)); });
  if (failed)
    return failed;
  caf::error exit_reason;
  self->receive([&](caf::down_msg& msg) { exit_reason = std::move(msg.reason); });
  return exit_reason;
}

} // namespace ev

} // namespace warren
