// What the gateway's cluster tests share (cluster_test, amqp_e2e_test): the [cluster]
// config of a test node, the admin API calls that address a device anywhere, and
// warren-gateway processes in a cluster (for kill -9 and SIGSTOP).
#pragma once

#include "gw_support.hpp"

#include <warren_test/nats_cluster.hpp>

#include <nlohmann/json.hpp>

#include <cctype>
#include <csignal>
#include <fstream>
#include <sys/wait.h>
#include <unistd.h>

namespace gw_test {

/// `cfg` as node `node` of the cluster, on NATS server `server` of `nats`: identify =
/// first_message, quick heartbeats and reconnects.
inline gw::config cluster_node(gw::config cfg, const warren_test::nats_cluster& nats, const std::string& node,
                               std::size_t server) {
  cfg.listeners[0].session.identify = gw::identify_mode::first_message;
  // Long: a to_device_seq the session does not expect would wait, not pass.
  cfg.listeners[0].session.gap_timeout = 30s;
  cfg.cluster.enabled = true;
  cfg.cluster.nats.node_name = node;
  cfg.cluster.nats.urls = {nats.url(server)};
  cfg.cluster.nats.request_timeout = 2s;
  cfg.cluster.nats.reconnect_wait = 50ms;
  cfg.cluster.nats.reconnect_wait_max = 200ms;
  cfg.cluster.heartbeat_interval = 200ms;
  cfg.cluster.node_timeout = 1s;
  return cfg;
}

/// Percent-encodes everything but A-Z a-z 0-9 - _ (a device id in a URL path).
inline std::string percent(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

/// POSTs `body` to the admin API; the status, or -1 without an answer.
inline int post(running_gateway& g, const std::string& path, const std::string& body) {
  auto cli = g.http();
  auto res = cli.Post(path.c_str(), body, "application/octet-stream");
  return res ? res->status : -1;
}

inline std::string msg_path(const std::string& device, std::optional<uint64_t> seq = {}) {
  auto p = "/v1/devices/" + percent(device) + "/messages";
  if (seq)
    p += "?to_device_seq=" + std::to_string(*seq);
  return p;
}

/// POSTs until the device is reachable from `g`: its subscription crossed the routes
/// (404 until then), and, after a move, the old owner's is gone everywhere (a request
/// the server still forwarded there goes unanswered: 504). Neither delivered anything,
/// so the first 202 is the one delivery.
inline int post_when_reachable(running_gateway& g, const std::string& path, const std::string& body) {
  int status = 0;
  eventually([&] {
    status = post(g, path, body);
    return status != 404 && status != 504;
  });
  return status;
}

inline nlohmann::json get_json(running_gateway& g, const std::string& path) {
  auto cli = g.http();
  auto res = cli.Get(path.c_str());
  REQUIRE(res);
  REQUIRE(res->status == 200);
  return nlohmann::json::parse(res->body);
}

/// A warren-gateway process (`bin`) in the cluster, on NATS server `url`: one plain
/// listener (identify = first_message), no admin API, the local backend.
struct gateway_process {
  pid_t pid = -1;
  std::filesystem::path dir;
  uint16_t port = 0;

  gateway_process(const char* bin, const std::string& node, const std::string& url) {
    dir = temp_dir("clproc");
    auto conf = (dir / "gateway.toml").string();
    auto ports = (dir / "ports.json").string();
    {
      std::ofstream out{conf};
      out << "[gateway]\ndata_dir = \"" << dir.string() << "\"\nio_threads = 1\nlog_level = \"error\"\n"
          << "[[listener]]\nname = \"plain\"\ntls = false\nbind = \"127.0.0.1\"\nport = 0\n"
          << "identify = \"first_message\"\n"
          << "[admin]\nenabled = false\n[backend]\nkind = \"local\"\n[backend.local]\nsink = \"none\"\n"
          << "[cluster]\nnode_name = \"" << node << "\"\nnats = \"" << url << "\"\n"
          << "discover_servers = false\nreconnect_wait = \"50ms\"\nreconnect_wait_max = \"200ms\"\n";
    }
    pid = spawn_gateway(bin, conf, ports);
    port = listener_port(ports, "plain");
  }
  void kill9() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      pid = -1;
    }
  }
  /// SIGSTOP: frozen, its sockets (and so its NATS subscriptions) stay open.
  void freeze() { ::kill(pid, SIGSTOP); }
  void thaw() { ::kill(pid, SIGCONT); }
  ~gateway_process() {
    kill9(); // SIGKILL ends a stopped process too
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

} // namespace gw_test
