#include "admin.hpp"

#include "cluster_directory.hpp"

#include <warren/backend/control.hpp>
#include <warren/backend/local.hpp>
#include <warren/call_error.hpp>
#include <warren/log.hpp>
#include <warren/net/listener.hpp>
#include <warren/registry.hpp>
#include <warren/supervisor.hpp>

#include <caf/all.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <thread>

namespace warren::gateway {

namespace {

using json = nlohmann::json;

struct server_box {
  httplib::Server http;
  std::thread thread;
  ~server_box() {
    http.stop();
    if (thread.joinable())
      thread.join();
  }
};

void reply_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump() + "\n", "application/json");
}

json session_to_json(const session_view& v) {
  return {{"connection_id", v.connection_id},
          {"device_id", v.device_id.empty() ? json(nullptr) : json(v.device_id)},
          {"peer", v.peer},
          {"listener", v.listener},
          {"tls_version", v.tls_version.empty() ? json(nullptr) : json(v.tls_version)},
          {"connected_since_ms", v.connected_since_ms},
          {"seq_in", v.seq_in},
          {"seq_out", v.seq_out}};
}

class http_api {
public:
  http_api(caf::actor_system& sys, admin_env env) : sys_(sys), env_(std::move(env)) {}

  void install(httplib::Server& s) {
    s.Post(R"(/v1/devices/([^/]+)/messages)", [this](const httplib::Request& req, httplib::Response& res) {
      deliver(backend::address_kind::device, req, res);
    });
    s.Post(R"(/v1/connections/([^/]+)/messages)",
           [this](const httplib::Request& req, httplib::Response& res) {
             deliver(backend::address_kind::connection, req, res);
           });
    s.Get("/v1/connections",
          [this](const httplib::Request& req, httplib::Response& res) { connections(req, res); });
    s.Get("/v1/cluster", [this](const httplib::Request&, httplib::Response& res) { cluster(res); });
    s.Get("/v1/tree", [this](const httplib::Request&, httplib::Response& res) { tree(res); });
    s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) { metrics(res); });
    s.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
      reply_json(res, 200, {{"status", "ok"}, {"connections", env_.registry->connections()}});
    });
  }

private:
  void deliver(backend::address_kind kind, const httplib::Request& req, httplib::Response& res) {
    backend::to_device_message msg;
    msg.kind = kind;
    msg.target = req.matches[1].str();
    msg.payload = req.body;
    if (req.has_param("to_device_seq")) {
      try {
        std::size_t pos = 0;
        auto text = req.get_param_value("to_device_seq");
        msg.to_device_seq = std::stoull(text, &pos);
        if (pos != text.size() || text.empty() || text[0] == '-')
          throw std::invalid_argument("trailing");
      } catch (const std::exception&) {
        reply_json(res, 400, {{"error", "to_device_seq must be a non-negative integer"}});
        return;
      }
    }
    auto target = msg.target;
    // The local backend's consumers route it; with another backend, the registry.
    caf::actor via;
    if (env_.consumers > 0)
      via = warren::whereis(sys_, backend::consumer_name(next_++ % env_.consumers));
    if (!via) {
      via = env_.registry->route(kind, target);
      if (!via) {
        not_found(res, kind, target);
        return;
      }
    }
    caf::scoped_actor self{sys_};
    int status = 500;
    json body;
    self->request(via, env_.cfg.request_timeout, backend::deliver_atom::value, std::move(msg))
        .receive(
            [&](backend::delivered_atom) {
              status = 202;
              body = {{"status", "queued"}, {to_string(kind) + "_id", target}};
            },
            [&](caf::error& err) {
              using backend::backend_errc;
              auto code = backend::backend_error(err);
              if (code == backend_errc::no_such_device) {
                status = 404;
                body = {{"error", "not connected"}, {to_string(kind) + "_id", target}};
              } else if (code == backend_errc::cluster_unavailable) {
                status = 503;
                body = {{"error", "not delivered: the cluster is unreachable from this node"},
                        {to_string(kind) + "_id", target}};
              } else if (code == backend_errc::no_answer) {
                status = 504;
                body = {{"error", "not delivered: the node that holds it did not answer in time"},
                        {to_string(kind) + "_id", target}};
              } else if (code == backend_errc::bad_message) {
                status = 422;
                body = {{"error",
                         "not queued: the message cannot be encoded for the device's connection (longer "
                         "than its listener's max_frame, or a line containing LF)"},
                        {to_string(kind) + "_id", target}};
              } else if (code) {
                status = 409;
                body = {{"error",
                         "not queued: " + backend::to_string(static_cast<backend::backend_errc>(err.code()))},
                        {to_string(kind) + "_id", target}};
              } else if (err == caf::sec::request_receiver_down || err == caf::sec::unexpected_message ||
                         warren::exit_reason_of(err)) { // the session exited with the request queued
                status = 404;
                body = {{"error", "not connected"}, {to_string(kind) + "_id", target}};
              } else {
                status = 503;
                body = {{"error", sys_.render(err)}};
              }
            });
    if (status == 404 || status >= 500) // the session counted its own refusals (409)
      env_.metrics->undeliverable.fetch_add(1, std::memory_order_relaxed);
    reply_json(res, status, body);
  }

  void not_found(httplib::Response& res, backend::address_kind kind, const std::string& target) {
    env_.metrics->undeliverable.fetch_add(1, std::memory_order_relaxed);
    reply_json(res, 404, {{"error", "not connected"}, {to_string(kind) + "_id", target}});
  }

  void connections(const httplib::Request& req, httplib::Response& res) {
    json arr = json::array();
    auto scope = req.has_param("scope") ? req.get_param_value("scope") : std::string{"node"};
    if (scope != "node" && scope != "cluster") {
      reply_json(res, 400, {{"error", "scope must be node or cluster"}});
      return;
    }
    auto& c = env_.cluster;
    for (auto& v : env_.registry->list()) {
      auto j = session_to_json(v);
      if (c)
        j["node"] = c->node_name();
      arr.push_back(std::move(j));
    }
    if (scope == "cluster" && c) {
      auto limit = std::to_string(c->cfg().list_limit);
      for (auto& m : c->node().gather(c->cfg().nats.prefix + ".nodes.connections", limit,
                                      c->cfg().nats.request_timeout, live_peers())) {
        auto j = json::parse(m.data(), nullptr, false);
        if (j.is_discarded() || !j.contains("sessions") || !j["sessions"].is_array())
          continue;
        for (auto& v : j["sessions"])
          arr.push_back(std::move(v));
      }
    }
    reply_json(res, 200, arr);
  }

  /// The other nodes heard from lately: a scatter-gather is complete with that many.
  std::size_t live_peers() const {
    std::size_t n = 0;
    for (auto& [name, p] : env_.cluster->peers_view())
      n += p.lost ? 0 : 1;
    return std::max<std::size_t>(n, 1);
  }

  void cluster(httplib::Response& res) {
    auto& c = env_.cluster;
    if (!c) {
      reply_json(res, 404, {{"error", "this node is not in a cluster"}});
      return;
    }
    auto self = json::parse(c->info_json());
    auto& node = c->node();
    if (auto rtt = node.rtt())
      self["nats"]["rtt_us"] = std::chrono::duration_cast<std::chrono::microseconds>(*rtt).count();
    self["nats"]["reconnects"] = node.counters().reconnects.load();
    json peers = json::array();
    auto now = unix_us();
    for (auto& [name, p] : c->peers_view())
      peers.push_back({{"node", name},
                       {"state", p.lost ? "lost" : "up"},
                       {"last_heartbeat_ms_ago", (now - p.last_seen_us) / 1000}});
    json answering = json::array();
    for (auto& m :
         node.gather(c->cfg().nats.prefix + ".nodes.info", {}, c->cfg().nats.request_timeout, live_peers())) {
      auto j = json::parse(m.data(), nullptr, false);
      if (!j.is_discarded())
        answering.push_back(std::move(j));
    }
    reply_json(res, 200, {{"node", self}, {"peers", peers}, {"answering", answering}});
  }

  void tree(httplib::Response& res) {
    auto top = env_.top ? env_.top() : caf::actor{};
    if (!top) {
      reply_json(res, 503, {{"error", "starting"}});
      return;
    }
    auto t = sup::tree(sys_, top);
    if (!t) {
      reply_json(res, 503, {{"error", sys_.render(t.error())}});
      return;
    }
    res.status = 200;
    res.set_content(to_json(*t) + "\n", "application/json");
  }

  void metrics(httplib::Response& res) {
    std::vector<std::pair<std::string, net::listener_counters>> ls;
    for (auto& id : env_.listeners)
      if (auto c = net::listener::counters(sys_, id))
        ls.emplace_back(id, *c);
    res.status = 200;
    res.set_content(render_prometheus(*env_.metrics, *env_.registry, ls, env_.cluster.get()),
                    "text/plain; version=0.0.4");
  }

  caf::actor_system& sys_;
  admin_env env_;
  std::atomic<std::size_t> next_{0};
};

class admin_actor : public caf::event_based_actor {
public:
  admin_actor(caf::actor_config& cfg, std::shared_ptr<server_box> box, std::shared_ptr<http_api> api)
    : caf::event_based_actor(cfg), api_(std::move(api)), box_(std::move(box)) {}

  caf::behavior make_behavior() override {
    return {[](caf::get_atom) { return caf::unit; }};
  }

  void on_exit() override {
    // Stop serving with the tree: no handler runs after this returns.
    box_.reset();
    api_.reset();
  }

private:
  std::shared_ptr<http_api> api_; // destroyed after box_, whose threads use it
  std::shared_ptr<server_box> box_;
};

} // namespace

std::string sessions_json(const session_registry& reg, const std::string& node, std::size_t limit) {
  auto xs = reg.list();
  json arr = json::array();
  for (std::size_t i = 0; i < xs.size() && i < limit; ++i) {
    auto j = session_to_json(xs[i]);
    j["node"] = node;
    arr.push_back(std::move(j));
  }
  return json{{"node", node}, {"total", xs.size()}, {"sessions", std::move(arr)}}.dump();
}

child_spec admin_child(admin_env env) {
  child_spec spec;
  spec.id = "admin";
  spec.shutdown = shutdown_spec::timeout(std::chrono::seconds(10));
  spec.start = [env](const start_context& ctx) -> start_result {
    auto box = std::make_shared<server_box>();
    auto api = std::make_shared<http_api>(ctx.system(), env);
    api->install(box->http);
    auto threads = std::max<std::size_t>(1, env.cfg.threads);
    box->http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    int port;
    if (env.cfg.port == 0)
      port = box->http.bind_to_any_port(env.cfg.bind);
    else
      port = box->http.bind_to_port(env.cfg.bind, env.cfg.port) ? env.cfg.port : -1;
    if (port < 0)
      return make_error(exit_code::bad_start,
                        "admin API: cannot bind " + env.cfg.bind + ":" + std::to_string(env.cfg.port));
    if (env.bound_port)
      env.bound_port->store(static_cast<uint16_t>(port));
    box->thread = std::thread{[b = box.get()] { b->http.listen_after_bind(); }};
    // httplib's stop() only ends a listen loop that has started: stopped before that, the
    // loop would block in accept() and ~server_box in join() (a stop right after the
    // start, under load). So the child counts as started once the loop runs.
    for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
         !box->http.is_running() && std::chrono::steady_clock::now() < until;)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    log().info("admin API on http://{}:{}", env.cfg.bind, port);
    return caf::actor{ctx.system().spawn<admin_actor>(std::move(box), std::move(api))};
  };
  return spec;
}

} // namespace warren::gateway
