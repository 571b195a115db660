#include "gateway.hpp"

#include "admin.hpp"
#include "backends.hpp"
#include "devcert.hpp"
#include "producer_watch.hpp"
#include "session.hpp"

#include <warren/backend/control.hpp>
#include <warren/log.hpp>
#include <warren/net/listener.hpp>
#include <warren/net/scheduler.hpp>
#include <warren/registry.hpp>
#include <warren/supervisor.hpp>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sys/resource.h>
#include <unistd.h>

namespace warren::gateway {

namespace {

using metrics_tick_atom = caf::atom_constant<caf::atom("gwmtick")>;

caf::behavior metrics_logger(caf::event_based_actor* self, std::shared_ptr<gateway_metrics> m,
                             std::shared_ptr<session_registry> reg, caf::timespan interval) {
  if (interval.count() > 0)
    self->delayed_send(self, interval, metrics_tick_atom::value);
  return {
      [=](metrics_tick_atom) {
        auto ld = [](const std::atomic<uint64_t>& x) { return x.load(std::memory_order_relaxed); };
        log().info(
            "sessions {} devices {} | in {} accepted {} | out {} undeliverable {} | takeovers {} gaps {}",
            reg->connections(), reg->devices(), ld(m->messages_in), ld(m->backend_accepted),
            ld(m->messages_out), ld(m->undeliverable), ld(m->takeovers), ld(m->gap_skips));
        self->delayed_send(self, interval, metrics_tick_atom::value);
      },
  };
}

struct quiet_caf : caf::actor_system_config {
  quiet_caf(std::size_t workers, std::size_t moderate_polls, bool sched_batch) {
    set("logger.verbosity", caf::atom("quiet"));
    if (workers > 0)
      set("scheduler.max-threads", workers);
    net::tune_scheduler_for_io(*this, moderate_polls, net::default_worker_nice, sched_batch);
  }
};

} // namespace

void raise_nofile_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    log().warn("getrlimit(RLIMIT_NOFILE) failed");
    return;
  }
  auto soft = lim.rlim_cur;
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0) {
      log().warn("open files: soft limit {} (hard {}); raising it failed", soft, lim.rlim_max);
      return;
    }
  }
  log().info("open files: soft limit {} -> {} (hard limit {})", soft, lim.rlim_cur, lim.rlim_max);
}

int somaxconn() {
  std::ifstream in{"/proc/sys/net/core/somaxconn"};
  int v = -1;
  if (in >> v)
    return v;
  return -1;
}

gateway::gateway(config cfg)
  : cfg_(std::move(cfg)), registry_(std::make_shared<session_registry>()),
    metrics_(std::make_shared<gateway_metrics>()), admin_port_(std::make_shared<std::atomic<uint16_t>>(0)),
    draining_(std::make_shared<std::atomic<bool>>(false)) {
  if (cfg_.backend.kind == "local") {
    if (!cfg_.backend.local.hub)
      cfg_.backend.local.hub = std::make_shared<backend::local_hub>();
    hub_ = cfg_.backend.local.hub;
  }
  pool_ = std::make_unique<net::io_pool>(cfg_.io_threads, cfg_.sched_batch);
  sys_cfg_ =
      std::make_unique<quiet_caf>(cfg_.scheduler_threads, cfg_.scheduler_moderate_polls, cfg_.sched_batch);
  sys_ = std::make_unique<caf::actor_system>(*sys_cfg_);
}

gateway::~gateway() {
  if (started_ && !ran_) {
    app_->stop();
    app_->run();
  }
  app_.reset();
  if (cluster_)
    cluster_->stop(); // no NATS callback may reach the actor system from now on
  sys_.reset();
  pool_.reset();
}

caf::actor gateway::top() const {
  return app_ ? app_->top() : caf::actor{};
}

uint16_t gateway::port(const std::string& name) const {
  auto i = ports_.find(name);
  return i == ports_.end() ? 0 : i->second;
}

caf::error gateway::start() {
  app_ = std::make_unique<application>(*sys_, "warren-gateway", false);
  try {
    if (cfg_.cluster.enabled && cfg_.cluster.nats.node_name.empty()) {
      char host[256] = {};
      if (gethostname(host, sizeof(host) - 1) == 0)
        cfg_.cluster.nats.node_name = host;
    }
    validate_config(cfg_);
    for (auto& w : config_warnings(cfg_))
      log().warn("{}", w);
    // Certificates: a development one for every TLS listener without its own.
    for (auto& l : cfg_.listeners) {
      if (!l.tls || !l.cert_file.empty())
        continue;
      if (dev_cert_.empty()) {
        auto dc = ensure_dev_cert(cfg_.data_dir);
        dev_cert_ = dc.cert_file;
        auto abs = std::filesystem::absolute(dc.cert_file).string();
        log().warn("listener {}: no certificate configured; {} the development certificate {} (self-signed, "
                   "CN=localhost; for development only)",
                   l.name, dc.created ? "created" : "using", abs);
        log().warn("trust it with: openssl s_client -connect {}:{} -CAfile {}",
                   l.net.bind_address == "0.0.0.0" ? "127.0.0.1" : l.net.bind_address, l.net.port, abs);
      }
      l.cert_file = dev_cert_;
      l.key_file = (std::filesystem::path{dev_cert_}.parent_path() / "dev-key.pem").string();
    }
    auto maxconn = somaxconn();
    for (auto& l : cfg_.listeners)
      if (maxconn > 0 && l.net.backlog > maxconn)
        log().info(
            "listener {}: accept queue {} (net.core.somaxconn caps backlog {}): a reconnect wave of more "
            "devices at once waits for SYN retransmits; raise it with sysctl -w net.core.somaxconn=N "
            "(docs/operations.md)",
            l.name, maxconn, l.net.backlog);
    if (cfg_.cluster.enabled) {
      cluster_ = std::make_shared<cluster_directory>(cfg_.cluster, *registry_);
      cluster_->list_sessions = [reg = registry_.get(), name = cfg_.cluster.nats.node_name](
                                    std::size_t limit) { return sessions_json(*reg, name, limit); };
      registry_->set_cluster(cluster_);
      cluster_->start(*sys_);
      log().info("cluster: node {}, NATS {}", cfg_.cluster.nats.node_name,
                 fmt::join(cfg_.cluster.nats.urls, ","));
    }
    auto [spec, health] = make_backend(cfg_, registry_);
    backend_health_ = std::move(health);
    producer_names_ = spec.producer_names();
    std::vector<child_spec> listeners;
    std::vector<std::string> names;
    session_env env{registry_, metrics_, cluster_};
    for (auto& l : cfg_.listeners) {
      auto opts = l.net;
      if (l.tls) {
        net::tls_options t;
        t.cert_file = l.cert_file;
        t.key_file = l.key_file;
        t.ca_file = l.ca_file;
        t.verify_peer = l.verify_peer;
        t.min_version = l.min_tls == "1.3" ? net::tls_version::tls13 : net::tls_version::tls12;
        opts.tls = t;
      }
      // codec frame: ACK a device message only once the backend accepted it.
      opts.auto_ack = false;
      auto so = l.session;
      so.listener = l.name;
      so.producer_names = producer_names_;
      listeners.push_back(net::listener_child(l.name, *pool_, opts, session_factory(so, env)));
      names.push_back(l.name);
    }
    supervisor_flags lflags;
    lflags.intensity = 10;
    lflags.period = std::chrono::seconds(10);
    std::vector<child_spec> children;
    children.push_back(spec.supervisor);
    if (cluster_)
      children.push_back(cluster_->supervisor_child());
    children.push_back(supervisor_child("listeners", lflags, std::move(listeners)));
    if (cfg_.admin.enabled) {
      admin_env aenv;
      aenv.cfg = cfg_.admin;
      aenv.registry = registry_;
      aenv.metrics = metrics_;
      aenv.cluster = cluster_;
      aenv.listeners = names;
      aenv.consumers = spec.kind == "local" ? cfg_.backend.local.consumers : 0;
      aenv.top = [app = app_.get()] { return app->top(); };
      aenv.bound_port = admin_port_;
      aenv.not_ready = [this] { return not_ready(); };
      aenv.backend_metrics = backend_health_.metrics;
      aenv.backend_kind = spec.kind;
      children.push_back(admin_child(std::move(aenv)));
    }
    child_spec metrics;
    metrics.id = "metrics";
    metrics.start = spawn_fn_of(metrics_logger, metrics_, registry_, cfg_.metrics_log_interval);
    children.push_back(std::move(metrics));
    // Last: it depends on the backend and the sessions, and nothing depends on it.
    child_spec watch;
    watch.id = "producer_watch";
    watch.start = spawn_fn_of(producer_watch, producer_names_, registry_, cfg_.producer_check);
    children.push_back(std::move(watch));
    supervisor_flags flags;
    flags.strategy = restart_strategy::rest_for_one;
    flags.intensity = 3;
    flags.period = std::chrono::seconds(10);
    if (auto err = app_->start(flags, std::move(children)))
      return err;
    started_ = true;
    for (auto& l : cfg_.listeners) {
      auto p = net::listener::port(*sys_, l.name);
      ports_[l.name] = p ? *p : 0;
      log().info("listener {}: {} {}:{} codec {} identify {}", l.name, l.tls ? "TLS" : "plain TCP",
                 l.net.bind_address, ports_[l.name], l.net.codec == net::codec_kind::frame ? "frame" : "line",
                 to_string(l.session.identify));
    }
    log().info("backend {}{}", spec.kind,
               spec.kind == "local" ? " (device messages to " + cfg_.backend.local.sink + ")"
                                    : std::string{});
    write_ports_file();
  } catch (const std::exception& e) {
    log().critical("warren-gateway: {}", e.what());
    return make_error(exit_code::bad_start, e.what());
  }
  return {};
}

void gateway::write_ports_file() const {
  if (cfg_.ports_file.empty())
    return;
  nlohmann::json j;
  j["listeners"] = nlohmann::json::object();
  for (auto& [name, port] : ports_)
    j["listeners"][name] = port;
  j["admin"] = admin_port_->load();
  auto tmp = cfg_.ports_file + ".tmp";
  {
    std::ofstream out{tmp};
    out << j.dump() << "\n";
  }
  std::filesystem::rename(tmp, cfg_.ports_file);
}

std::vector<std::string> gateway::not_ready() const {
  std::vector<std::string> why;
  // The drain hook: set when shutdown() starts.
  if (draining_->load())
    why.push_back("draining");
  for (auto& l : cfg_.listeners)
    if (!net::listener::port(*sys_, l.name))
      why.push_back("listener " + l.name + " is not listening");
  // A producer between crash and restart: sessions have nowhere to publish.
  auto& ns = warren::names(*sys_);
  for (auto& n : producer_names_)
    if (!ns.whereis(n))
      why.push_back("backend producer " + n + " is not running");
  if (backend_health_.not_ready)
    for (auto& r : backend_health_.not_ready())
      why.push_back(std::move(r));
  return why;
}

int gateway::run() {
  if (!started_)
    return application::exit_start_failed;
  ran_ = true;
  return app_->run();
}

void gateway::shutdown() {
  std::call_once(shutdown_once_, [this] {
    if (!started_)
      return;
    draining_->store(true); // /readyz: not ready from now on
    log().info("stopping: no new connections; draining devices for up to {}",
               format_duration(cfg_.drain_timeout));
    for (auto& l : cfg_.listeners)
      net::listener::suspend(*sys_, l.name);
    auto until = std::chrono::steady_clock::now() + cfg_.drain_timeout;
    for (auto& l : cfg_.listeners) {
      auto left = std::max(caf::timespan{0}, caf::timespan{until - std::chrono::steady_clock::now()});
      if (auto n = net::listener::drain(*sys_, l.name, left))
        log().info("listener {}: drained{}", l.name,
                   *n > 0 ? fmt::format(", {} connections closed at the deadline", *n) : std::string{});
      else
        log().warn("listener {}: drain failed: {}", l.name, sys_->render(n.error()));
    }
    for (auto& name : producer_names_) {
      if (auto prod = whereis(*sys_, name)) {
        caf::scoped_actor self{*sys_};
        self->request(prod, std::chrono::seconds(5), backend::flush_atom::value)
            .receive([] {}, [](caf::error& err) { log().warn("producer flush: {}", caf::to_string(err)); });
      }
    }
    app_->stop();
  });
}

} // namespace warren::gateway
