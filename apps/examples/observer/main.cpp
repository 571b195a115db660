// Embedding the observer: any Warren application gets the live tree view with one
// child spec, warren::observer::server_child. This one runs a small tree to look at:
//
//   top          one_for_one
//   ├─ workers   one_for_one: steady, flaky (restarted after a 500 ms backoff)
//   ├─ pool      simple_one_for_one: --children idle workers
//   └─ observer  the page, on --port (0: any free port)
//
// It prints "observer on http://127.0.0.1:PORT/" once everything runs (and writes PORT
// to --port-file), then runs until SIGINT/SIGTERM or --seconds have passed.
#include <warren/application.hpp>
#include <warren/observer/observer.hpp>
#include <warren/registry.hpp>
#include <warren/supervisor.hpp>

#include <caf/all.hpp>

#include <fstream>
#include <iostream>
#include <string>

using namespace std::chrono_literals;

namespace {

caf::behavior idle_worker(caf::event_based_actor*) {
  return {[](caf::get_atom) { return caf::unit; }};
}

warren::child_spec worker(std::string id, warren::restart_delay delay = {}) {
  warren::child_spec spec;
  spec.id = std::move(id);
  spec.start = warren::spawn_fn_of(idle_worker);
  spec.delay = delay;
  return spec;
}

struct args {
  uint16_t port = 0;
  int children = 1000;
  int seconds = 0;
  std::string port_file;
};

bool parse(int argc, char** argv, args& a) {
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    try {
      if (k == "--port")
        a.port = static_cast<uint16_t>(std::stoul(v));
      else if (k == "--children")
        a.children = std::stoi(v);
      else if (k == "--seconds")
        a.seconds = std::stoi(v);
      else if (k == "--port-file")
        a.port_file = v;
      else
        return false;
    } catch (const std::exception&) {
      return false;
    }
  }
  return argc % 2 == 1;
}

} // namespace

int main(int argc, char** argv) {
  args a;
  if (!parse(argc, argv, a)) {
    std::cerr << "usage: " << argv[0] << " [--port N] [--children N] [--seconds N] [--port-file PATH]\n";
    return 2;
  }
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  warren::application app{sys, "observer-example"};

  warren::supervisor_flags workers_flags;
  workers_flags.intensity = 10;
  workers_flags.period = 10s;
  warren::supervisor_flags pool_flags;
  pool_flags.strategy = warren::restart_strategy::simple_one_for_one;
  pool_flags.intensity = 100;
  auto pool = warren::supervisor_child("pool", pool_flags, {worker("pool-worker")});
  pool.name = "pool";

  warren::observer::options view;
  view.title = "observer example";
  view.top = [&app] { return app.top(); };
  view.allow_kill = true; // a demo: the page's kill buttons work
  auto port = std::make_shared<std::atomic<uint16_t>>(0);

  warren::supervisor_flags top_flags;
  top_flags.intensity = 10;
  top_flags.period = 10s;
  auto err = app.start(
      top_flags,
      {warren::supervisor_child("workers", workers_flags,
                                {worker("steady"), worker("flaky", warren::restart_delay::fixed(500ms))}),
       pool, warren::observer::server_child(view, "127.0.0.1", a.port, port)});
  if (err) {
    std::cerr << "start: " << sys.render(err) << "\n";
    return warren::application::exit_start_failed;
  }
  auto pool_sup = warren::whereis(sys, "pool");
  for (int i = 0; i < a.children; ++i)
    if (auto child = warren::sup::start_child(sys, pool_sup, caf::make_message()); !child) {
      std::cerr << "pool: " << sys.render(child.error()) << "\n";
      return 1;
    }
  if (!a.port_file.empty())
    std::ofstream{a.port_file} << port->load() << "\n";
  std::cout << "observer on http://127.0.0.1:" << port->load() << "/" << std::endl;
  std::thread timer;
  if (a.seconds > 0)
    timer = std::thread{[&app, s = a.seconds] {
      std::this_thread::sleep_for(std::chrono::seconds(s));
      app.stop();
    }};
  auto rc = app.run();
  if (timer.joinable())
    timer.join();
  return rc;
}
