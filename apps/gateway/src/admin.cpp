#include "admin.hpp"

#include "admin_server.hpp"
#include "cluster_directory.hpp"

#include <warren/backend/control.hpp>
#include <warren/backend/local.hpp>
#include <warren/call_error.hpp>
#include <warren/log.hpp>
#include <warren/net/listener.hpp>
#include <warren/observer/observer.hpp>
#include <warren/registry.hpp>
#include <warren/supervisor.hpp>

#include <caf/all.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>

#include <chrono>
#include <optional>
#include <span>
#include <string_view>
#include <thread>

std::span<const warren::observer::asset> warren_gateway_assets(); // generated (CMakeLists.txt)

namespace warren::gateway {

namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

struct server_box {
  explicit server_box(admin_server_options o) : http(std::move(o)) {}
  admin_server http;
  std::thread thread;
  ~server_box() {
    http.stop();
    if (thread.joinable())
      thread.join();
  }
};

void reply_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  // replace: a device-supplied string that is not UTF-8 must not turn a reply into a 500
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n", "application/json");
}

/// Strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    auto b = static_cast<unsigned char>(s[i]);
    std::size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xe ? 3 : (b >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size())
      return false;
    uint32_t cp = n == 1 ? b : b & (0x7f >> n);
    for (std::size_t k = 1; k < n; ++k) {
      auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (c & 0x3f);
    }
    static constexpr uint32_t min_of[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_of[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += n;
  }
  return true;
}

/// The id in `/v1/<kind>/{id}/messages`, taken from the raw target and percent-decoded
/// here: httplib decodes the path before matching, so an id with an encoded '/' would
/// not be one segment. Empty: no such route shape, or a bad %-escape.
std::optional<std::string> id_segment(const httplib::Request& req, std::string_view prefix) {
  std::string_view t{req.target};
  t = t.substr(0, t.find('?'));
  constexpr std::string_view suffix = "/messages";
  if (!t.starts_with(prefix) || !t.ends_with(suffix) || t.size() <= prefix.size() + suffix.size())
    return std::nullopt;
  auto raw = t.substr(prefix.size(), t.size() - prefix.size() - suffix.size());
  std::string out;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '/')
      return std::nullopt;
    if (raw[i] != '%') {
      out += raw[i];
      continue;
    }
    auto hex = [](char c) -> int {
      return c >= '0' && c <= '9'   ? c - '0'
             : c >= 'a' && c <= 'f' ? c - 'a' + 10
             : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                    : -1;
    };
    if (i + 2 >= raw.size())
      return std::nullopt;
    int hi = hex(raw[i + 1]), lo = hex(raw[i + 2]);
    if (hi < 0 || lo < 0)
      return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
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

json listener_json(const std::string& id, const net::listener_counters& c) {
  return {{"id", id},
          {"accepted", c.accepted},
          {"active", c.active},
          {"closed", c.closed},
          {"refused", c.refused},
          {"overflow_closes", c.overflow_closes},
          {"frame_errors", c.frame_errors},
          {"idle_closes", c.idle_closes},
          {"accept_errors", c.accept_errors},
          {"handshake_failures", c.handshake_failures()},
          {"handshake",
           {{"timeout", c.handshake_timeout},
            {"peer_closed", c.handshake_peer_closed},
            {"not_tls", c.handshake_not_tls},
            {"unsupported_version", c.handshake_unsupported_version},
            {"no_shared_cipher", c.handshake_no_shared_cipher},
            {"client_cert_required", c.handshake_client_cert_required},
            {"bad_client_cert", c.handshake_bad_client_cert},
            {"other", c.handshake_other}}},
          {"frames_in", c.frames_in},
          {"frames_out", c.frames_out},
          {"bytes_in", c.bytes_in},
          {"bytes_out", c.bytes_out}};
}

/// The samples of a Prometheus text ("name value" lines) as {"name": value}: the
/// backend reports its state only that way (backends.hpp).
json prometheus_values(const std::string& text) {
  json out = json::object();
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    auto line = std::string_view{text}.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    auto sp = line.rfind(' ');
    if (line.empty() || line[0] == '#' || sp == std::string_view::npos ||
        line.find('{') != std::string_view::npos)
      continue;
    try {
      out[std::string{line.substr(0, sp)}] = std::stod(std::string{line.substr(sp + 1)});
    } catch (const std::exception&) {
    }
  }
  return out;
}

class http_api {
public:
  http_api(caf::actor_system& sys, admin_env env) : sys_(sys), env_(std::move(env)) {}

  /// The routes. A new group (in its own file) is mounted here too: the guard below
  /// covers it, and probes_ lists the only paths it leaves open.
  void install(admin_server& s) {
    server_ = &s;
    s.set_guard([this](const httplib::Request& req, httplib::Response& res) { return guard(req, res); });
    s.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
      // The details go to the log, never to the client.
      std::string what = "unknown exception";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      static log_limit limit;
      if (uint64_t held; limit.allow(held))
        log().error("admin API: {} {}: {} ({} more since the last report)", req.method, req.path, what, held);
      reply_json(res, 500, {{"error", "internal error"}});
    });
    s.Post(R"(/v1/devices/(.+)/messages)", [this](const httplib::Request& req, httplib::Response& res) {
      deliver(backend::address_kind::device, req, res);
    });
    s.Post(R"(/v1/connections/(.+)/messages)", [this](const httplib::Request& req, httplib::Response& res) {
      deliver(backend::address_kind::connection, req, res);
    });
    s.Get("/v1/connections",
          [this](const httplib::Request& req, httplib::Response& res) { connections(req, res); });
    s.Get("/v1/cluster", [this](const httplib::Request&, httplib::Response& res) { cluster(res); });
    s.Get("/v1/tree", [this](const httplib::Request&, httplib::Response& res) { tree(res); });
    s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) { metrics(res); });
    s.Get("/v1/stats",
          [this](const httplib::Request&, httplib::Response& res) { reply_json(res, 200, stats()); });
    // The live view (/, /ui/..., /v1/tree/stream, children pages, kill): its streams
    // go to the server's stream writer, never holding a worker.
    observer::options view;
    view.title = env_.cluster ? "Warren gateway " + env_.cluster->node_name() : "Warren gateway";
    view.top = env_.top;
    view.max_watchers = env_.cfg.max_watchers;
    view.allow_kill = env_.cfg.allow_kill;
    view.sample = [this] { return stats().dump(-1, ' ', false, json::error_handler_t::replace); };
    for (auto& a : warren_gateway_assets())
      view.extra.push_back(a);
    observer_ = std::make_shared<observer::routes>(sys_, std::move(view));
    observer_->install(
        s, [](const httplib::Request&, httplib::Response&, std::shared_ptr<observer::stream> st) {
          return admin_server::carry("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: "
                                     "no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\n",
                                     [st](std::string& out) { return st->pull(out, 0ms); });
        });
    // Probes: liveness (the process serves) and readiness (it should get traffic).
    s.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
      reply_json(res, 200, {{"status", "ok"}, {"connections", env_.registry->connections()}});
    });
    s.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) { readyz(res); });
  }

private:
  /// Every route but the probes needs the bearer token, when one is configured.
  admin_server::HandlerResponse guard(const httplib::Request& req, httplib::Response& res) {
    // The page loads without the token (it holds no data); its requests send it.
    if (env_.cfg.token.empty() || req.path == "/healthz" || req.path == "/readyz" || req.path == "/" ||
        req.path.starts_with("/ui/"))
      return admin_server::HandlerResponse::Unhandled;
    auto given = req.get_header_value("Authorization");
    auto expected = "Bearer " + env_.cfg.token;
    if (req.get_header_value_count("Authorization") == 1 && given.size() == expected.size() &&
        CRYPTO_memcmp(given.data(), expected.data(), given.size()) == 0)
      return admin_server::HandlerResponse::Unhandled;
    env_.metrics->admin_unauthorized.fetch_add(1, std::memory_order_relaxed);
    admin_server::close_after_reply(); // a body may follow, unread
    res.set_header("WWW-Authenticate", "Bearer realm=\"warren-admin\"");
    reply_json(res, 401, {{"error", "a valid Authorization: Bearer token is required"}});
    return admin_server::HandlerResponse::Handled;
  }

  void readyz(httplib::Response& res) {
    auto reasons = env_.not_ready ? env_.not_ready() : std::vector<std::string>{};
    if (reasons.empty())
      reply_json(res, 200, {{"status", "ready"}});
    else
      reply_json(res, 503, {{"status", "not ready"}, {"reasons", reasons}});
  }

  void deliver(backend::address_kind kind, const httplib::Request& req, httplib::Response& res) {
    auto id = id_segment(req, kind == backend::address_kind::device ? "/v1/devices/" : "/v1/connections/");
    if (!id) {
      reply_json(
          res, 400,
          {{"error", "the id must be one path segment (percent-encode '/' as %2F) with valid %-escapes"}});
      return;
    }
    if (!valid_utf8(*id)) {
      reply_json(res, 400, {{"error", "the id is not valid UTF-8"}});
      return;
    }
    if (req.body.size() > env_.cfg.body_limit) { // a chunked body: its size is known only now
      reply_json(res, 413, {{"error", "request body larger than the admin API's body_limit"}});
      return;
    }
    backend::to_device_message msg;
    msg.kind = kind;
    msg.target = *id;
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
    int status = 500;
    json body;
    auto outcome = [&](const caf::error& err) {
      std::tie(status, body) = delivery_answer(kind, target, err);
    };
    if (env_.cluster && !env_.registry->find(kind, target)) {
      // Held by another node, or by none: ask the cluster from this thread, with no
      // actor in between (the agents serve the backends' consumers).
      outcome(env_.cluster->deliver_blocking(msg));
    } else {
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
      self->request(via, env_.cfg.request_timeout, backend::deliver_atom::value, std::move(msg))
          .receive([&](backend::delivered_atom) { outcome(caf::none); },
                   [&](caf::error& err) { outcome(err); });
    }
    if (status == 404 || status >= 500) // the session counted its own refusals (409)
      env_.metrics->undeliverable.fetch_add(1, std::memory_order_relaxed);
    reply_json(res, status, body);
  }

  /// The HTTP status and body for a delivery's outcome (none: queued).
  std::pair<int, json> delivery_answer(backend::address_kind kind, const std::string& target,
                                       const caf::error& err) {
    using backend::backend_errc;
    auto key = to_string(kind) + "_id";
    if (!err)
      return {202, {{"status", "queued"}, {key, target}}};
    auto code = backend::backend_error(err);
    if (code == backend_errc::no_such_device)
      return {404, {{"error", "not connected"}, {key, target}}};
    if (code == backend_errc::cluster_unavailable)
      return {503, {{"error", "not delivered: the cluster is unreachable from this node"}, {key, target}}};
    if (code == backend_errc::no_answer)
      return {504,
              {{"error", "not delivered: the node that holds it did not answer in time"}, {key, target}}};
    if (code == backend_errc::bad_message)
      return {422,
              {{"error", "not queued: the message cannot be encoded for the device's connection (longer "
                         "than its listener's max_frame, or a line containing LF)"},
               {key, target}}};
    if (code)
      return {409,
              {{"error", "not queued: " + backend::to_string(static_cast<backend::backend_errc>(err.code()))},
               {key, target}}};
    if (err == caf::sec::request_receiver_down || err == caf::sec::unexpected_message ||
        warren::exit_reason_of(err)) // the session exited with the request queued
      return {404, {{"error", "not connected"}, {key, target}}};
    static log_limit limit;
    if (uint64_t held; limit.allow(held))
      log().warn("admin API: delivery to {} failed: {} ({} more since the last report)", target,
                 sys_.render(err), held);
    return {503, {{"error", "not delivered: the gateway could not route it now"}}};
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
    // ?q=: sessions whose device id or connection id contains it; ?limit=: at most so many.
    auto q = req.get_param_value("q");
    std::size_t limit = std::numeric_limits<std::size_t>::max();
    if (req.has_param("limit")) {
      auto text = req.get_param_value("limit");
      if (text.empty() || text.size() > 9 || text.find_first_not_of("0123456789") != std::string::npos) {
        reply_json(res, 400, {{"error", "limit must be a non-negative integer"}});
        return;
      }
      limit = std::stoul(text);
    }
    auto& c = env_.cluster;
    for (auto& v : env_.registry->list()) {
      if (arr.size() >= limit)
        break;
      if (!q.empty() && v.device_id.find(q) == std::string::npos &&
          v.connection_id.find(q) == std::string::npos)
        continue;
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
      log().warn("admin API: /v1/tree: {}", sys_.render(t.error()));
      reply_json(res, 503, {{"error", "the supervision tree did not answer"}});
      return;
    }
    res.status = 200;
    res.set_content(to_json(*t) + "\n", "application/json");
  }

  /// What the live view's panels show (and GET /v1/stats returns): listeners,
  /// sessions, the backend, the cluster as this node sees it, the admin API.
  json stats() {
    json ls = json::array();
    for (auto& id : env_.listeners)
      if (auto c = net::listener::counters(sys_, id))
        ls.push_back(listener_json(id, *c));
    auto& m = *env_.metrics;
    auto ld = [](const auto& x) { return x.load(std::memory_order_relaxed); };
    json backend{{"kind", env_.backend_kind}};
    auto reasons = env_.not_ready ? env_.not_ready() : std::vector<std::string>{};
    backend["ready"] = reasons.empty();
    backend["not_ready"] = reasons;
    std::string text;
    if (env_.backend_metrics)
      env_.backend_metrics(text);
    backend["metrics"] = prometheus_values(text);
    json cluster = nullptr;
    if (auto& c = env_.cluster) {
      cluster = json::parse(c->info_json());
      json peers = json::array();
      auto now = unix_us();
      for (auto& [name, p] : c->peers_view())
        peers.push_back({{"node", name},
                         {"state", p.lost ? "lost" : "up"},
                         {"last_heartbeat_ms_ago", (now - p.last_seen_us) / 1000}});
      cluster["peers"] = std::move(peers);
    }
    auto& a = server_->counters();
    return {
        {"now_ms", unix_us() / 1000},
        {"listeners", std::move(ls)},
        {"sessions", {{"connections", env_.registry->connections()}, {"devices", env_.registry->devices()}}},
        {"messages",
         {{"in", ld(m.messages_in)},
          {"out", ld(m.messages_out)},
          {"backend_accepted", ld(m.backend_accepted)},
          {"undeliverable", ld(m.undeliverable)},
          {"takeovers", ld(m.takeovers)}}},
        {"backend", std::move(backend)},
        {"cluster", std::move(cluster)},
        {"admin", {{"streams_open", ld(a.streams_open)}, {"connections", ld(a.connections)}}}};
  }

  void metrics(httplib::Response& res) {
    std::vector<std::pair<std::string, net::listener_counters>> ls;
    for (auto& id : env_.listeners)
      if (auto c = net::listener::counters(sys_, id))
        ls.emplace_back(id, *c);
    auto text = render_prometheus(*env_.metrics, *env_.registry, ls, env_.cluster.get());
    if (env_.backend_metrics)
      env_.backend_metrics(text);
    auto ld = [](const std::atomic<uint64_t>& x) { return x.load(std::memory_order_relaxed); };
    auto& a = server_->counters();
    prometheus_metric(text, "warren_admin_connections_total", "Admin API connections accepted.",
                      ld(a.connections));
    prometheus_metric(text, "warren_admin_refused_total",
                      "Admin API connections refused (max_connections, all busy).", ld(a.refused));
    prometheus_metric(
        text, "warren_admin_evicted_total",
        "Admin API connections closed idle or slow to make room for a new one (max_connections).",
        ld(a.evicted));
    prometheus_metric(text, "warren_admin_idle_closes_total", "Admin API connections closed idle.",
                      ld(a.idle_closes));
    prometheus_metric(text, "warren_admin_read_timeouts_total",
                      "Admin API requests not read within read_timeout.", ld(a.read_timeouts));
    prometheus_metric(text, "warren_admin_rejected_total",
                      "Admin API requests refused before routing (framing, limits).", ld(a.rejected));
    prometheus_metric(text, "warren_admin_unauthorized_total", "Admin API requests without the bearer token.",
                      ld(env_.metrics->admin_unauthorized));
    prometheus_metric(text, "warren_admin_tls_failures_total", "Admin API TLS handshakes that failed.",
                      ld(a.tls_failures));
    prometheus_metric(text, "warren_admin_streams_total", "Live view event streams opened.", ld(a.streams));
    prometheus_metric(text, "warren_admin_streams_open", "Live view event streams open.",
                      static_cast<uint64_t>(std::max<int64_t>(0, a.streams_open.load())), "gauge");
    prometheus_metric(text, "warren_admin_stream_stalls_total",
                      "Live view streams closed: their client read nothing for write_timeout.",
                      ld(a.stream_stalls));
    auto& w = observer_->counters();
    prometheus_metric(text, "warren_admin_stream_refused_total", "Live view streams refused (max_watchers).",
                      ld(w.refused));
    prometheus_metric(text, "warren_admin_stream_resyncs_total",
                      "Live view snapshots sent again to a watcher that fell behind.", ld(w.resyncs));
    res.status = 200;
    res.set_content(text, "text/plain; version=0.0.4");
  }

  caf::actor_system& sys_;
  admin_env env_;
  admin_server* server_ = nullptr; ///< outlives this (server_box before http_api)
  std::shared_ptr<observer::routes> observer_;
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
    admin_server_options o;
    o.bind = env.cfg.bind;
    o.port = env.cfg.port;
    o.threads = std::max<std::size_t>(1, env.cfg.threads);
    o.max_connections = env.cfg.max_connections;
    o.body_limit = env.cfg.body_limit;
    o.max_requests = env.cfg.max_requests;
    o.idle_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(env.cfg.idle_timeout);
    o.read_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(env.cfg.read_timeout);
    o.backlog = std::max<int>(128, static_cast<int>(std::min<std::size_t>(env.cfg.max_connections, 4096)));
    o.cert_file = env.cfg.cert_file;
    o.key_file = env.cfg.key_file;
    auto box = std::make_shared<server_box>(std::move(o));
    auto api = std::make_shared<http_api>(ctx.system(), env);
    api->install(box->http);
    if (auto err = box->http.start(); !err.empty())
      return make_error(exit_code::bad_start, err);
    auto port = box->http.port();
    if (env.bound_port)
      env.bound_port->store(port);
    box->thread = std::thread{[b = box.get()] { b->http.listen_after_bind(); }};
    // httplib's stop() only ends a listen loop that has started: stopped before that, the
    // loop would block in accept() and ~server_box in join() (a stop right after the
    // start, under load). So the child counts as started once the loop runs.
    for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
         !box->http.is_running() && std::chrono::steady_clock::now() < until;)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    log().info("admin API on {}://{}:{}{}", box->http.tls() ? "https" : "http", env.cfg.bind, port,
               env.cfg.token.empty() ? "" : " (bearer token required)");
    return caf::actor{ctx.system().spawn<admin_actor>(std::move(box), std::move(api))};
  };
  return spec;
}

} // namespace warren::gateway
