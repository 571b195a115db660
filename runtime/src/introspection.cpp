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

nlohmann::json to_json_value(const tree_node& n) {
  nlohmann::json j{{"id", n.id},
                   {"actor_id", n.actor_id},
                   {"type", to_string(n.type)},
                   {"restart", to_string(n.restart)},
                   {"state", to_string(n.state)},
                   {"restarts", n.restarts}};
  if (n.backoff_ms >= 0)
    j["backoff_ms"] = n.backoff_ms;
  if (n.significant)
    j["significant"] = true;
  if (n.type == child_type::supervisor) {
    j["strategy"] = n.strategy;
    if (!n.strategy.empty()) { // a supervisor that answered (not one that was down)
      j["intensity"] = n.intensity;
      j["period_ms"] = n.period_ms;
      j["restarts_in_window"] = n.restarts_in_window;
      j["auto_shutdown"] = n.auto_shutdown;
    }
    auto kids = nlohmann::json::array();
    for (auto& c : n.children)
      kids.push_back(to_json_value(c));
    j["children"] = std::move(kids);
  }
  return j;
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

std::string to_json(const tree_node& root, int indent) {
  return to_json_value(root).dump(indent);
}

std::string to_text(const tree_node& root) {
  std::string out;
  to_text(root, "", true, true, out);
  return out;
}

} // namespace warren
