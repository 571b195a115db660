// The observer's routes: the page, the event stream and the paged children list.
#include "warren/observer/observer.hpp"

#include <warren/exit.hpp>
#include <warren/log.hpp>
#include <warren/observe/tree_events.hpp>
#include <warren/supervisor.hpp>
#include <warren/wall_clock.hpp>

#include <caf/all.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <mutex>
#include <span>
#include <thread>

std::span<const warren::observer::asset> warren_observer_assets(); // generated (CMakeLists.txt)

namespace warren::observer {

std::string_view content_type(std::string_view name) {
  auto ends = [&](std::string_view ext) { return name.ends_with(ext); };
  if (ends(".html"))
    return "text/html; charset=utf-8";
  if (ends(".js"))
    return "text/javascript; charset=utf-8";
  if (ends(".css"))
    return "text/css; charset=utf-8";
  if (ends(".svg"))
    return "image/svg+xml";
  if (ends(".json"))
    return "application/json";
  return "application/octet-stream";
}

namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

void reply_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump() + "\n", "application/json");
}

std::vector<uint64_t> parse_path(const std::string& text) {
  std::vector<uint64_t> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    auto dot = text.find('.', pos);
    auto part = text.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (part.empty() || part.size() > 19 || part.find_first_not_of("0123456789") != std::string::npos)
      return {};
    out.push_back(std::stoull(part));
    if (dot == std::string::npos)
      break;
    pos = dot + 1;
  }
  return out;
}

} // namespace

struct routes::impl : std::enable_shared_from_this<routes::impl> {
  impl(caf::actor_system& s, options o) : sys(s), opts(std::move(o)) {}

  caf::actor_system& sys;
  options opts;
  stream_counters counters;
  std::atomic<bool> stopping{false};
  std::string index_html;

  std::mutex sample_mtx;
  std::chrono::steady_clock::time_point sample_at{};
  std::string sample_text;

  std::mutex subs_mtx;
  std::vector<std::weak_ptr<observe::subscription>> subs; // to wake on stop()

  log_limit refused_log;

  void render_index() {
    std::string scripts;
    for (auto& a : opts.extra)
      if (a.name.ends_with(".js"))
        scripts += "<script src=\"ui/" + std::string{a.name} + "\"></script>\n";
    for (auto& a : warren_observer_assets())
      if (a.name == "index.html")
        index_html = std::string{a.data};
    auto put = [&](std::string_view key, const std::string& value) {
      if (auto at = index_html.find(key); at != std::string::npos)
        index_html.replace(at, key.size(), value);
    };
    std::string title;
    for (char c : opts.title) // the title goes into HTML: keep it plain text
      title += (c == '<' || c == '>' || c == '&' || c == '"') ? ' ' : c;
    put("{{title}}", title);
    put("{{title}}", title);
    put("<!--extra-->", scripts);
  }

  const asset* find_asset(std::string_view name) const {
    for (auto& a : opts.extra)
      if (a.name == name)
        return &a;
    for (auto& a : warren_observer_assets())
      if (a.name == name)
        return &a;
    return nullptr;
  }

  std::string snapshot_event(uint64_t seq) {
    json body{{"seq", seq},
              {"title", opts.title},
              {"now_ms", unix_ms()},
              {"tree", nullptr},
              {"allow_kill", opts.allow_kill}};
    if (auto top = opts.top ? opts.top() : caf::actor{}; !top) {
      body["error"] = "starting";
    } else if (auto t = sup::tree(sys, top); !t) {
      body["error"] = sys.render(t.error());
    } else {
      body["tree"] = to_json_value(*t, opts.page_threshold);
    }
    auto tl = json::array();
    for (auto& ev : observe::timeline())
      if (ev.seq <= seq) // later ones come as deltas
        tl.push_back(json::parse(observe::to_json(ev)));
    body["timeline"] = std::move(tl);
    return "event: snapshot\nid: " + std::to_string(seq) + "\ndata: " + body.dump() + "\n\n";
  }

  static std::string delta_event(const std::vector<observe::tree_event>& evs) {
    std::string data = "{\"events\":[";
    for (std::size_t i = 0; i < evs.size(); ++i) {
      if (i > 0)
        data += ',';
      data += observe::to_json(evs[i]);
    }
    data += "]}";
    return "event: delta\nid: " + std::to_string(evs.back().seq) + "\ndata: " + data + "\n\n";
  }

  // One sample for all streams: taken at most once per sample_every.
  std::string sample() {
    std::lock_guard<std::mutex> guard{sample_mtx};
    auto now = std::chrono::steady_clock::now();
    if (sample_text.empty() || now - sample_at >= opts.sample_every * 9 / 10) {
      sample_at = now;
      try {
        sample_text = opts.sample();
      } catch (const std::exception& e) {
        sample_text = json{{"error", e.what()}}.dump();
      }
    }
    return sample_text;
  }

  /// A new watcher's stream; null (and `res` answered) when refused.
  std::shared_ptr<stream> open(httplib::Response& res);

  // Walks from the top supervisor along actor ids; the last one is the target.
  caf::expected<caf::actor> resolve(const std::vector<uint64_t>& path) {
    auto cur = opts.top ? opts.top() : caf::actor{};
    if (!cur || path.empty() || cur.id() != path.front())
      return make_error(sup_errc::not_found);
    for (std::size_t i = 1; i < path.size(); ++i) {
      auto kids = sup::which_children(sys, cur);
      if (!kids)
        return kids.error();
      caf::actor next;
      for (auto& k : *kids)
        if (k.handle && k.handle.id() == path[i])
          next = k.handle;
      if (!next)
        return make_error(sup_errc::not_found);
      cur = next;
    }
    return cur;
  }

  static std::size_t param(const httplib::Request& req, const char* name, std::size_t dflt, std::size_t max) {
    if (!req.has_param(name))
      return dflt;
    auto text = req.get_param_value(name);
    if (text.empty() || text.size() > 9 || text.find_first_not_of("0123456789") != std::string::npos)
      return static_cast<std::size_t>(-1);
    return std::min<std::size_t>(std::stoull(text), max);
  }

  void children(const httplib::Request& req, httplib::Response& res) {
    auto path = parse_path(req.get_param_value("path"));
    auto offset = param(req, "offset", 0, 1'000'000'000);
    auto limit = param(req, "limit", 100, 1000);
    if (path.empty() || offset == static_cast<std::size_t>(-1) || limit == static_cast<std::size_t>(-1)) {
      reply_json(
          res, 400,
          {{"error", "path must be actor ids joined by dots, from the top supervisor; offset and limit "
                     "non-negative integers"}});
      return;
    }
    auto sup = resolve(path);
    if (!sup) {
      reply_json(res, 404, {{"error", "no such supervisor: " + req.get_param_value("path")}});
      return;
    }
    auto kids = sup::which_children(sys, *sup);
    if (!kids) {
      reply_json(res, 404, {{"error", "not a supervisor: " + sys.render(kids.error())}});
      return;
    }
    auto q = req.get_param_value("q");
    std::vector<const child_info*> matched;
    matched.reserve(kids->size());
    for (auto& k : *kids) {
      if (!q.empty()) {
        auto aid = k.handle ? std::to_string(k.handle.id()) : std::string{};
        if (k.id.find(q) == std::string::npos && aid.find(q) == std::string::npos)
          continue;
      }
      matched.push_back(&k);
    }
    auto page = json::array();
    for (std::size_t i = offset; i < matched.size() && i < offset + limit; ++i) {
      page.push_back(to_json_value(*matched[i]));
    }
    reply_json(
        res, 200,
        {{"total", kids->size()}, {"matched", matched.size()}, {"offset", offset}, {"children", page}});
  }

  void kill(const httplib::Request& req, httplib::Response& res) {
    auto path = parse_path(req.get_param_value("path"));
    if (path.size() < 2) {
      reply_json(res, 400, {{"error", "path must name a child: supervisor actor ids, then the child's"}});
      return;
    }
    auto target = path.back();
    path.pop_back();
    auto sup = resolve(path);
    auto kids = sup ? sup::which_children(sys, *sup) : caf::expected<std::vector<child_info>>{sup.error()};
    if (kids) {
      for (auto& k : *kids) {
        if (k.handle && k.handle.id() == target) {
          log().warn("observer: killing actor {} (child {}) on request", target, k.id);
          caf::anon_send_exit(k.handle, caf::exit_reason::kill);
          reply_json(res, 202, {{"status", "killed"}, {"actor_id", target}, {"id", k.id}});
          return;
        }
      }
    }
    reply_json(res, 404, {{"error", "no such running child"}, {"path", req.get_param_value("path")}});
  }
};

struct stream::state {
  std::shared_ptr<routes::impl> self;
  std::shared_ptr<observe::subscription> sub;
  bool snapshot_sent = false;
  std::chrono::steady_clock::time_point last_write = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_sample{};
  ~state() { self->counters.open.fetch_sub(1); }
};

std::shared_ptr<stream> routes::impl::open(httplib::Response& res) {
  if (stopping) {
    reply_json(res, 503, {{"error", "stopping"}});
    return nullptr;
  }
  if (counters.open.fetch_add(1) >= static_cast<int64_t>(opts.max_watchers)) {
    counters.open.fetch_sub(1);
    counters.refused.fetch_add(1, std::memory_order_relaxed);
    if (uint64_t held; refused_log.allow(held))
      log().warn(
          "observer: tree stream refused, {} open (max_watchers); {} more refused since the last report",
          opts.max_watchers, held);
    reply_json(res, 503, {{"error", "too many watchers"}, {"max_watchers", opts.max_watchers}});
    return nullptr;
  }
  counters.opened.fetch_add(1, std::memory_order_relaxed);
  auto st = std::make_shared<stream::state>();
  st->self = shared_from_this();
  st->sub = observe::subscribe(opts.queue_limit);
  {
    std::lock_guard<std::mutex> guard{subs_mtx};
    std::erase_if(subs, [](auto& w) { return w.expired(); });
    subs.push_back(st->sub);
  }
  return std::make_shared<stream>(std::move(st));
}

bool stream::pull(std::string& out, std::chrono::milliseconds wait) {
  auto& self = *st_->self;
  if (self.stopping)
    return false;
  auto before = out.size();
  if (!st_->snapshot_sent) {
    out += self.snapshot_event(st_->sub->first_seq());
    st_->snapshot_sent = true;
  } else {
    std::vector<observe::tree_event> evs;
    if (!st_->sub->next(evs, wait)) {
      self.counters.resyncs.fetch_add(1, std::memory_order_relaxed);
      out += self.snapshot_event(st_->sub->resync());
    } else if (!evs.empty()) {
      out += routes::impl::delta_event(evs);
    }
  }
  auto now = std::chrono::steady_clock::now();
  if (self.opts.sample && now - st_->last_sample >= self.opts.sample_every) {
    st_->last_sample = now;
    out += "event: sample\ndata: " + self.sample() + "\n\n";
  }
  if (out.size() == before && now - st_->last_write >= 15s)
    out += ": keepalive\n\n"; // finds clients that went away
  if (out.size() != before)
    st_->last_write = now;
  return true;
}

routes::routes(caf::actor_system& sys, options opts) : impl_(std::make_shared<impl>(sys, std::move(opts))) {
  impl_->render_index();
}

routes::~routes() {
  stop();
}

const stream_counters& routes::counters() const {
  return impl_->counters;
}

void routes::stop() {
  if (impl_->stopping.exchange(true))
    return;
  {
    std::lock_guard<std::mutex> guard{impl_->subs_mtx};
    for (auto& w : impl_->subs)
      if (auto s = w.lock())
        s->wake();
  }
  // Let the streams end cleanly (their last chunk) before the server closes the
  // sockets; each wakes at once, so this is short.
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
       impl_->counters.open.load() > 0 && std::chrono::steady_clock::now() < until;)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void routes::install(httplib::Server& s, stream_carrier carrier) {
  auto self = impl_; // the handlers keep the state alive as long as the server has them
  s.Get("/", [self](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-cache");
    res.set_content(self->index_html, "text/html; charset=utf-8");
  });
  s.Get(R"(/ui/([A-Za-z0-9_.-]+))", [self](const httplib::Request& req, httplib::Response& res) {
    auto* a = self->find_asset(req.matches[1].str());
    if (!a) {
      reply_json(res, 404, {{"error", "no such file"}});
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_content(std::string{a->data}, std::string{content_type(a->name)});
  });
  s.Get("/v1/tree/stream", [self, carrier](const httplib::Request& req, httplib::Response& res) {
    auto st = self->open(res);
    if (!st || (carrier && carrier(req, res, st)))
      return;
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    // On this request's thread until the client goes, the server stops (httplib ends
    // the loop then) or stop() is called; each pull waits at most 250 ms for events.
    res.set_chunked_content_provider("text/event-stream", [st](std::size_t, httplib::DataSink& sink) {
      std::string out;
      bool more = st->pull(out, 250ms);
      if (!out.empty() && !sink.write(out.data(), out.size()))
        return false;
      if (!more)
        sink.done();
      return true; // never writes 0 bytes: httplib would take that as the end
    });
  });
  s.Get("/v1/tree/children",
        [self](const httplib::Request& req, httplib::Response& res) { self->children(req, res); });
  s.Post("/v1/tree/kill", [self](const httplib::Request& req, httplib::Response& res) {
    if (!self->opts.allow_kill) {
      reply_json(res, 403, {{"error", "killing children is off for this server (observer allow_kill)"}});
      return;
    }
    self->kill(req, res);
  });
}

std::shared_ptr<routes> mount(httplib::Server& server, caf::actor_system& sys, options opts) {
  auto r = std::make_shared<routes>(sys, std::move(opts));
  r->install(server);
  return r;
}

namespace {

struct server_box {
  httplib::Server http;
  std::shared_ptr<routes> api;
  std::thread thread;
  ~server_box() {
    if (api)
      api->stop();
    http.stop();
    if (thread.joinable())
      thread.join();
  }
};

class server_actor : public caf::event_based_actor {
public:
  server_actor(caf::actor_config& cfg, std::shared_ptr<server_box> box)
    : caf::event_based_actor(cfg), box_(std::move(box)) {}
  caf::behavior make_behavior() override {
    return {[](caf::get_atom) { return caf::unit; }};
  }
  void on_exit() override { box_.reset(); }
  const char* name() const override { return "warren.observer"; }

private:
  std::shared_ptr<server_box> box_;
};

} // namespace

child_spec server_child(options opts, std::string bind, uint16_t port,
                        std::shared_ptr<std::atomic<uint16_t>> bound_port) {
  child_spec spec;
  spec.id = "observer";
  spec.shutdown = shutdown_spec::timeout(std::chrono::seconds(5));
  spec.start = [opts, bind, port, bound_port](const start_context& ctx) -> start_result {
    auto box = std::make_shared<server_box>();
    box->api = mount(box->http, ctx.system(), opts);
    auto threads = opts.max_watchers + 4; // a thread per open stream, and some for the rest
    box->http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    int p = port == 0 ? box->http.bind_to_any_port(bind) : (box->http.bind_to_port(bind, port) ? port : -1);
    if (p < 0)
      return make_error(exit_code::bad_start, "observer: cannot bind " + bind + ":" + std::to_string(port));
    if (bound_port)
      bound_port->store(static_cast<uint16_t>(p));
    box->thread = std::thread{[b = box.get()] { b->http.listen_after_bind(); }};
    // As the gateway's admin API: stop() only ends a loop that has started.
    for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
         !box->http.is_running() && std::chrono::steady_clock::now() < until;)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    log().info("observer on http://{}:{}/", bind, p);
    return caf::actor{ctx.system().spawn<server_actor>(std::move(box))};
  };
  return spec;
}

} // namespace warren::observer
