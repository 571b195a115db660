#include "warren/registry.hpp"

#include <caf/abstract_actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/attachable.hpp>
#include <caf/local_actor.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/message_id.hpp>
#include <caf/runtime_settings_map.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <utility>

namespace warren {

// -- errors ----------------------------------------------------------------------

std::string to_string(registry_errc x) {
  switch (x) {
    case registry_errc::already_registered:
      return "already_registered";
    case registry_errc::already_named:
      return "already_named";
    case registry_errc::not_registered:
      return "not_registered";
    case registry_errc::not_joined:
      return "not_joined";
    case registry_errc::invalid_argument:
      return "invalid_argument";
  }
  return "unknown";
}

caf::error make_error(registry_errc x) {
  return caf::error{static_cast<uint8_t>(x), registry_error_category};
}

caf::error make_error(registry_errc x, std::string what) {
  return caf::error{static_cast<uint8_t>(x), registry_error_category, caf::make_message(std::move(what))};
}

name_service::~name_service() = default;

// -- local_registry --------------------------------------------------------------

namespace {

constexpr size_t num_shards = 64;

struct string_hash {
  using is_transparent = void;
  size_t operator()(std::string_view x) const noexcept { return std::hash<std::string_view>{}(x); }
  size_t operator()(const std::string& x) const noexcept { return std::hash<std::string_view>{}(x); }
};

template <class T>
using string_map = std::unordered_map<std::string, T, string_hash, std::equal_to<>>;

size_t shard_of(std::string_view key) noexcept {
  // The low bits of libstdc++'s string hash are fine; fold in the high ones anyway.
  auto h = string_hash{}(key);
  return (h ^ (h >> 17)) % num_shards;
}

size_t shard_of(caf::actor_id id) noexcept {
  return (id ^ (id >> 7)) % num_shards;
}

bool terminated(const caf::abstract_actor* ptr) noexcept {
  return ptr->getf(caf::abstract_actor::is_terminated_flag);
}

// Upgrades a weak reference; null for an actor that is gone or terminating.
// Never call while holding a registry lock: the strong reference it makes may be the
// last one, and dropping it runs the actor's cleanup, which calls forget().
caf::actor upgrade(const caf::weak_actor_ptr& weak) {
  auto strong = caf::actor_cast<caf::actor>(weak);
  if (strong && terminated(caf::actor_cast<caf::abstract_actor*>(strong)))
    return {};
  return strong;
}

// Token subtype of Warren's exit watcher; CAF uses 0..3.
constexpr size_t watcher_token_type = 0x5752; // "WR"

struct watcher_key {
  const void* registry;
  uint64_t serial;
};

} // namespace

struct local_registry::impl {
  struct name_entry {
    caf::weak_actor_ptr handle;
    caf::actor_id id = 0;
  };

  struct alignas(64) name_shard {
    mutable std::shared_mutex mtx;
    string_map<name_entry> map;
  };

  struct member {
    caf::weak_actor_ptr handle;
    size_t joins = 0;
  };

  using snapshot_ptr = std::shared_ptr<const std::vector<caf::weak_actor_ptr>>;

  struct group {
    std::unordered_map<caf::actor_id, member> members;
    /// Distinct members for fan-out, rebuilt lazily after a change.
    snapshot_ptr snapshot;
  };

  struct alignas(64) group_shard {
    mutable std::shared_mutex mtx;
    string_map<group> map;
  };

  /// What the registry knows about one actor. The owner shard's mutex serializes
  /// every change concerning that actor; it is always taken before a name or group
  /// shard's mutex.
  struct record {
    std::string name;
    string_map<size_t> groups; // group -> joins
    uint64_t serial = 0;       // identifies this record's exit watcher
    bool empty() const noexcept { return name.empty() && groups.empty(); }
  };

  struct alignas(64) owner_shard {
    std::mutex mtx;
    std::unordered_map<caf::actor_id, record> map;
  };

  std::array<name_shard, num_shards> names;
  std::array<group_shard, num_shards> groups;
  std::array<owner_shard, num_shards> owners;
  std::atomic<uint64_t> next_serial{1};

  // Removes `id` from group `name` once (all = every join). Requires the owner lock.
  void drop_membership(std::string_view name, caf::actor_id id, bool all) {
    auto& gs = groups[shard_of(name)];
    std::unique_lock guard{gs.mtx};
    auto i = gs.map.find(name);
    if (i == gs.map.end())
      return;
    auto& grp = i->second;
    auto j = grp.members.find(id);
    if (j == grp.members.end())
      return;
    if (all || --j->second.joins == 0) {
      grp.members.erase(j);
      grp.snapshot.reset();
      if (grp.members.empty())
        gs.map.erase(i);
    }
  }
};

namespace {

// One per (actor, registry) while the actor has a name or a group: forgets it on exit.
class exit_watcher final : public caf::attachable {
public:
  exit_watcher(std::shared_ptr<local_registry> reg, caf::actor_id id, uint64_t serial)
    : reg_(std::move(reg)), id_(id), serial_(serial) {}

  void actor_exited(const caf::error&, caf::execution_unit*) override { reg_->forget(id_); }

  bool matches(const token& what) override {
    if (what.subtype != watcher_token_type)
      return false;
    auto key = static_cast<const watcher_key*>(what.ptr);
    return key->registry == reg_.get() && key->serial == serial_;
  }

private:
  std::shared_ptr<local_registry> reg_;
  caf::actor_id id_;
  uint64_t serial_;
};

} // namespace

local_registry::local_registry() : impl_(std::make_unique<impl>()) {}

local_registry::~local_registry() = default;

namespace {

// Attach and detach run outside every registry lock: attaching to an actor that has
// already terminated runs the watcher (and thus forget()) at once.
void attach_watcher(const std::shared_ptr<local_registry>& reg, const caf::actor& who, uint64_t serial) {
  auto ptr = caf::actor_cast<caf::abstract_actor*>(who);
  ptr->attach(caf::attachable_ptr{new exit_watcher(reg, who.id(), serial)});
}

void detach_watcher(const local_registry* reg, const caf::actor& who, uint64_t serial) {
  if (!who)
    return;
  watcher_key key{reg, serial};
  caf::actor_cast<caf::abstract_actor*>(who)->detach(caf::attachable::token{watcher_token_type, &key});
}

} // namespace

caf::error local_registry::register_name(const std::string& name, const caf::actor& who) {
  if (name.empty() || !who)
    return make_error(registry_errc::invalid_argument, "register_name needs a name and an actor");
  auto id = who.id();
  caf::actor holder; // outlives the locks (see upgrade())
  caf::weak_actor_ptr holder_weak;
  uint64_t watch = 0;
  {
    auto& os = impl_->owners[shard_of(id)];
    std::lock_guard owner_guard{os.mtx};
    auto r = os.map.find(id);
    if (r != os.map.end() && !r->second.name.empty()) {
      if (r->second.name == name)
        return make_error(registry_errc::already_registered, name);
      return make_error(registry_errc::already_named, "actor is already registered as " + r->second.name);
    }
    auto& ns = impl_->names[shard_of(name)];
    std::unique_lock name_guard{ns.mtx};
    auto i = ns.map.find(name);
    if (i != ns.map.end()) {
      // Held by an actor whose exit watcher has not run yet? Then the name is free.
      // Copy the weak handle and decide after unlocking, without dropping a strong
      // reference under the lock.
      holder_weak = i->second.handle;
    }
    if (!holder_weak) {
      ns.map.emplace(name, impl::name_entry{caf::actor_cast<caf::weak_actor_ptr>(who), id});
      auto& rec = r != os.map.end() ? r->second : os.map[id];
      rec.name = name;
      if (rec.serial == 0)
        watch = rec.serial = impl_->next_serial++;
    }
  }
  if (holder_weak) {
    holder = upgrade(holder_weak);
    if (holder)
      return make_error(registry_errc::already_registered, name);
    // Stale entry of a terminated actor: its watcher will not remove a newer entry
    // (it checks the actor id), so overwrite and retry once the way is clear.
    {
      auto& ns = impl_->names[shard_of(name)];
      std::unique_lock name_guard{ns.mtx};
      auto i = ns.map.find(name);
      if (i != ns.map.end() && i->second.handle == holder_weak)
        ns.map.erase(i);
    }
    holder_weak = nullptr;
    return register_name(name, who);
  }
  if (watch != 0)
    attach_watcher(shared_from_this(), who, watch);
  return {};
}

caf::error local_registry::unregister_name(std::string_view name) {
  auto& ns = impl_->names[shard_of(name)];
  for (;;) {
    caf::actor_id id;
    {
      std::shared_lock guard{ns.mtx};
      auto i = ns.map.find(name);
      if (i == ns.map.end())
        return make_error(registry_errc::not_registered, std::string{name});
      id = i->second.id;
    }
    caf::weak_actor_ptr detach_from;
    uint64_t serial = 0;
    {
      auto& os = impl_->owners[shard_of(id)];
      std::lock_guard owner_guard{os.mtx};
      std::unique_lock name_guard{ns.mtx};
      auto i = ns.map.find(name);
      if (i == ns.map.end() || i->second.id != id)
        continue; // changed in between: start over
      auto handle = std::move(i->second.handle);
      ns.map.erase(i);
      auto r = os.map.find(id);
      if (r != os.map.end()) {
        r->second.name.clear();
        if (r->second.empty()) {
          serial = r->second.serial;
          detach_from = std::move(handle);
          os.map.erase(r);
        }
      }
    }
    if (serial != 0)
      detach_watcher(this, caf::actor_cast<caf::actor>(detach_from), serial);
    return {};
  }
}

caf::actor local_registry::whereis(std::string_view name) const {
  caf::weak_actor_ptr weak;
  {
    auto& ns = impl_->names[shard_of(name)];
    std::shared_lock guard{ns.mtx};
    auto i = ns.map.find(name);
    if (i == ns.map.end())
      return {};
    weak = i->second.handle;
  }
  return upgrade(weak);
}

std::vector<std::string> local_registry::registered_names() const {
  // Liveness is checked outside the locks (see upgrade()): an actor that has
  // terminated but whose watcher has not run yet is not listed.
  std::vector<std::pair<std::string, caf::weak_actor_ptr>> entries;
  for (auto& ns : impl_->names) {
    std::shared_lock guard{ns.mtx};
    for (auto& kvp : ns.map)
      entries.emplace_back(kvp.first, kvp.second.handle);
  }
  std::vector<std::string> result;
  result.reserve(entries.size());
  for (auto& [name, handle] : entries)
    if (upgrade(handle))
      result.push_back(std::move(name));
  return result;
}

caf::error local_registry::join(const std::string& group, const caf::actor& who) {
  if (group.empty() || !who)
    return make_error(registry_errc::invalid_argument, "join needs a group and an actor");
  auto id = who.id();
  uint64_t watch = 0;
  {
    auto& os = impl_->owners[shard_of(id)];
    std::lock_guard owner_guard{os.mtx};
    auto& rec = os.map[id];
    if (rec.serial == 0)
      watch = rec.serial = impl_->next_serial++;
    ++rec.groups[group];
    auto& gs = impl_->groups[shard_of(group)];
    std::unique_lock group_guard{gs.mtx};
    auto& grp = gs.map[group];
    auto& m = grp.members[id];
    if (m.joins++ == 0) {
      m.handle = caf::actor_cast<caf::weak_actor_ptr>(who);
      grp.snapshot.reset();
    }
  }
  if (watch != 0)
    attach_watcher(shared_from_this(), who, watch);
  return {};
}

caf::error local_registry::leave(std::string_view group, const caf::actor& who) {
  if (!who)
    return make_error(registry_errc::invalid_argument, "leave needs an actor");
  auto id = who.id();
  uint64_t serial = 0;
  {
    auto& os = impl_->owners[shard_of(id)];
    std::lock_guard owner_guard{os.mtx};
    auto r = os.map.find(id);
    if (r == os.map.end())
      return make_error(registry_errc::not_joined, std::string{group});
    auto& rec = r->second;
    auto g = rec.groups.find(group);
    if (g == rec.groups.end())
      return make_error(registry_errc::not_joined, std::string{group});
    if (--g->second == 0)
      rec.groups.erase(g);
    impl_->drop_membership(group, id, false);
    if (rec.empty()) {
      serial = rec.serial;
      os.map.erase(r);
    }
  }
  if (serial != 0)
    detach_watcher(this, who, serial);
  return {};
}

std::vector<caf::actor> local_registry::members(std::string_view group) const {
  std::vector<std::pair<caf::weak_actor_ptr, size_t>> weak;
  {
    auto& gs = impl_->groups[shard_of(group)];
    std::shared_lock guard{gs.mtx};
    auto i = gs.map.find(group);
    if (i == gs.map.end())
      return {};
    weak.reserve(i->second.members.size());
    for (auto& kvp : i->second.members)
      weak.emplace_back(kvp.second.handle, kvp.second.joins);
  }
  std::vector<caf::actor> result;
  result.reserve(weak.size());
  for (auto& [handle, joins] : weak)
    if (auto strong = upgrade(handle))
      result.insert(result.end(), joins, strong);
  return result;
}

std::vector<std::string> local_registry::which_groups() const {
  std::vector<std::pair<std::string, std::vector<caf::weak_actor_ptr>>> entries;
  for (auto& gs : impl_->groups) {
    std::shared_lock guard{gs.mtx};
    for (auto& kvp : gs.map) {
      std::vector<caf::weak_actor_ptr> handles;
      handles.reserve(kvp.second.members.size());
      for (auto& m : kvp.second.members)
        handles.push_back(m.second.handle);
      entries.emplace_back(kvp.first, std::move(handles));
    }
  }
  std::vector<std::string> result;
  for (auto& [name, handles] : entries)
    if (std::any_of(handles.begin(), handles.end(), [](auto& h) { return static_cast<bool>(upgrade(h)); }))
      result.push_back(std::move(name));
  return result;
}

size_t local_registry::send_to_group(std::string_view group, const caf::strong_actor_ptr& sender,
                                     const caf::message& msg, caf::execution_unit* ctx) {
  auto& gs = impl_->groups[shard_of(group)];
  impl::snapshot_ptr snapshot;
  {
    std::shared_lock guard{gs.mtx};
    auto i = gs.map.find(group);
    if (i == gs.map.end())
      return 0;
    snapshot = i->second.snapshot;
  }
  if (!snapshot) {
    std::unique_lock guard{gs.mtx};
    auto i = gs.map.find(group);
    if (i == gs.map.end())
      return 0;
    auto& grp = i->second;
    if (!grp.snapshot) {
      auto xs = std::make_shared<std::vector<caf::weak_actor_ptr>>();
      xs->reserve(grp.members.size());
      for (auto& kvp : grp.members)
        xs->push_back(kvp.second.handle);
      grp.snapshot = std::move(xs);
    }
    snapshot = grp.snapshot;
  }
  size_t sent = 0;
  for (auto& weak : *snapshot) {
    auto dest = caf::actor_cast<caf::strong_actor_ptr>(weak);
    if (!dest)
      continue;
    // One mailbox element per recipient; the message content is shared.
    dest->enqueue(caf::make_mailbox_element(sender, caf::make_message_id(), {}, msg), ctx);
    ++sent;
  }
  return sent;
}

void local_registry::forget(caf::actor_id id) {
  auto& os = impl_->owners[shard_of(id)];
  std::lock_guard owner_guard{os.mtx};
  auto r = os.map.find(id);
  if (r == os.map.end())
    return;
  auto rec = std::move(r->second);
  os.map.erase(r);
  if (!rec.name.empty()) {
    auto& ns = impl_->names[shard_of(rec.name)];
    std::unique_lock name_guard{ns.mtx};
    auto i = ns.map.find(rec.name);
    // Only our own entry: the name may belong to a newer registration by now.
    if (i != ns.map.end() && i->second.id == id)
      ns.map.erase(i);
  }
  for (auto& kvp : rec.groups)
    impl_->drop_membership(kvp.first, id, true);
}

// -- per-system access -----------------------------------------------------------

namespace {

constexpr caf::atom_value settings_key = caf::atom("warrenreg");

struct system_slot {
  std::shared_ptr<local_registry> local = std::make_shared<local_registry>();
  std::atomic<name_service*> current{local.get()};
  std::mutex mtx;
  std::vector<std::shared_ptr<name_service>> installed; // never shrinks: see set_name_service
};

std::mutex slots_mtx;

// One slot per system address. A system whose runtime settings lack our key is new,
// so a slot found under its address belongs to a destroyed system and is replaced.
std::unordered_map<const caf::actor_system*, std::unique_ptr<system_slot>>& slots() {
  static auto* ptr = new std::unordered_map<const caf::actor_system*, std::unique_ptr<system_slot>>;
  return *ptr;
}

system_slot* find_slot(caf::actor_system& sys) {
  auto value = sys.runtime_settings().get(settings_key);
  if (auto ptr = caf::get_if<caf::runtime_settings_map::generic_pointer>(&value))
    return static_cast<system_slot*>(*ptr);
  return nullptr;
}

system_slot& slot_of(caf::actor_system& sys) {
  if (auto ptr = find_slot(sys))
    return *ptr;
  std::lock_guard guard{slots_mtx};
  if (auto ptr = find_slot(sys))
    return *ptr;
  auto& entry = slots()[&sys];
  // Replacing the slot of a dead system: watchers still attached to its (dead)
  // actors keep their local_registry alive through shared_ptr.
  entry = std::make_unique<system_slot>();
  // Publishes the new slot to names()'s acquire load. CAF's runtime settings map
  // (a spinlock inside libcaf) carries the pointer, but ThreadSanitizer cannot see
  // that uninstrumented lock; this release store it can.
  entry->current.store(entry->local.get(), std::memory_order_release);
  sys.runtime_settings().set(settings_key,
                             static_cast<caf::runtime_settings_map::generic_pointer>(entry.get()));
  return *entry;
}

} // namespace

name_service& names(caf::actor_system& sys) {
  return *slot_of(sys).current.load(std::memory_order_acquire);
}

void set_name_service(caf::actor_system& sys, std::shared_ptr<name_service> service) {
  auto& slot = slot_of(sys);
  std::lock_guard guard{slot.mtx};
  auto* ptr = service ? service.get() : slot.local.get();
  if (service)
    slot.installed.push_back(std::move(service));
  slot.current.store(ptr, std::memory_order_release);
}

// -- free functions --------------------------------------------------------------

caf::error register_name(caf::actor_system& sys, const std::string& name, const caf::actor& who) {
  return names(sys).register_name(name, who);
}

caf::actor whereis(caf::actor_system& sys, const std::string& name) {
  return names(sys).whereis(name);
}

caf::error unregister_name(caf::actor_system& sys, const std::string& name) {
  return names(sys).unregister_name(name);
}

std::vector<std::string> registered_names(caf::actor_system& sys) {
  return names(sys).registered_names();
}

caf::error join(caf::actor_system& sys, const std::string& group, const caf::actor& who) {
  return names(sys).join(group, who);
}

caf::error leave(caf::actor_system& sys, const std::string& group, const caf::actor& who) {
  return names(sys).leave(group, who);
}

std::vector<caf::actor> members(caf::actor_system& sys, const std::string& group) {
  return names(sys).members(group);
}

std::vector<std::string> which_groups(caf::actor_system& sys) {
  return names(sys).which_groups();
}

size_t send_group(caf::local_actor* self, const std::string& group, const caf::message& msg) {
  return names(self->home_system())
      .send_to_group(group, caf::actor_cast<caf::strong_actor_ptr>(self), msg, self->context());
}

size_t send_group(caf::actor_system& sys, const std::string& group, const caf::message& msg) {
  return names(sys).send_to_group(group, nullptr, msg, nullptr);
}

} // namespace warren
