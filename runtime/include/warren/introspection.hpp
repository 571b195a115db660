// What a supervisor reports about its children: which_children, count_children and
// the recursive tree dump, as JSON and as an indented text tree.
#pragma once

#include "warren/child_spec.hpp"

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace warren {

/// OTP's which_children entry, plus Warren's restart count.
struct child_info {
  enum class status : uint8_t { running, undefined, restarting };
  std::string id;    ///< empty under simple_one_for_one (OTP's undefined id)
  caf::actor handle; ///< null unless running
  status state = status::undefined;
  child_type type = child_type::worker;
  restart_type restart = restart_type::permanent;
  uint64_t restarts = 0; ///< how often this child was restarted
};

std::string to_string(child_info::status x);

/// OTP's count_children.
struct child_counts {
  size_t specs = 0;
  size_t active = 0;
  size_t supervisors = 0;
  size_t workers = 0;
  bool operator==(const child_counts&) const = default;
};

/// One node of a supervision tree dump.
struct tree_node {
  std::string id;
  uint64_t actor_id = 0; ///< 0 when not running
  child_type type = child_type::worker;
  restart_type restart = restart_type::permanent;
  child_info::status state = child_info::status::running;
  uint64_t restarts = 0;
  std::string strategy; ///< supervisors only
  std::vector<tree_node> children;
  int64_t backoff_ms = -1; ///< a pending delayed restart: time left; -1: none
  bool significant = false;
  // Supervisors only (the live view shows them): restart intensity, period, and the
  // restarts counted inside the current period.
  int intensity = 0;
  int64_t period_ms = 0;
  uint64_t restarts_in_window = 0;
  std::string auto_shutdown;
};

/// The tree as JSON: {"id":..,"actor_id":..,"type":..,"restart":..,"state":..,
/// "restarts":..}; supervisors add "strategy", "intensity", "period_ms",
/// "restarts_in_window", "auto_shutdown", "total", "counts", "paged" and "children";
/// a child waiting for a delayed restart adds "backoff_ms".
std::string to_json(const tree_node& root, int indent = -1);

/// The same as a JSON value, the one writer of tree nodes (the admin APIs and the
/// live view). A supervisor with more than `page_threshold` children lists none of
/// them: it says "paged": true, "total" and its "counts" (running, restarting,
/// undefined, supervisors), and a viewer asks for its children a page at a time.
/// Supervisors always carry "total" and "counts".
nlohmann::json to_json_value(const tree_node& n,
                             std::size_t page_threshold = std::numeric_limits<std::size_t>::max());

/// One which_children entry as a leaf of that JSON (id, actor_id, type, restart,
/// state, restarts), as a paged list shows it.
nlohmann::json to_json_value(const child_info& c);

/// The tree as indented text, one line per node.
std::string to_text(const tree_node& root);

} // namespace warren

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(warren::child_info)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<warren::child_info>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(warren::child_counts)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(warren::tree_node)
