// Local names and process groups: OTP's register/whereis and pg, per actor system.
//
// Names: one name per actor and one actor per name, as erlang:register/2. Groups: as
// OTP's pg, an actor may join a group several times and must leave it as often;
// members() lists it once per join. Both forget an actor automatically when it exits
// (an attachable on the actor, no polling).
//
// Every actor system has its own registry. The free functions find it through the
// system's runtime_settings() (a pointer stored under the key "warrenreg"), so two
// systems never share names, and a system created later at the address of a dead one
// starts empty.
//
// The registry does not keep actors alive: it holds weak references, like a monitor.
// In CAF an actor nobody references is terminated (exit reason `unreachable`), so its
// name goes with it; keep a handle (a supervisor does) to keep a named actor running.
//
// The free functions forward to a `name_service`. `local_registry` is the in-process
// one; a cluster-wide service can be installed with set_name_service() without
// changing any caller, since lookups return location-transparent caf::actor handles.
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/fwd.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace warren {

// -- errors ----------------------------------------------------------------------

constexpr caf::atom_value registry_error_category = caf::atom("registry");

enum class registry_errc : uint8_t {
  /// The name is held by a live actor (OTP: badarg / {error, already_registered}).
  already_registered = 1,
  /// The actor already has another name (OTP: badarg).
  already_named,
  /// unregister_name: no actor holds the name (OTP: badarg).
  not_registered,
  /// leave: the actor is not a member of the group (pg: not_joined).
  not_joined,
  /// Empty name or null actor.
  invalid_argument,
};

std::string to_string(registry_errc x);
caf::error make_error(registry_errc x);
caf::error make_error(registry_errc x, std::string what);

// -- the service interface -------------------------------------------------------

/// What callers need from a name service. Local today; a cluster-wide implementation
/// can stand behind the same interface.
class name_service {
public:
  virtual ~name_service();

  /// Registers `who` under `name`. Fails with already_registered when a live actor
  /// holds the name, already_named when `who` has another name.
  virtual caf::error register_name(const std::string& name, const caf::actor& who) = 0;

  /// Removes `name`. Fails with not_registered when nobody holds it.
  virtual caf::error unregister_name(std::string_view name) = 0;

  /// The actor registered as `name`, or a null handle. Does not allocate.
  virtual caf::actor whereis(std::string_view name) const = 0;

  /// Every registered name, in no particular order.
  virtual std::vector<std::string> registered_names() const = 0;

  /// Adds one membership of `who` in `group` (pg:join). Fails only for invalid input.
  virtual caf::error join(const std::string& group, const caf::actor& who) = 0;

  /// Removes one membership of `who` in `group` (pg:leave). Fails with not_joined.
  virtual caf::error leave(std::string_view group, const caf::actor& who) = 0;

  /// The members of `group`, each listed once per join (pg:get_members).
  virtual std::vector<caf::actor> members(std::string_view group) const = 0;

  /// Every group with at least one member (pg:which_groups).
  virtual std::vector<std::string> which_groups() const = 0;

  /// Enqueues `msg` once to every distinct member of `group`, as sent by `sender`
  /// (may be null), scheduling on `ctx` (may be null). The message is built once and
  /// shared by all recipients. Returns how many actors it was enqueued to.
  virtual size_t send_to_group(std::string_view group, const caf::strong_actor_ptr& sender,
                               const caf::message& msg, caf::execution_unit* ctx) = 0;
};

/// The in-process name service: sharded hash maps under shared mutexes (lookups take
/// one shard's shared lock), one exit watcher per actor that has a name or groups.
class local_registry final : public name_service, public std::enable_shared_from_this<local_registry> {
public:
  struct impl;

  local_registry();
  ~local_registry() override;

  local_registry(const local_registry&) = delete;
  local_registry& operator=(const local_registry&) = delete;

  caf::error register_name(const std::string& name, const caf::actor& who) override;
  caf::error unregister_name(std::string_view name) override;
  caf::actor whereis(std::string_view name) const override;
  std::vector<std::string> registered_names() const override;
  caf::error join(const std::string& group, const caf::actor& who) override;
  caf::error leave(std::string_view group, const caf::actor& who) override;
  std::vector<caf::actor> members(std::string_view group) const override;
  std::vector<std::string> which_groups() const override;
  size_t send_to_group(std::string_view group, const caf::strong_actor_ptr& sender, const caf::message& msg,
                       caf::execution_unit* ctx) override;

  /// Called by the exit watcher: forgets every name and membership of `id`.
  void forget(caf::actor_id id);

private:
  std::unique_ptr<impl> impl_;
};

// -- per-system access -----------------------------------------------------------

/// The name service of `sys` (a local_registry unless replaced). The reference stays
/// valid as long as `sys` lives; hot paths may keep it instead of calling the free
/// functions, which look it up on each call.
name_service& names(caf::actor_system& sys);

/// Replaces the name service of `sys` (e.g. by a cluster-wide one). The previous
/// service is kept alive until the process exits, since other threads may use it.
void set_name_service(caf::actor_system& sys, std::shared_ptr<name_service> service);

// -- names (erlang:register/2, whereis/1, unregister/1, registered/0) -------------

caf::error register_name(caf::actor_system& sys, const std::string& name, const caf::actor& who);
caf::actor whereis(caf::actor_system& sys, const std::string& name);
caf::error unregister_name(caf::actor_system& sys, const std::string& name);
std::vector<std::string> registered_names(caf::actor_system& sys);

// -- process groups (pg) ---------------------------------------------------------

caf::error join(caf::actor_system& sys, const std::string& group, const caf::actor& who);
caf::error leave(caf::actor_system& sys, const std::string& group, const caf::actor& who);
std::vector<caf::actor> members(caf::actor_system& sys, const std::string& group);
std::vector<std::string> which_groups(caf::actor_system& sys);

/// Fan-out from inside an actor: enqueues `msg` once to every distinct member of
/// `group`, with `self` as sender, on `self`'s execution unit (so a worker thread
/// queues the woken members locally instead of waking other threads per message).
/// Returns the number of recipients.
size_t send_group(caf::local_actor* self, const std::string& group, const caf::message& msg);

/// Fan-out from outside any actor (anonymous sender).
size_t send_group(caf::actor_system& sys, const std::string& group, const caf::message& msg);

/// send_group with the message built from `xs` (once, for all recipients).
template <class T, class... Ts>
size_t broadcast(T&& self_or_sys, const std::string& group, Ts&&... xs) {
  return send_group(std::forward<T>(self_or_sys), group, caf::make_message(std::forward<Ts>(xs)...));
}

} // namespace warren
