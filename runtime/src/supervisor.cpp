// The supervisor's public API: validation, starting, and the blocking client.
#include "warren/supervisor.hpp"

#include "supervisor_actor.hpp"
#include "warren/exit.hpp"

#include <caf/scoped_actor.hpp>

namespace warren {

std::string to_string(restart_strategy x) {
  switch (x) {
    case restart_strategy::one_for_one:
      return "one_for_one";
    case restart_strategy::one_for_all:
      return "one_for_all";
    case restart_strategy::rest_for_one:
      return "rest_for_one";
    case restart_strategy::simple_one_for_one:
      return "simple_one_for_one";
  }
  return "unknown";
}

std::string to_string(auto_shutdown x) {
  switch (x) {
    case auto_shutdown::never:
      return "never";
    case auto_shutdown::any_significant:
      return "any_significant";
    case auto_shutdown::all_significant:
      return "all_significant";
  }
  return "unknown";
}

std::string to_string(sup_errc x) {
  switch (x) {
    case sup_errc::already_present:
      return "already_present";
    case sup_errc::already_started:
      return "already_started";
    case sup_errc::running:
      return "running";
    case sup_errc::restarting:
      return "restarting";
    case sup_errc::not_found:
      return "not_found";
    case sup_errc::simple_one_for_one:
      return "simple_one_for_one";
    case sup_errc::invalid_spec:
      return "invalid_spec";
    case sup_errc::invalid_flags:
      return "invalid_flags";
    case sup_errc::start_failed:
      return "start_failed";
    case sup_errc::noproc:
      return "noproc";
  }
  return "unknown";
}

caf::error make_error(sup_errc x) {
  return caf::error{static_cast<uint8_t>(x), sup_error_category};
}

caf::error make_error(sup_errc x, std::string what) {
  return caf::error{static_cast<uint8_t>(x), sup_error_category, caf::make_message(std::move(what))};
}

caf::error already_started(caf::actor running) {
  return caf::error{static_cast<uint8_t>(sup_errc::already_started), sup_error_category,
                    caf::make_message(std::move(running))};
}

std::optional<caf::actor> already_started_of(const caf::error& err) {
  if (err.category() != sup_error_category || err.code() != static_cast<uint8_t>(sup_errc::already_started))
    return std::nullopt;
  const auto& ctx = err.context();
  if (ctx.size() != 1 || !ctx.match_element<caf::actor>(0))
    return std::nullopt;
  return ctx.get_as<caf::actor>(0);
}

caf::error failed_to_start_child(std::string child, caf::error reason) {
  return caf::error{static_cast<uint8_t>(sup_errc::start_failed), sup_error_category,
                    caf::make_message(std::move(child), std::move(reason))};
}

std::optional<start_failure> start_failure_of(const caf::error& err) {
  if (auto term = shutdown_term(err))
    return start_failure_of(*term);
  if (err.category() != sup_error_category || err.code() != static_cast<uint8_t>(sup_errc::start_failed))
    return std::nullopt;
  const auto& ctx = err.context();
  if (ctx.size() != 2 || !ctx.match_element<std::string>(0) || !ctx.match_element<caf::error>(1))
    return std::nullopt;
  return start_failure{ctx.get_as<std::string>(0), ctx.get_as<caf::error>(1)};
}

caf::error check_flags(const supervisor_flags& flags) {
  if (flags.intensity < 0)
    return make_error(sup_errc::invalid_flags, "invalid_intensity " + std::to_string(flags.intensity));
  if (flags.period.count() <= 0)
    return make_error(sup_errc::invalid_flags, "invalid_period: must be > 0");
  if (flags.strategy == restart_strategy::simple_one_for_one && flags.auto_shutdown != auto_shutdown::never)
    return make_error(sup_errc::invalid_flags, "bad_combination: simple_one_for_one with auto_shutdown");
  return {};
}

caf::error check_child_spec(const child_spec& spec, const supervisor_flags& flags) {
  if (spec.id.empty() && flags.strategy != restart_strategy::simple_one_for_one)
    return make_error(sup_errc::invalid_spec, "missing_id");
  if (!spec.start)
    return make_error(sup_errc::invalid_spec, "missing_start: " + spec.id);
  if (spec.shutdown && spec.shutdown->how == shutdown_spec::kind::timeout && spec.shutdown->time.count() < 0)
    return make_error(sup_errc::invalid_spec, "invalid_shutdown: " + spec.id);
  if (spec.significant && spec.restart == restart_type::permanent)
    return make_error(sup_errc::invalid_spec, "bad_combination: permanent and significant: " + spec.id);
  if (spec.significant && flags.auto_shutdown == auto_shutdown::never)
    return make_error(sup_errc::invalid_spec,
                      "bad_combination: significant with auto_shutdown never: " + spec.id);
  auto& d = spec.delay;
  if (d.initial.count() < 0 || d.max.count() < 0 || d.factor < 1.0 || d.jitter < 0.0 || d.jitter > 1.0)
    return make_error(sup_errc::invalid_spec, "invalid_restart_delay: " + spec.id);
  return {};
}

namespace {

start_result spawn_supervisor(caf::actor_system& sys, detail::supervisor_init init, caf::actor parent) {
  detail::supervisor_outcome out;
  auto handle = sys.spawn<detail::supervisor_actor>(std::move(init), std::move(parent), &out);
  if (!out.error)
    return caf::actor{handle};
  if (out.stopping) // it is stopping the children it had started
    return {out.error, caf::actor{handle}};
  return out.error;
}

} // namespace

child_spec supervisor_child(std::string id, supervisor_flags flags, std::vector<child_spec> children,
                            restart_type restart) {
  child_spec spec;
  spec.id = id;
  spec.type = child_type::supervisor;
  spec.restart = restart;
  spec.start = [id, flags, children](const start_context& ctx) -> start_result {
    return spawn_supervisor(ctx.system(), detail::supervisor_init{id, flags, children}, ctx.parent());
  };
  return spec;
}

caf::expected<caf::actor> start_supervisor(caf::actor_system& sys, supervisor_flags flags,
                                           std::vector<child_spec> children, std::string id,
                                           caf::actor parent) {
  auto res = spawn_supervisor(sys, detail::supervisor_init{std::move(id), flags, std::move(children)},
                              std::move(parent));
  if (res.started())
    return res.actor();
  if (res.stopping()) {
    // start_link: return once the children it had started are gone.
    caf::scoped_actor self{sys};
    self->wait_for(res.stopping());
  }
  return res.error();
}

namespace sup {

namespace {

caf::error map_error(caf::error err) {
  if (err == caf::sec::request_receiver_down)
    return make_error(sup_errc::noproc);
  return err;
}

// One request, one typed answer, on a throwaway blocking actor.
template <class T, class... Ts>
caf::expected<T> ask(caf::actor_system& sys, const caf::actor& sup, Ts&&... xs) {
  if (!sup)
    return make_error(sup_errc::noproc);
  caf::scoped_actor self{sys};
  caf::expected<T> result{caf::error{}};
  self->request(sup, caf::infinite, std::forward<Ts>(xs)...)
      .receive([&](T& x) { result = std::move(x); },
               [&](caf::error& err) { result = map_error(std::move(err)); });
  return result;
}

template <class... Ts>
caf::error ask_ok(caf::actor_system& sys, const caf::actor& sup, Ts&&... xs) {
  auto res = ask<caf::ok_atom>(sys, sup, std::forward<Ts>(xs)...);
  return res ? caf::error{} : res.error();
}

} // namespace

caf::expected<caf::actor> start_child(caf::actor_system& sys, const caf::actor& sup, child_spec spec) {
  return ask<caf::actor>(sys, sup, start_child_atom::value, std::move(spec));
}

caf::expected<caf::actor> start_child(caf::actor_system& sys, const caf::actor& sup, caf::message args) {
  return ask<caf::actor>(sys, sup, start_child_atom::value, std::move(args));
}

caf::error terminate_child(caf::actor_system& sys, const caf::actor& sup, const std::string& id) {
  return ask_ok(sys, sup, terminate_child_atom::value, id);
}

caf::error terminate_child(caf::actor_system& sys, const caf::actor& sup, const caf::actor& child) {
  return ask_ok(sys, sup, terminate_child_atom::value, child);
}

caf::expected<caf::actor> restart_child(caf::actor_system& sys, const caf::actor& sup,
                                        const std::string& id) {
  return ask<caf::actor>(sys, sup, restart_child_atom::value, id);
}

caf::error delete_child(caf::actor_system& sys, const caf::actor& sup, const std::string& id) {
  return ask_ok(sys, sup, delete_child_atom::value, id);
}

caf::expected<std::vector<child_info>> which_children(caf::actor_system& sys, const caf::actor& sup) {
  return ask<std::vector<child_info>>(sys, sup, which_children_atom::value);
}

caf::expected<child_counts> count_children(caf::actor_system& sys, const caf::actor& sup) {
  return ask<child_counts>(sys, sup, count_children_atom::value);
}

caf::expected<child_spec> get_childspec(caf::actor_system& sys, const caf::actor& sup,
                                        const std::string& id) {
  return ask<child_spec>(sys, sup, get_childspec_atom::value, id);
}

caf::expected<tree_node> tree(caf::actor_system& sys, const caf::actor& sup) {
  return ask<tree_node>(sys, sup, tree_atom::value);
}

caf::error stop(caf::actor_system& sys, const caf::actor& sup, caf::error reason) {
  if (!sup)
    return make_error(sup_errc::noproc);
  caf::scoped_actor self{sys};
  self->monitor(sup);
  // A stop request, not an exit: only its parent's exit stops a supervisor.
  self->send(sup, stop_supervisor_atom::value, std::move(reason));
  caf::error result;
  self->receive([&](caf::down_msg& msg) { result = std::move(msg.reason); });
  return result;
}

} // namespace sup

} // namespace warren
