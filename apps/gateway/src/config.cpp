#include "config.hpp"

#include <CLI/CLI.hpp>

#include <cctype>
#include <charconv>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <stdexcept>

namespace warren::gateway {

caf::timespan require_duration(std::string_view text) {
  if (auto d = warren::parse_duration(text))
    return *d;
  throw std::runtime_error("bad duration: " + std::string{text} + " (a number and ns, us, ms, s, m or h)");
}

namespace {

listener_config default_listener(std::string name, bool tls, uint16_t port) {
  listener_config l;
  l.name = std::move(name);
  l.tls = tls;
  l.net.bind_address = "127.0.0.1";
  l.net.port = port;
  return l;
}

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw std::runtime_error(where + ": " + what);
}

// Reads typed values out of one TOML table and rejects keys it does not know.
class section {
public:
  section(const toml::table& t, std::string where) : t_(t), where_(std::move(where)) {}
  ~section() noexcept(false) {
    if (std::uncaught_exceptions() > 0)
      return;
    for (auto& [k, v] : t_)
      if (!seen_.count(std::string{k.str()}))
        fail(where_, "unknown option '" + std::string{k.str()} + "'");
  }

  void get(const char* key, std::string& out) {
    if (auto v = node(key)) {
      if (!v->is_string())
        fail(where_, std::string{key} + " must be a string");
      out = v->as_string()->get();
    }
  }
  void get(const char* key, bool& out) {
    if (auto v = node(key)) {
      if (!v->is_boolean())
        fail(where_, std::string{key} + " must be true or false");
      out = v->as_boolean()->get();
    }
  }
  template <class Int>
  void get_int(const char* key, Int& out) {
    if (auto v = node(key)) {
      if (!v->is_integer() || v->as_integer()->get() < 0)
        fail(where_, std::string{key} + " must be a non-negative integer");
      out = static_cast<Int>(v->as_integer()->get());
    }
  }
  void get_duration(const char* key, caf::timespan& out) {
    if (auto v = node(key)) {
      if (v->is_integer())
        out = std::chrono::milliseconds(v->as_integer()->get());
      else if (v->is_string())
        out = require_duration(v->as_string()->get());
      else
        fail(where_, std::string{key} + " must be a duration (\"5s\", \"250ms\") or milliseconds");
    }
  }
  /// A string or an array of strings.
  void get_strings(const char* key, std::vector<std::string>& out) {
    if (auto v = node(key)) {
      std::vector<std::string> xs;
      if (v->is_string()) {
        xs.push_back(v->as_string()->get());
      } else if (auto arr = v->as_array()) {
        for (auto& x : *arr) {
          if (!x.is_string())
            fail(where_, std::string{key} + " must be a string or an array of strings");
          xs.push_back(x.as_string()->get());
        }
      } else {
        fail(where_, std::string{key} + " must be a string or an array of strings");
      }
      out = std::move(xs);
    }
  }
  const toml::table* table(const char* key) {
    if (auto v = node(key)) {
      if (!v->is_table())
        fail(where_, std::string{key} + " must be a table");
      return v->as_table();
    }
    return nullptr;
  }
  const toml::node* node(const char* key) {
    seen_.insert(key);
    return t_.get(key);
  }
  const std::string& where() const { return where_; }

private:
  const toml::table& t_;
  std::string where_;
  std::set<std::string> seen_;
};

void apply_listener(section& s, listener_config& l) {
  s.get("name", l.name);
  s.get("bind", l.net.bind_address);
  s.get_int("port", l.net.port);
  s.get("tls", l.tls);
  s.get("cert", l.cert_file);
  s.get("key", l.key_file);
  s.get("ca", l.ca_file);
  // As the --ca flag: a CA means mTLS unless verify_peer = false says otherwise.
  if (s.node("verify_peer") == nullptr)
    l.verify_peer = !l.ca_file.empty();
  s.get("verify_peer", l.verify_peer);
  s.get("min_tls", l.min_tls);
  if (l.min_tls != "1.2" && l.min_tls != "1.3")
    fail(s.where(), "min_tls must be \"1.2\" or \"1.3\"");
  std::string codec = l.net.codec == net::codec_kind::frame ? "frame" : "line";
  s.get("codec", codec);
  if (codec == "line")
    l.net.codec = net::codec_kind::line;
  else if (codec == "frame")
    l.net.codec = net::codec_kind::frame;
  else
    fail(s.where(), "codec must be \"line\" or \"frame\"");
  std::string identify = to_string(l.session.identify);
  s.get("identify", identify);
  if (!from_string(identify, l.session.identify))
    fail(s.where(), "identify must be \"cert\", \"first_message\" or \"none\"");
  std::string profile = net::to_string(l.session.identity_profile);
  s.get("identity_profile", profile);
  if (!net::from_string(profile, l.session.identity_profile))
    fail(s.where(), "identity_profile must be \"unicode\" or \"strict\"");
  s.get_int("max_frame", l.net.max_frame);
  s.get_int("max_connections", l.net.max_connections);
  s.get_int("num_acceptors", l.net.num_acceptors);
  s.get_int("num_listen_sockets", l.net.num_listen_sockets);
  s.get_int("backlog", l.net.backlog);
  s.get_int("max_handshakes", l.net.max_handshakes);
  s.get_duration("hello_timeout", l.net.hello_timeout);
  s.get_duration("handshake_timeout", l.net.handshake_timeout);
  s.get_duration("idle_timeout", l.net.idle_timeout);
  s.get_duration("close_timeout", l.net.close_timeout);
  s.get_duration("ack_interval", l.net.ack_interval);
  s.get_int("high_watermark", l.net.high_watermark);
  s.get_int("low_watermark", l.net.low_watermark);
  std::string overflow = l.net.on_overflow == net::overflow_policy::close ? "close" : "pause_reading";
  s.get("on_overflow", overflow);
  if (overflow == "close")
    l.net.on_overflow = net::overflow_policy::close;
  else if (overflow == "pause_reading")
    l.net.on_overflow = net::overflow_policy::pause_reading;
  else
    fail(s.where(), "on_overflow must be \"close\" or \"pause_reading\"");
  s.get_int("read_buffer", l.net.read_buffer);
  s.get_duration("gap_timeout", l.session.gap_timeout);
  s.get_int("max_reorder", l.session.max_reorder);
  s.get_int("max_unaccepted", l.session.max_unaccepted);
}

} // namespace

void validate_config(const config& c) {
  if (c.admin.enabled) {
    auto& a = c.admin;
    if (a.cert_file.empty() != a.key_file.empty())
      throw std::runtime_error("[admin]: TLS needs both cert_file and key_file");
    if (a.body_limit == 0 || a.max_connections == 0 || a.max_requests == 0 || a.threads == 0 ||
        a.max_watchers == 0)
      throw std::runtime_error(
          "[admin]: body_limit, max_connections, max_requests, threads and max_watchers must be positive");
    if (a.idle_timeout.count() <= 0 || a.read_timeout.count() <= 0)
      throw std::runtime_error("[admin]: idle_timeout and read_timeout must be positive");
    // The token goes in an HTTP header: printable ASCII without spaces.
    for (char ch : a.token)
      if (ch <= 0x20 || ch >= 0x7f)
        throw std::runtime_error("[admin]: token must be printable ASCII without spaces");
  }
  if (c.cluster.enabled) {
    if (auto problem = cluster::options_problem(c.cluster.nats); !problem.empty())
      throw std::runtime_error("[cluster]: " + problem);
  }
  for (auto& l : c.listeners) {
    bool name_ok = !l.name.empty() && l.name.size() <= 64;
    for (char ch : l.name)
      name_ok =
          name_ok && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.');
    if (!name_ok)
      throw std::runtime_error("listener name \"" + l.name +
                               "\": use 1 to 64 letters, digits, '_', '-' or '.' (it names metrics, the tree "
                               "node and the listener's registered actors)");
  }
  for (auto& l : c.listeners)
    if (l.tls && l.verify_peer && l.ca_file.empty())
      throw std::runtime_error("listener " + l.name +
                               ": verify_peer = true needs ca (the PEM CAs that sign client certificates); "
                               "without it every client would be refused. Set ca, or verify_peer = false");
}

std::vector<std::string> config_warnings(const config& c) {
  std::vector<std::string> out;
  for (auto& l : c.listeners) {
    if (!l.tls && l.verify_peer)
      out.push_back("listener " + l.name +
                    ": verify_peer is set but the listener is plain TCP (tls = false): ignored");
    if (l.session.identify == identify_mode::cert && !(l.tls && l.verify_peer))
      out.push_back(
          "listener " + l.name +
          ": identify = \"cert\" without client certificates (needs tls = true and ca): every device "
          "stays anonymous, reachable by connection id only; set identify = \"none\" or "
          "\"first_message\" to say so");
  }
  return out;
}

config default_config() {
  config c;
  c.listeners.push_back(default_listener("tls", true, 8883));
  return c;
}

config parse_config(std::string_view text, std::string_view source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << e;
    throw std::runtime_error(os.str());
  }
  config c;
  section top{root, std::string{source}};
  if (auto t = top.table("gateway")) {
    section s{*t, "[gateway]"};
    s.get("data_dir", c.data_dir);
    s.get("log_level", c.log_level);
    s.get_int("io_threads", c.io_threads);
    s.get_int("scheduler_threads", c.scheduler_threads);
    s.get_int("scheduler_moderate_polls", c.scheduler_moderate_polls);
    s.get("sched_batch", c.sched_batch);
    s.get_duration("drain_timeout", c.drain_timeout);
    s.get_duration("metrics_log_interval", c.metrics_log_interval);
    s.get("raise_nofile", c.raise_nofile);
    s.get("ports_file", c.ports_file);
  }
  if (auto n = top.node("listener")) {
    auto arr = n->as_array();
    if (!arr)
      fail("[[listener]]", "must be an array of tables");
    std::set<std::string> names;
    for (std::size_t i = 0; i < arr->size(); ++i) {
      auto t = arr->get(i)->as_table();
      if (!t)
        fail("[[listener]]", "must be an array of tables");
      listener_config l = default_listener("listener_" + std::to_string(i), true, 0);
      section s{*t, "[[listener]] #" + std::to_string(i + 1)};
      apply_listener(s, l);
      if (!names.insert(l.name).second)
        fail(s.where(), "duplicate listener name " + l.name);
      c.listeners.push_back(std::move(l));
    }
  } else {
    c.listeners = default_config().listeners;
  }
  if (auto t = top.table("admin")) {
    section s{*t, "[admin]"};
    s.get("enabled", c.admin.enabled);
    s.get("bind", c.admin.bind);
    s.get_int("port", c.admin.port);
    s.get_int("threads", c.admin.threads);
    s.get_duration("request_timeout", c.admin.request_timeout);
    s.get_int("body_limit", c.admin.body_limit);
    s.get_int("max_connections", c.admin.max_connections);
    s.get_int("max_requests", c.admin.max_requests);
    s.get_duration("idle_timeout", c.admin.idle_timeout);
    s.get_duration("read_timeout", c.admin.read_timeout);
    s.get("token", c.admin.token);
    std::string token_file;
    s.get("token_file", token_file);
    if (!token_file.empty()) {
      // A secret kept out of the config file: its first line.
      std::ifstream in{token_file};
      if (!in || !std::getline(in, c.admin.token))
        fail(s.where(), "token_file " + token_file + " cannot be read");
      while (!c.admin.token.empty() && (c.admin.token.back() == '\r' || c.admin.token.back() == ' '))
        c.admin.token.pop_back();
    }
    s.get_int("max_watchers", c.admin.max_watchers);
    s.get("allow_kill", c.admin.allow_kill);
    s.get("cert_file", c.admin.cert_file);
    s.get("key_file", c.admin.key_file);
  }
  if (auto t = top.table("cluster")) {
    section s{*t, "[cluster]"};
    auto& k = c.cluster;
    k.enabled = true; // a [cluster] section joins one, unless enabled = false
    s.get("enabled", k.enabled);
    s.get("node_name", k.nats.node_name);
    s.get_strings("nats", k.nats.urls);
    s.get("discover_servers", k.nats.discover_servers);
    s.get("user", k.nats.user);
    s.get("password", k.nats.password);
    s.get("token", k.nats.token);
    s.get("credentials", k.nats.credentials_file);
    s.get("tls", k.nats.tls.enabled);
    s.get("tls_ca", k.nats.tls.ca_file);
    s.get("tls_cert", k.nats.tls.cert_file);
    s.get("tls_key", k.nats.tls.key_file);
    s.get_duration("request_timeout", k.nats.request_timeout);
    s.get_duration("ping_interval", k.nats.ping_interval);
    s.get_int("max_pings_out", k.nats.max_pings_out);
    s.get("send_asap", k.nats.send_asap);
    s.get_duration("reconnect_wait", k.nats.reconnect_wait);
    s.get_duration("reconnect_wait_max", k.nats.reconnect_wait_max);
    s.get_duration("claim_settle", k.claim_settle);
    s.get_duration("heartbeat_interval", k.heartbeat_interval);
    s.get_duration("node_timeout", k.node_timeout);
    s.get_int("agents", k.agents);
    s.get_int("list_limit", k.list_limit);
  }
  if (auto t = top.table("backend")) {
    section s{*t, "[backend]"};
    s.get("kind", c.backend.kind);
    if (auto l = s.table("local")) {
      section ls{*l, "[backend.local]"};
      ls.get("sink", c.backend.local.sink);
      ls.get("flush_each_batch", c.backend.local.flush_each_batch);
      ls.get_int("consumers", c.backend.local.consumers);
    }
    if (auto a = s.table("amqp"))
      c.backend.amqp = *a; // opaque: the amqp backend reads it
  }
  return c;
}

std::optional<int> load_config(int argc, const char* const* argv, config& out) {
  CLI::App app{"warren-gateway: the Warren IoT device gateway (docs/gateway.md)", "warren-gateway"};
  std::string file, data_dir, log_level, backend, amqp_url, sink, admin_bind, bind, codec, identify,
      identity_profile, cert, key, ca, drain_timeout, gap_timeout, ports_file, node_name;
  std::vector<std::string> nats_urls;
  int admin_port = -1, tls_port = -1, plain_port = -1;
  std::size_t io_threads = 0;
  bool no_admin = false;
  app.add_option("-c,--config", file, "TOML configuration file")->check(CLI::ExistingFile);
  app.add_option("--data-dir", data_dir, "where the development certificate is kept");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical, off");
  app.add_option("--io-threads", io_threads, "socket event loops (0: one per core)");
  app.add_option("--drain-timeout", drain_timeout, "on SIGTERM, how long devices may stay (e.g. 10s)");
  app.add_option("--ports-file", ports_file, "write the bound ports as JSON to this file");
  app.add_option("--backend", backend, "local, echo (amqp when built)");
  app.add_option("--amqp-url", amqp_url, "amqp backend: the broker, amqp://user:password@host:port/vhost");
  app.add_option("--sink", sink, "local backend: stdout, none or a file");
  app.add_option("--admin-bind", admin_bind, "admin API address");
  app.add_option("--admin-port", admin_port, "admin API port (0: any)");
  app.add_flag("--no-admin", no_admin, "no admin API");
  app.add_option("--bind", bind, "address of every listener");
  app.add_option("--tls-port", tls_port, "port of the TLS listener \"tls\" (added if absent)");
  app.add_option("--plain-port", plain_port, "port of a plain TCP listener \"plain\" (added if absent)");
  app.add_option("--codec", codec, "codec of every listener: line or frame");
  app.add_option("--identify", identify, "every listener: cert, first_message or none");
  app.add_option("--identity-profile", identity_profile, "every listener: unicode or strict (device ids)");
  app.add_option("--cert", cert, "TLS certificate (PEM) of every TLS listener");
  app.add_option("--key", key, "TLS private key (PEM) of every TLS listener");
  app.add_option("--ca", ca, "CA file for client certificates; enables mTLS (verify_peer)");
  app.add_option("--gap-timeout", gap_timeout, "every listener: to_device_seq gap wait (e.g. 1s)");
  app.add_option("--node-name", node_name, "cluster: this node's name (joins the cluster)");
  app.add_option("--nats", nats_urls, "cluster: a NATS server URL, repeatable (joins the cluster)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (!file.empty()) {
      std::ifstream in{file};
      std::stringstream ss;
      ss << in.rdbuf();
      out = parse_config(ss.str(), file);
      out.source = file;
    } else {
      out = default_config();
    }
    if (!data_dir.empty())
      out.data_dir = data_dir;
    if (!log_level.empty())
      out.log_level = log_level;
    if (io_threads > 0)
      out.io_threads = io_threads;
    if (!drain_timeout.empty())
      out.drain_timeout = require_duration(drain_timeout);
    if (!ports_file.empty())
      out.ports_file = ports_file;
    if (!backend.empty())
      out.backend.kind = backend;
    if (!amqp_url.empty()) { // the flag names the broker over whatever the file says
      for (const char* k : {"host", "port", "vhost", "user", "password"})
        out.backend.amqp.erase(k);
      out.backend.amqp.insert_or_assign("url", amqp_url);
    }
    if (!sink.empty())
      out.backend.local.sink = sink;
    if (!admin_bind.empty())
      out.admin.bind = admin_bind;
    if (admin_port >= 0)
      out.admin.port = static_cast<uint16_t>(admin_port);
    if (no_admin)
      out.admin.enabled = false;
    if (!nats_urls.empty()) {
      out.cluster.enabled = true;
      out.cluster.nats.urls = nats_urls;
    }
    if (!node_name.empty()) {
      out.cluster.enabled = true;
      out.cluster.nats.node_name = node_name;
    }
    auto named = [&](const std::string& name, bool tls) -> listener_config& {
      for (auto& l : out.listeners)
        if (l.name == name)
          return l;
      out.listeners.push_back(default_listener(name, tls, 0));
      return out.listeners.back();
    };
    if (tls_port >= 0)
      named("tls", true).net.port = static_cast<uint16_t>(tls_port);
    if (plain_port >= 0) {
      auto& l = named("plain", false);
      l.tls = false;
      l.net.port = static_cast<uint16_t>(plain_port);
    }
    for (auto& l : out.listeners) {
      if (!bind.empty())
        l.net.bind_address = bind;
      if (!codec.empty()) {
        if (codec != "line" && codec != "frame")
          throw std::runtime_error("--codec must be line or frame");
        l.net.codec = codec == "frame" ? net::codec_kind::frame : net::codec_kind::line;
      }
      if (!identify.empty() && !from_string(identify, l.session.identify))
        throw std::runtime_error("--identify must be cert, first_message or none");
      if (!identity_profile.empty() && !net::from_string(identity_profile, l.session.identity_profile))
        throw std::runtime_error("--identity-profile must be unicode or strict");
      if (!gap_timeout.empty())
        l.session.gap_timeout = require_duration(gap_timeout);
      if (l.tls) {
        if (!cert.empty())
          l.cert_file = cert;
        if (!key.empty())
          l.key_file = key;
        if (!ca.empty()) {
          l.ca_file = ca;
          l.verify_peer = true;
        }
      }
    }
    validate_config(out);
  } catch (const std::exception& e) {
    std::cerr << "warren-gateway: " << e.what() << "\n";
    return 2;
  }
  return std::nullopt;
}

} // namespace warren::gateway
