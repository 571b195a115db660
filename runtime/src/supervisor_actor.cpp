#include "supervisor_actor.hpp"

#include "warren/exit.hpp"
#include "warren/log.hpp"
#include "warren/registry.hpp"

#include <caf/actor_cast.hpp>
#include <caf/send.hpp>

#include <algorithm>
#include <memory>

namespace warren::detail {

namespace {

// Internal timers and self-messages.
using shutdown_timeout_atom = caf::atom_constant<caf::atom("sdtimeout")>;
using delayed_restart_atom = caf::atom_constant<caf::atom("delrestart")>;
using try_again_atom = caf::atom_constant<caf::atom("tryagain")>;

// Final reasons OTP accepts from a child it stops (supervisor.erl shutdown/1);
// anything else is reported as a shutdown_error.
bool expected_shutdown_reason(const caf::error& reason, const shutdown_spec& how, restart_type rt) {
  if (how.how == shutdown_spec::kind::brutal_kill) {
    if (reason == caf::exit_reason::kill)
      return true;
  } else if (reason == caf::exit_reason::user_shutdown) {
    return true;
  }
  return rt != restart_type::permanent && is_normal_exit(reason);
}

} // namespace

supervisor_actor::supervisor_actor(caf::actor_config& cfg, supervisor_init init, const caf::actor& parent,
                                   supervisor_outcome* outcome)
  : caf::event_based_actor(cfg), id_(std::move(init.id)), flags_(init.flags), exit_source_(address()),
    outcome_(outcome), rng_(static_cast<unsigned>(id())) {
  if (parent)
    parent_ = parent.address();
  // OTP's init: validate, then start the children in order. Everything here runs on
  // the spawning thread; see the header for why.
  if (auto err = check_flags(flags_)) {
    init_failure_ = err;
  } else if (simple()) {
    if (init.children.size() != 1) {
      init_failure_ = make_error(sup_errc::invalid_spec,
                                 "simple_one_for_one needs exactly one child spec (bad_start_spec)");
    } else if (auto err = check_child_spec(init.children.front(), flags_)) {
      init_failure_ = err;
    } else {
      template_ = std::move(init.children.front());
    }
  } else {
    for (auto& spec : init.children) {
      if (auto err = check_child_spec(spec, flags_)) {
        init_failure_ = err;
        break;
      }
      if (find(spec.id)) {
        init_failure_ = make_error(sup_errc::invalid_spec, "duplicate_child_name " + spec.id);
        break;
      }
      children_.push_back(make_child(std::move(spec)));
    }
    if (!init_failure_)
      init_children();
  }
  if (outcome_) {
    outcome_->error = init_failure_;
    outcome_->stopping = init_failure_ && (!init_leftover_.empty() || !running_targets_reversed().empty());
  }
  outcome_ = nullptr;
  attach_cleanup();
}

supervisor_actor::supervisor_actor(caf::actor_config& cfg, estate heritage)
  : caf::event_based_actor(cfg), id_(std::move(heritage.id)), exit_source_(std::move(heritage.origin)),
    heritage_(std::move(heritage.targets)), keep_alive_(ctrl()), rng_(static_cast<unsigned>(id())) {
  if (heritage.all_at_once)
    flags_.strategy = restart_strategy::simple_one_for_one;
  attach_cleanup();
}

void supervisor_actor::attach_cleanup() {
  // What links would do, in O(1) per child: a supervisor that ends without stopping
  // its children (killed, or crashed) sends them its exit reason, as a linked
  // Erlang supervisor would. After an orderly stop there is nobody left to tell.
  // Dropping the records also breaks reference cycles with children that hold a
  // strong handle to us. Nothing here may make a strong reference to this actor:
  // after its last handle was dropped it runs inside CAF's destruction of the actor.
  attach_functor([this](const caf::error& reason) {
    if (reason == caf::exit_reason::unreachable) {
      hand_over();
    } else {
      for (auto& c : children_)
        if (c.handle)
          send_exit_to(c.handle, reason, nullptr);
      for (auto& [key, d] : dyn_)
        if (d.handle)
          send_exit_to(d.handle, reason, nullptr);
    }
    children_.clear();
    dyn_.clear();
    template_ = child_spec{};
    term_.reset();
    pending_downs_.clear();
    heritage_.clear();
    keep_alive_.reset();
  });
}

void supervisor_actor::hand_over() {
  // The last handle is gone: the owner can no longer stop the tree, so treat it as
  // the owner's exit (shutdown) rather than leave the children running unowned or
  // kill them without their terminate.
  estate heritage{id_, address(), {}, simple()};
  if (term_) {
    // Children being stopped right now (a restart's scope, terminate_child).
    for (auto& [aid, t] : term_->waiting)
      heritage.targets.push_back(t);
    for (auto& t : term_->queue)
      if (term_->dead.count(t.handle.id()) == 0)
        heritage.targets.push_back(t);
  }
  for (auto& t : running_targets_reversed())
    heritage.targets.push_back(std::move(t));
  if (heritage.targets.empty())
    return;
  log().warn("supervisor {}: its last handle was dropped while it ran; stopping its {} children", id_,
             heritage.targets.size());
  system().spawn<supervisor_actor>(std::move(heritage));
}

void supervisor_actor::send_exit_to(const caf::actor& dest, caf::error reason, caf::execution_unit* host) {
  // As send_exit, without a strong reference to ourselves (see attach_cleanup), and in
  // the name of the dropped supervisor when we are its heir.
  dest->enqueue(nullptr, caf::make_message_id(),
                caf::make_message(caf::exit_msg{exit_source_, std::move(reason)}), host);
}

void supervisor_actor::init_children() {
  for (size_t i = 0; i < children_.size(); ++i) {
    auto& c = children_[i];
    auto res = start_one(c.spec, {});
    if (res.failed()) {
      log().error("supervisor {}: child {} failed to start: {}", id_, c.spec.id, describe_exit(res.error()));
      init_failure_ = failed_to_start_child(c.spec.id, res.error());
      if (res.stopping())
        init_leftover_.push_back(
            target{res.stopping(), c.spec.effective_shutdown(), c.spec.id, c.spec.restart, true});
      // Later children are never started; make_behavior stops the earlier ones.
      children_.resize(i + 1);
      return;
    }
    if (res.ignored()) {
      c.state = status::undefined;
      continue;
    }
    mark_running(c, res.actor());
  }
  // Temporary children that returned ignore are not kept (OTP drops their spec).
  std::erase_if(children_, [](const child& c) {
    return c.spec.restart == restart_type::temporary && c.state == status::undefined;
  });
}

start_result supervisor_actor::start_one(const child_spec& spec, const caf::message& args) {
  // OTP's gen_server registers its name before init: a taken name starts nothing.
  if (!spec.name.empty())
    if (auto holder = whereis(system(), spec.name))
      return already_started(holder);
  start_result res{ignore};
  try {
    res = spec.start(start_context{system(), self_handle(), args});
  } catch (...) {
    auto eptr = std::current_exception();
    return exception_to_exit(eptr);
  }
  if (res.failed() && res.stopping())
    monitor(res.stopping());
  if (!res.started())
    return res;
  auto handle = res.actor();
  if (!handle)
    return make_error(exit_code::bad_start, "start function returned a null actor");
  // Monitor, not link: a child that dies right away still produces its down message,
  // and CAF keeps links in a list per actor, which would make each exit O(children).
  monitor(handle);
  if (!spec.name.empty()) {
    if (auto err = register_name(system(), spec.name, handle)) {
      // Taken meanwhile (by another tree): the new child goes, stopped by its spec.
      return start_result{already_started(whereis(system(), spec.name)), handle};
    }
  }
  return res;
}

void supervisor_actor::settle(const start_result& res, const child_spec& spec, std::function<void()> then) {
  // OTP's start_link returns only once a failed start is over: wait (busy, as OTP's
  // supervisor is inside the start) until what it left stopping is gone.
  if (!res.stopping()) {
    then();
    return;
  }
  terminate_targets({target{res.stopping(), spec.effective_shutdown(), spec.id, spec.restart, true}}, false,
                    std::move(then));
}

template <class T>
caf::result<T> supervisor_actor::failed_start(const start_result& res, const child_spec& spec,
                                              caf::error err) {
  if (!res.stopping())
    return err;
  auto rp = make_response_promise();
  settle(res, spec, [rp, err]() mutable { rp.deliver(err); });
  return caf::delegated<T>{};
}

caf::behavior supervisor_actor::make_behavior() {
  set_down_handler([this](caf::down_msg& msg) { on_down(msg); });
  set_exit_handler([this](caf::exit_msg& msg) { on_exit(msg); });
  set_default_handler(
      default_handler{[this](caf::scheduled_actor*, caf::message_view& x) -> caf::result<caf::message> {
        if (term_) // busy: keep it for later, in order
          return caf::skip();
        log().warn("supervisor {}: unexpected message {}", id_, x.content().stringify());
        return caf::make_error(caf::sec::unexpected_message);
      }});
  if (keep_alive_) {
    // An heir: watch the children, stop them, end.
    for (auto& t : heritage_)
      monitor(t.handle);
    stopping_ = true;
    terminate_targets(std::move(heritage_), simple(), [this] {
      keep_alive_.reset();
      quit(shutdown());
    });
    return {};
  }
  if (init_failure_) {
    // OTP stops the children that did start, in reverse order, then exits with
    // {shutdown, {failed_to_start_child, Id, E}}. No request is served meanwhile.
    auto reason = shutdown_with(init_failure_);
    stopping_ = true;
    auto targets = std::move(init_leftover_);
    for (auto& t : running_targets_reversed())
      targets.push_back(std::move(t));
    terminate_targets(std::move(targets), false, [this, reason] { quit(reason); });
    return {};
  }
  return {
      [this](start_child_atom, child_spec& spec) -> caf::result<caf::actor> { return api_start_child(spec); },
      [this](start_child_atom, caf::message& args) -> caf::result<caf::actor> { return api_start_dyn(args); },
      [this](terminate_child_atom, const std::string& id) { api_terminate_child(id); },
      [this](terminate_child_atom, const caf::actor& who) { api_terminate_dyn(who); },
      [this](restart_child_atom, const std::string& id) -> caf::result<caf::actor> {
        return api_restart_child(id);
      },
      [this](delete_child_atom, const std::string& id) -> caf::result<caf::ok_atom> {
        return api_delete_child(id);
      },
      [this](which_children_atom) { return which_children(); },
      [this](count_children_atom) { return count_children(); },
      [this](get_childspec_atom, const std::string& id) -> caf::result<child_spec> {
        if (simple())
          return make_error(sup_errc::simple_one_for_one);
        if (auto idx = find(id))
          return children_[*idx].spec;
        return make_error(sup_errc::not_found);
      },
      [this](tree_atom) { api_tree(); },
      [this](stop_supervisor_atom, caf::error& reason) { stop(std::move(reason)); },
      [this](delayed_restart_atom, const std::string& id, uint64_t token) { on_delayed_restart(id, token); },
      [this](try_again_atom, const std::string& id, uint64_t token) { on_try_again(id, token); },
      [this](delayed_restart_atom, caf::actor_id key, uint64_t token) { on_dyn_timer(key, token, false); },
      [this](try_again_atom, caf::actor_id key, uint64_t token) { on_dyn_timer(key, token, true); },
      [this](shutdown_timeout_atom, uint64_t token) { on_shutdown_timeout(token); },
  };
}

// -- child exits ----------------------------------------------------------------

void supervisor_actor::on_down(caf::down_msg& msg) {
  if (term_) {
    auto aid = msg.source.id();
    if (term_->waiting.count(aid) > 0 ||
        std::any_of(term_->queue.begin(), term_->queue.end(),
                    [&](const target& t) { return t.handle.address() == msg.source; })) {
      target_down(aid, msg.reason);
      return;
    }
    // Another child died while we are busy: handle it afterwards, as OTP would find
    // its EXIT in the mailbox after shutdown/2 returns.
    pending_downs_.push_back(std::move(msg));
    return;
  }
  if (stopping_)
    return;
  if (simple()) {
    dyn_child_exited(msg.source.id(), msg.reason);
    return;
  }
  if (auto idx = find(msg.source))
    child_exited(*idx, msg.reason);
  // else: not (or no longer) a child; OTP ignores such exits.
}

void supervisor_actor::on_exit(caf::exit_msg& msg) {
  // Children's exits are handled through their down messages.
  if (msg.source) {
    if (simple() ? dyn_.count(msg.source.id()) > 0 : find(msg.source).has_value())
      return;
    // OTP: an EXIT from a linked process that is neither child nor parent is ignored.
    // Without a parent, only an anonymous exit (caf::anon_send_exit names the
    // receiver as source), an operator's request, stops us.
    if (msg.source != (parent_ ? parent_ : address()))
      return;
  }
  if (term_) {
    if (!pending_stop_)
      pending_stop_ = msg.reason;
    return;
  }
  stop(msg.reason);
}

void supervisor_actor::report(const std::string& child_id, const caf::error& reason,
                              const char* action) const {
  // Restart loops run hot: build the text only when it will be written.
  auto level = is_normal_exit(reason) ? spdlog::level::info : spdlog::level::err;
  if (!log().should_log(level))
    return;
  if (is_normal_exit(reason))
    log().info("supervisor {}: child {} exited ({}); {}", id_, child_id, describe_exit(reason), action);
  else
    log().error("supervisor {}: child {} crashed: {}; {}", id_, child_id, describe_exit(reason), action);
}

void supervisor_actor::child_exited(size_t idx, const caf::error& reason) {
  auto& c = children_[idx];
  c.handle = nullptr;
  c.state = status::undefined;
  bool normal = is_normal_exit(reason);
  switch (c.spec.restart) {
    case restart_type::temporary: {
      // Never restarted; the spec goes. OTP logs only abnormal exits here.
      if (!normal)
        report(c.spec.id, reason, "temporary, removed");
      notify(observe::tree_event_kind::removed, c.spec.id, 0, c.restarts, false, reason);
      bool significant = c.spec.significant;
      children_.erase(children_.begin() + static_cast<std::ptrdiff_t>(idx));
      auto_shutdown_check(significant);
      return;
    }
    case restart_type::transient:
      if (normal) {
        notify(observe::tree_event_kind::exited, c.spec.id, 0, c.restarts, false, reason);
        auto_shutdown_check(c.spec.significant);
        return;
      }
      break;
    case restart_type::permanent:
      break;
  }
  if (!add_restart()) {
    report(c.spec.id, reason, "restart intensity reached, supervisor gives up");
    notify(observe::tree_event_kind::gave_up, c.spec.id, 0, c.restarts, false, reason);
    give_up(c.spec.id, reason);
    return;
  }
  report(c.spec.id, reason, "restarting");
  ++c.restarts;
  notify(observe::tree_event_kind::restarting, c.spec.id, 0, c.restarts, false, reason);
  restart_static(c.spec.id);
}

void supervisor_actor::dyn_child_exited(caf::actor_id key, const caf::error& reason) {
  auto i = dyn_.find(key);
  if (i == dyn_.end() || i->second.state != status::running)
    return;
  bool normal = is_normal_exit(reason);
  if (template_.restart == restart_type::temporary ||
      (template_.restart == restart_type::transient && normal)) {
    if (!normal)
      report(template_.id, reason, "not restarted, removed");
    auto restarts = i->second.restarts;
    dyn_.erase(i);
    notify(observe::tree_event_kind::removed, template_.id, key, restarts, true, reason);
    return;
  }
  if (!add_restart()) {
    report(template_.id, reason, "restart intensity reached, supervisor gives up");
    notify(observe::tree_event_kind::gave_up, template_.id, key, i->second.restarts, true, reason);
    dyn_.erase(i);
    give_up(template_.id, reason);
    return;
  }
  report(template_.id, reason, "restarting");
  ++i->second.restarts;
  i->second.handle = nullptr;
  notify(observe::tree_event_kind::restarting, template_.id, key, i->second.restarts, true, reason);
  restart_dyn(key);
}

void supervisor_actor::drain_pending() {
  while (!term_ && !pending_downs_.empty()) {
    auto msg = std::move(pending_downs_.front());
    pending_downs_.pop_front();
    on_down(msg);
  }
  if (!term_ && pending_stop_) {
    auto reason = std::move(*pending_stop_);
    pending_stop_.reset();
    stop(std::move(reason));
  }
}

// -- restarts --------------------------------------------------------------------

bool supervisor_actor::add_restart() {
  // OTP's add_restart: keep the restarts inside the window, add this one, and give
  // up when there are more than `intensity`. A deque makes it O(1) amortised: each
  // timestamp is pushed and popped once. Unlike OTP (whole seconds) the window is
  // exact: a restart counts for exactly `period` after it happened.
  auto t = now();
  while (!restarts_.empty() && restarts_.front() + flags_.period < t)
    restarts_.pop_front();
  restarts_.push_back(t);
  return restarts_.size() <= static_cast<size_t>(flags_.intensity);
}

caf::timespan supervisor_actor::next_delay(const restart_delay& policy, unsigned& attempt,
                                           time_point started_at, bool counted) {
  if (!policy.enabled())
    return caf::timespan{0};
  auto reset_after = policy.reset_after.count() > 0
                         ? policy.reset_after
                         : (policy.max.count() > 0 ? policy.max : policy.initial) * 10;
  if (!counted && started_at != time_point{} && now() - started_at >= reset_after)
    attempt = 0; // the child ran long enough: start the backoff over
  std::uniform_real_distribution<double> unit{0.0, 1.0};
  auto d = policy.delay_for(attempt, unit(rng_));
  ++attempt;
  return d;
}

void supervisor_actor::restart_static(const std::string& id) {
  // The failed child is already marked undefined. Stop the others in its scope in
  // reverse start order (one_for_all: all; rest_for_one: the later ones), then start
  // the scope in order, after the failed child's restart delay if it has one.
  auto idx = *find(id);
  size_t first = flags_.strategy == restart_strategy::rest_for_one ? idx : 0;
  std::vector<target> targets;
  if (flags_.strategy != restart_strategy::one_for_one) {
    for (size_t i = children_.size(); i-- > first;) {
      auto& c = children_[i];
      if (c.handle) {
        targets.push_back(make_target(c));
        c.handle = nullptr;
        c.state = status::undefined;
      }
    }
  }
  auto after = [this, id] {
    // Temporary children in the scope were stopped for good: remove them.
    auto fidx = find(id);
    if (!fidx)
      return;
    size_t from = flags_.strategy == restart_strategy::rest_for_one ? *fidx : 0;
    if (flags_.strategy != restart_strategy::one_for_one) {
      for (size_t i = children_.size(); i-- > from;)
        if (children_[i].spec.restart == restart_type::temporary && children_[i].spec.id != id)
          children_.erase(children_.begin() + static_cast<std::ptrdiff_t>(i));
    }
    auto& c = children_[*find(id)];
    auto delay = next_delay(c.spec.delay, c.backoff_attempt, c.started_at, false);
    if (delay.count() > 0) {
      c.state = status::restarting;
      c.token = next_token();
      c.due = now() + delay;
      notify(observe::tree_event_kind::backoff, id, 0, c.restarts, false, {}, delay);
      log().info("supervisor {}: restarting child {} in {} ms", id_, id,
                 std::chrono::duration_cast<std::chrono::milliseconds>(delay).count());
      delayed_send(this, delay, delayed_restart_atom::value, id, c.token);
      return;
    }
    start_scope(id);
  };
  if (targets.empty())
    after();
  else
    terminate_targets(std::move(targets), false, std::move(after));
}

void supervisor_actor::start_scope(const std::string& id) {
  auto idx = find(id);
  if (!idx)
    return;
  size_t first = flags_.strategy == restart_strategy::one_for_all ? 0 : *idx;
  size_t last = flags_.strategy == restart_strategy::one_for_one ? *idx + 1 : children_.size();
  for (size_t i = first; i < last; ++i) {
    auto& c = children_[i];
    if (c.handle)
      continue; // started meanwhile (restart_child during a delay)
    c.token = 0;
    auto res = start_one(c.spec, {});
    if (res.failed()) {
      // OTP: the child becomes `restarting` and the supervisor retries through its
      // own mailbox, so requests queued meanwhile are served first. Each retry counts
      // as a restart. Later children in the scope stay undefined until then.
      log().error("supervisor {}: child {} failed to restart: {}", id_, c.spec.id,
                  describe_exit(res.error()));
      c.state = status::restarting;
      c.token = next_token();
      settle(res, c.spec,
             [this, id = c.spec.id, token = c.token] { send(this, try_again_atom::value, id, token); });
      return;
    }
    if (res.ignored()) {
      c.state = status::undefined;
      continue;
    }
    mark_running(c, res.actor());
  }
}

void supervisor_actor::on_delayed_restart(const std::string& id, uint64_t token) {
  auto idx = find(id);
  if (!idx || children_[*idx].token != token || stopping_)
    return;
  start_scope(id);
}

void supervisor_actor::on_try_again(const std::string& id, uint64_t token) {
  auto idx = find(id);
  if (!idx || children_[*idx].token != token || stopping_)
    return;
  auto& c = children_[*idx];
  c.token = 0;
  if (!add_restart()) {
    log().error("supervisor {}: child {} keeps failing to start; restart intensity reached, giving up", id_,
                c.spec.id);
    give_up(c.spec.id, failed_to_start_child(c.spec.id, make_error(sup_errc::start_failed)));
    return;
  }
  ++c.restarts;
  c.state = status::undefined;
  notify(observe::tree_event_kind::restarting, id, 0, c.restarts, false,
         make_error(sup_errc::start_failed, id));
  restart_static(id);
}

void supervisor_actor::restart_dyn(caf::actor_id key) {
  auto& d = dyn_[key];
  auto delay = next_delay(template_.delay, d.backoff_attempt, d.started_at, false);
  if (delay.count() > 0) {
    d.state = status::restarting;
    d.token = next_token();
    d.due = now() + delay;
    notify(observe::tree_event_kind::backoff, template_.id, key, d.restarts, true, {}, delay);
    delayed_send(this, delay, delayed_restart_atom::value, key, d.token);
    return;
  }
  start_dyn(key);
}

void supervisor_actor::start_dyn(caf::actor_id key) {
  auto i = dyn_.find(key);
  if (i == dyn_.end())
    return;
  auto res = start_one(template_, i->second.args);
  if (res.failed()) {
    log().error("supervisor {}: dynamic child failed to restart: {}", id_, describe_exit(res.error()));
    i->second.state = status::restarting;
    i->second.token = next_token();
    settle(res, template_,
           [this, key, token = i->second.token] { send(this, try_again_atom::value, key, token); });
    return;
  }
  auto d = std::move(i->second);
  dyn_.erase(i);
  if (res.ignored())
    return; // OTP: simple_one_for_one removes a child whose restart returns ignore
  d.handle = res.actor();
  d.state = status::running;
  d.token = 0;
  d.started_at = now();
  auto restarts = d.restarts;
  auto aid = d.handle.id();
  dyn_.emplace(aid, std::move(d));
  notify(observe::tree_event_kind::started, template_.id, aid, restarts, true);
}

void supervisor_actor::on_dyn_timer(caf::actor_id key, uint64_t token, bool count_restart) {
  auto i = dyn_.find(key);
  if (i == dyn_.end() || i->second.token != token || stopping_)
    return;
  i->second.token = 0;
  if (count_restart) {
    if (!add_restart()) {
      log().error("supervisor {}: dynamic child keeps failing to start; giving up", id_);
      dyn_.erase(i);
      give_up(template_.id, failed_to_start_child(template_.id, make_error(sup_errc::start_failed)));
      return;
    }
    ++i->second.restarts;
    notify(observe::tree_event_kind::restarting, template_.id, key, i->second.restarts, true,
           make_error(sup_errc::start_failed));
    restart_dyn(key);
    return;
  }
  start_dyn(key);
}

void supervisor_actor::give_up(const std::string& id, const caf::error& reason) {
  log().error("supervisor {}: reached_max_restart_intensity (more than {} restarts in {} ms); last: child {} "
              "({}); shutting down",
              id_, flags_.intensity,
              std::chrono::duration_cast<std::chrono::milliseconds>(flags_.period).count(), id,
              describe_exit(reason));
  stop(shutdown());
}

void supervisor_actor::auto_shutdown_check(bool significant) {
  if (!significant || flags_.auto_shutdown == auto_shutdown::never)
    return;
  if (flags_.auto_shutdown == auto_shutdown::all_significant) {
    bool any_left = std::any_of(children_.begin(), children_.end(),
                                [](const child& c) { return c.spec.significant && c.handle; });
    if (any_left)
      return;
  }
  log().info("supervisor {}: significant child exited; auto_shutdown ({})", id_,
             to_string(flags_.auto_shutdown));
  stop(shutdown());
}

// -- termination -------------------------------------------------------------------

supervisor_actor::target supervisor_actor::make_target(const child& c) const {
  return target{c.handle, c.spec.effective_shutdown(), c.spec.id, c.spec.restart};
}

std::vector<supervisor_actor::target> supervisor_actor::running_targets_reversed() const {
  std::vector<target> out;
  if (simple()) {
    for (auto& [key, d] : dyn_)
      if (d.handle)
        out.push_back(target{d.handle, template_.effective_shutdown(), template_.id, template_.restart});
    return out;
  }
  for (auto i = children_.rbegin(); i != children_.rend(); ++i)
    if (i->handle)
      out.push_back(make_target(*i));
  return out;
}

void supervisor_actor::terminate_targets(std::vector<target> targets, bool all_at_once,
                                         std::function<void()> done) {
  term_.emplace();
  term_->queue.assign(std::make_move_iterator(targets.begin()), std::make_move_iterator(targets.end()));
  term_->all_at_once = all_at_once;
  term_->token = next_token();
  term_->done = std::move(done);
  // Busy: only our own shutdown timer is served; the default handler skips the
  // rest, which CAF replays in order once we unbecome.
  become(caf::keep_behavior,
         caf::behavior{[this](shutdown_timeout_atom, uint64_t token) { on_shutdown_timeout(token); }});
  termination_step();
}

void supervisor_actor::stop_target(const target& t) {
  if (t.how.how == shutdown_spec::kind::brutal_kill)
    send_exit_to(t.handle, caf::exit_reason::kill, context());
  else
    send_exit_to(t.handle, caf::exit_reason::user_shutdown, context());
}

void supervisor_actor::termination_step() {
  auto& t = *term_;
  if (t.all_at_once) {
    // simple_one_for_one: tell all at once, one timer for all (OTP's
    // terminate_dynamic_children).
    std::optional<caf::timespan> timeout;
    while (!t.queue.empty()) {
      auto x = std::move(t.queue.front());
      t.queue.pop_front();
      auto aid = x.handle.id();
      if (auto d = t.dead.find(aid); d != t.dead.end()) {
        t.dead.erase(d);
        continue;
      }
      stop_target(x);
      if (x.how.how == shutdown_spec::kind::timeout)
        timeout = x.how.time;
      t.waiting.emplace(aid, std::move(x));
    }
    if (t.waiting.empty()) {
      finish_termination();
      return;
    }
    if (timeout)
      delayed_send(this, *timeout, shutdown_timeout_atom::value, t.token);
    return;
  }
  // Static strategies: one child at a time, reverse start order.
  while (t.waiting.empty()) {
    if (t.queue.empty()) {
      finish_termination();
      return;
    }
    auto x = std::move(t.queue.front());
    t.queue.pop_front();
    auto aid = x.handle.id();
    if (auto d = t.dead.find(aid); d != t.dead.end()) {
      // It died on its own before we got to it; nothing to stop.
      t.dead.erase(d);
      continue;
    }
    stop_target(x);
    if (x.how.how == shutdown_spec::kind::timeout) {
      t.token = next_token();
      delayed_send(this, x.how.time, shutdown_timeout_atom::value, t.token);
    }
    t.waiting.emplace(aid, std::move(x));
  }
}

void supervisor_actor::target_down(caf::actor_id aid, const caf::error& reason) {
  auto& t = *term_;
  auto i = t.waiting.find(aid);
  if (i == t.waiting.end()) {
    t.dead.emplace(aid, reason); // still queued: skip it when its turn comes
    return;
  }
  if (!i->second.leftover && !expected_shutdown_reason(reason, i->second.how, i->second.restart))
    log().warn("supervisor {}: shutdown_error: child {} exited with {} while being stopped ({})", id_,
               i->second.id, describe_exit(reason), to_string(i->second.how));
  t.waiting.erase(i);
  if (t.waiting.empty())
    termination_step();
}

void supervisor_actor::on_shutdown_timeout(uint64_t token) {
  if (!term_ || term_->token != token)
    return; // stale timer
  for (auto& [aid, t] : term_->waiting) {
    log().warn("supervisor {}: child {} did not stop within {}; killing it", id_, t.id, to_string(t.how));
    send_exit_to(t.handle, caf::exit_reason::kill, context());
  }
}

void supervisor_actor::finish_termination() {
  auto done = std::move(term_->done);
  term_.reset();
  unbecome();
  if (done)
    done();
  drain_pending();
}

void supervisor_actor::stop(caf::error reason) {
  if (stopping_)
    return;
  stopping_ = true;
  pending_downs_.clear();
  terminate_targets(running_targets_reversed(), simple(), [this, reason] {
    log().debug("supervisor {}: stopped ({})", id_, describe_exit(reason));
    children_.clear();
    dyn_.clear();
    quit(reason);
  });
}

// -- API ------------------------------------------------------------------------------

caf::result<caf::actor> supervisor_actor::api_start_child(child_spec& spec) {
  if (simple())
    return make_error(sup_errc::simple_one_for_one, "start_child takes arguments under simple_one_for_one");
  if (auto err = check_child_spec(spec, flags_))
    return err;
  if (auto idx = find(spec.id)) {
    auto& c = children_[*idx];
    if (c.handle)
      return already_started(c.handle);
    return make_error(sup_errc::already_present);
  }
  auto res = start_one(spec, {});
  if (res.failed()) {
    // OTP passes {already_started, Pid} from the start function through unchanged.
    auto err = already_started_of(res.error()) ? res.error() : failed_to_start_child(spec.id, res.error());
    return failed_start<caf::actor>(res, spec, std::move(err));
  }
  if (res.ignored()) {
    if (spec.restart != restart_type::temporary)
      children_.push_back(make_child(std::move(spec)));
    return caf::actor{};
  }
  auto c = make_child(std::move(spec));
  mark_running(c, res.actor());
  children_.push_back(std::move(c));
  return children_.back().handle;
}

caf::result<caf::actor> supervisor_actor::api_start_dyn(caf::message& args) {
  if (!simple())
    return make_error(sup_errc::invalid_spec, "start_child with arguments needs simple_one_for_one");
  auto res = start_one(template_, args);
  if (res.failed()) // OTP returns the start function's error unwrapped here
    return failed_start<caf::actor>(res, template_, res.error());
  if (res.ignored())
    return caf::actor{};
  dyn_child d;
  d.handle = res.actor();
  if (template_.restart != restart_type::temporary)
    d.args = std::move(args); // OTP keeps no args for temporary children
  d.started_at = now();
  auto handle = d.handle;
  dyn_.emplace(handle.id(), std::move(d));
  notify(observe::tree_event_kind::started, template_.id, handle.id(), 0, true);
  return handle;
}

void supervisor_actor::api_terminate_child(const std::string& id) {
  auto rp = make_response_promise();
  if (simple()) {
    rp.deliver(make_error(sup_errc::simple_one_for_one));
    return;
  }
  auto idx = find(id);
  if (!idx) {
    rp.deliver(make_error(sup_errc::not_found));
    return;
  }
  auto& c = children_[*idx];
  c.token = 0; // stops pending retries and delayed restarts
  auto finish = [this, id, rp]() mutable {
    if (auto i = find(id); i && children_[*i].spec.restart == restart_type::temporary) {
      notify(observe::tree_event_kind::removed, id, 0, children_[*i].restarts, false, shutdown());
      children_.erase(children_.begin() + static_cast<std::ptrdiff_t>(*i));
    } else if (i) {
      notify(observe::tree_event_kind::exited, id, 0, children_[*i].restarts, false, shutdown());
    }
    rp.deliver(caf::ok_atom::value);
  };
  if (!c.handle) {
    c.state = status::undefined;
    finish();
    return;
  }
  auto t = make_target(c);
  c.handle = nullptr;
  c.state = status::undefined;
  // terminate_child never triggers auto_shutdown and never counts as a restart.
  terminate_targets({std::move(t)}, false, std::move(finish));
}

void supervisor_actor::api_terminate_dyn(const caf::actor& who) {
  auto rp = make_response_promise();
  if (!simple()) {
    rp.deliver(make_error(sup_errc::not_found));
    return;
  }
  auto i = who ? dyn_.find(who.id()) : dyn_.end();
  if (i == dyn_.end() || i->second.handle != who) {
    // OTP: ok for a dead pid, not_found for a live one that is not our child.
    auto ptr = caf::actor_cast<caf::abstract_actor*>(who);
    bool alive = ptr != nullptr && !ptr->getf(caf::abstract_actor::is_terminated_flag);
    if (alive)
      rp.deliver(make_error(sup_errc::not_found));
    else
      rp.deliver(caf::ok_atom::value);
    return;
  }
  target t{i->second.handle, template_.effective_shutdown(), template_.id, template_.restart};
  auto restarts = i->second.restarts;
  dyn_.erase(i);
  notify(observe::tree_event_kind::removed, template_.id, who.id(), restarts, true, shutdown());
  terminate_targets({std::move(t)}, false, [rp]() mutable { rp.deliver(caf::ok_atom::value); });
}

caf::expected<size_t> supervisor_actor::stopped_child(const std::string& id) const {
  // OTP's checks for restart_child and delete_child, in OTP's order.
  if (simple())
    return make_error(sup_errc::simple_one_for_one);
  auto idx = find(id);
  if (!idx)
    return make_error(sup_errc::not_found);
  auto& c = children_[*idx];
  if (c.handle)
    return make_error(sup_errc::running);
  if (c.state == status::restarting)
    return make_error(sup_errc::restarting);
  return *idx;
}

caf::result<caf::actor> supervisor_actor::api_restart_child(const std::string& id) {
  auto idx = stopped_child(id);
  if (!idx)
    return idx.error();
  auto& c = children_[*idx];
  auto res = start_one(c.spec, {});
  if (res.failed()) {
    auto err = already_started_of(res.error()) ? res.error() : failed_to_start_child(c.spec.id, res.error());
    return failed_start<caf::actor>(res, c.spec, std::move(err));
  }
  if (res.ignored())
    return caf::actor{};
  mark_running(c, res.actor());
  return c.handle;
}

caf::result<caf::ok_atom> supervisor_actor::api_delete_child(const std::string& id) {
  auto idx = stopped_child(id);
  if (!idx)
    return idx.error();
  notify(observe::tree_event_kind::removed, id, 0, children_[*idx].restarts, false);
  children_.erase(children_.begin() + static_cast<std::ptrdiff_t>(*idx));
  return caf::ok_atom::value;
}

void supervisor_actor::mark_running(child& c, caf::actor handle) {
  c.handle = std::move(handle);
  c.state = status::running;
  c.started_at = now();
  notify(observe::tree_event_kind::started, c.spec.id, c.handle.id(), c.restarts, false);
}

std::vector<child_info> supervisor_actor::which_children() const {
  std::vector<child_info> out;
  if (simple()) {
    out.reserve(dyn_.size());
    for (auto& [key, d] : dyn_)
      out.push_back(
          child_info{std::string{}, d.handle, d.state, template_.type, template_.restart, d.restarts});
    return out;
  }
  out.reserve(children_.size());
  for (auto i = children_.rbegin(); i != children_.rend(); ++i) // OTP: newest first
    out.push_back(child_info{i->spec.id, i->handle, i->state, i->spec.type, i->spec.restart, i->restarts});
  return out;
}

child_counts supervisor_actor::count_children() const {
  child_counts n;
  if (simple()) {
    n.specs = 1;
    for (auto& [key, d] : dyn_)
      if (d.handle)
        ++n.active;
    (template_.type == child_type::supervisor ? n.supervisors : n.workers) = dyn_.size();
    return n;
  }
  n.specs = children_.size();
  for (auto& c : children_) {
    if (c.handle)
      ++n.active;
    ++(c.spec.type == child_type::supervisor ? n.supervisors : n.workers);
  }
  return n;
}

void supervisor_actor::api_tree() {
  // Our own node, then ask each running child supervisor for its subtree.
  struct pending {
    tree_node root;
    size_t outstanding = 0;
    caf::response_promise rp;
  };
  auto st = std::make_shared<pending>();
  st->rp = make_response_promise();
  auto subs = describe(st->root);
  if (subs.empty()) {
    st->rp.deliver(std::move(st->root));
    return;
  }
  st->outstanding = subs.size();
  for (auto& [pos, handle] : subs) {
    auto done = [st] {
      if (--st->outstanding == 0)
        st->rp.deliver(std::move(st->root));
    };
    request(handle, std::chrono::seconds(5), tree_atom::value)
        .then(
            [st, pos = pos, done](tree_node& sub) {
              auto& slot = st->root.children[pos];
              sub.id = slot.id;
              sub.restart = slot.restart;
              sub.restarts = slot.restarts;
              sub.state = slot.state;
              slot = std::move(sub);
              done();
            },
            [done](caf::error&) { done(); }); // a child that cannot answer stays a leaf
  }
}

// -- helpers ---------------------------------------------------------------------------

supervisor_actor::child supervisor_actor::make_child(child_spec spec) {
  child c;
  c.spec = std::move(spec);
  return c;
}

std::optional<size_t> supervisor_actor::find(const std::string& id) const {
  for (size_t i = 0; i < children_.size(); ++i)
    if (children_[i].spec.id == id)
      return i;
  return std::nullopt;
}

std::optional<size_t> supervisor_actor::find(const caf::actor_addr& who) const {
  for (size_t i = 0; i < children_.size(); ++i)
    if (children_[i].handle && children_[i].handle.address() == who)
      return i;
  return std::nullopt;
}

} // namespace warren::detail
