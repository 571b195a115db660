#include "admin.hpp"

#include <warren/backend/control.hpp>
#include <warren/backend/local.hpp>
#include <warren/log.hpp>
#include <warren/net/listener.hpp>
#include <warren/registry.hpp>
#include <warren/supervisor.hpp>

#include <caf/all.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

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
    s.Get("/v1/connections", [this](const httplib::Request&, httplib::Response& res) { connections(res); });
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
      via = env_.registry->find(kind, target);
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
              if (err.category() == backend::backend_error_category &&
                  err.code() == static_cast<uint8_t>(backend::backend_errc::no_such_device)) {
                status = 404;
                body = {{"error", "not connected"}, {to_string(kind) + "_id", target}};
              } else if (err.category() == backend::backend_error_category) {
                status = 409;
                body = {{"error",
                         "not queued: " + backend::to_string(static_cast<backend::backend_errc>(err.code()))},
                        {to_string(kind) + "_id", target}};
              } else if (err == caf::sec::request_receiver_down || err == caf::sec::unexpected_message) {
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

  void connections(httplib::Response& res) {
    auto xs = env_.registry->list();
    json arr = json::array();
    for (auto& v : xs) {
      arr.push_back({{"connection_id", v.connection_id},
                     {"device_id", v.device_id.empty() ? json(nullptr) : json(v.device_id)},
                     {"peer", v.peer},
                     {"listener", v.listener},
                     {"tls_version", v.tls_version.empty() ? json(nullptr) : json(v.tls_version)},
                     {"connected_since_ms", v.connected_since_ms},
                     {"seq_in", v.seq_in},
                     {"seq_out", v.seq_out}});
    }
    reply_json(res, 200, arr);
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
    res.set_content(render_prometheus(*env_.metrics, *env_.registry, ls), "text/plain; version=0.0.4");
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
    log().info("admin API on http://{}:{}", env.cfg.bind, port);
    return caf::actor{ctx.system().spawn<admin_actor>(std::move(box), std::move(api))};
  };
  return spec;
}

} // namespace warren::gateway
