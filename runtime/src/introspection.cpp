#include "warren/introspection.hpp"

#include <nlohmann/json.hpp>

namespace warren {

std::string to_string(child_info::status x) {
  switch (x) {
    case child_info::status::running:
      return "running";
    case child_info::status::undefined:
      return "undefined";
    case child_info::status::restarting:
      return "restarting";
  }
  return "unknown";
}

namespace {

nlohmann::json leaf_json(const std::string& id, uint64_t actor_id, child_type type, restart_type restart,
                         child_info::status state, uint64_t restarts) {
  return {{"id", id},
          {"actor_id", actor_id},
          {"type", to_string(type)},
          {"restart", to_string(restart)},
          {"state", to_string(state)},
          {"restarts", restarts}};
}

void to_text(const tree_node& n, const std::string& prefix, bool last, bool root, std::string& out) {
  if (!root)
    out += prefix + (last ? "`-- " : "|-- ");
  out += n.id.empty() ? std::string{"<dynamic>"} : n.id;
  out += " [" + to_string(n.type);
  if (n.type == child_type::supervisor && !n.strategy.empty())
    out += ", " + n.strategy;
  out += ", " + to_string(n.restart) + ", " + to_string(n.state);
  if (n.actor_id != 0)
    out += ", actor " + std::to_string(n.actor_id);
  out += ", restarts " + std::to_string(n.restarts) + "]\n";
  auto child_prefix = root ? prefix : prefix + (last ? "    " : "|   ");
  for (size_t i = 0; i < n.children.size(); ++i)
    to_text(n.children[i], child_prefix, i + 1 == n.children.size(), false, out);
}

} // namespace

nlohmann::json to_json_value(const child_info& c) {
  return leaf_json(c.id, c.handle ? c.handle.id() : 0, c.type, c.restart, c.state, c.restarts);
}

nlohmann::json to_json_value(const tree_node& n, std::size_t page_threshold) {
  auto j = leaf_json(n.id, n.actor_id, n.type, n.restart, n.state, n.restarts);
  if (n.backoff_ms >= 0)
    j["backoff_ms"] = n.backoff_ms;
  if (n.significant)
    j["significant"] = true;
  if (n.type != child_type::supervisor)
    return j;
  j["strategy"] = n.strategy;
  if (!n.strategy.empty()) { // a supervisor that answered (not one that was down)
    j["intensity"] = n.intensity;
    j["period_ms"] = n.period_ms;
    j["restarts_in_window"] = n.restarts_in_window;
    j["auto_shutdown"] = n.auto_shutdown;
  }
  std::size_t running = 0, restarting = 0, supervisors = 0;
  for (auto& c : n.children) {
    running += c.state == child_info::status::running ? 1 : 0;
    restarting += c.state == child_info::status::restarting ? 1 : 0;
    supervisors += c.type == child_type::supervisor ? 1 : 0;
  }
  j["total"] = n.children.size();
  j["counts"] = {{"running", running},
                 {"restarting", restarting},
                 {"undefined", n.children.size() - running - restarting},
                 {"supervisors", supervisors}};
  bool paged = n.children.size() > page_threshold;
  j["paged"] = paged;
  auto kids = nlohmann::json::array();
  if (!paged)
    for (auto& c : n.children)
      kids.push_back(to_json_value(c, page_threshold));
  j["children"] = std::move(kids);
  return j;
}

std::string to_json(const tree_node& root, int indent) {
  return to_json_value(root).dump(indent);
}

std::string to_text(const tree_node& root) {
  std::string out;
  to_text(root, "", true, true, out);
  return out;
}

} // namespace warren
