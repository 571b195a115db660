// Cluster-wide names and groups between two processes (docs/cluster-names.md).
//
//   warren-example-cluster-names --role server --nats nats://127.0.0.1:4222 --node server-node
//   warren-example-cluster-names --role client --nats nats://127.0.0.1:4222 --node client-node
//
// The server registers a counter as "counter" in the whole cluster and joins it to the
// group "events". The client calls the counter by name with a user type (inspect plus a
// registered type name), calls a name nobody holds, broadcasts to "events", and stops
// the server with a cast. Each prints what it sees, one line per event.
#include <warren/cluster/groups.hpp>
#include <warren/cluster/names.hpp>
#include <warren/cluster/node.hpp>
#include <warren/log.hpp>

#include <caf/all.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

using namespace std::chrono_literals;
namespace cl = warren::cluster;

namespace {

using add_atom = caf::atom_constant<caf::atom("add")>;
using events_atom = caf::atom_constant<caf::atom("events")>;
using event_atom = caf::atom_constant<caf::atom("event")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;

/// What a client asks: crosses processes through inspect() and the name "add_request".
struct add_request {
  int32_t amount = 0;
  std::string from;
  friend bool operator==(const add_request& a, const add_request& b) {
    return a.amount == b.amount && a.from == b.from;
  }
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, add_request& x) {
  return f(caf::meta::type_name("add_request"), x.amount, x.from);
}

/// The counter's answer.
struct counter_state {
  int64_t value = 0;
  std::string node;
  friend bool operator==(const counter_state& a, const counter_state& b) {
    return a.value == b.value && a.node == b.node;
  }
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, counter_state& x) {
  return f(caf::meta::type_name("counter_state"), x.value, x.node);
}

struct config : caf::actor_system_config {
  config() {
    set("logger.verbosity", caf::atom("quiet"));
    // Both processes register the same types under the same names.
    add_message_type<add_request>("add_request");
    add_message_type<counter_state>("counter_state");
  }
};

struct counter_data {
  int64_t value = 0;
  int64_t events = 0;
};

/// A gen_server-like counter: calls (add, get events), casts (event, stop).
caf::behavior counter(caf::stateful_actor<counter_data>* self, std::string node) {
  return {
      [=](add_atom, add_request& r) -> counter_state {
        self->state.value += r.amount;
        std::printf("server: add %d from %s\n", r.amount, r.from.c_str());
        std::fflush(stdout);
        return {self->state.value, node};
      },
      [=](events_atom) { return self->state.events; },
      [=](event_atom, std::string& what, std::string& from) {
        ++self->state.events;
        std::printf("server: event %s from %s\n", what.c_str(), from.c_str());
        std::fflush(stdout);
      },
      [=](stop_atom) {
        std::printf("server: stop\n");
        std::fflush(stdout);
        self->quit();
      },
      [=](cl::name_lost_atom, std::string& name) {
        std::printf("server: lost the name %s\n", name.c_str());
        self->quit();
      },
  };
}

int run_server(caf::actor_system& sys, cl::node& nd) {
  cl::names names{sys, nd};
  cl::groups groups{sys, nd};
  auto c = sys.spawn(counter, nd.name());
  if (auto err = groups.join("events", c)) {
    std::printf("server: join: %s\n", sys.render(err).c_str());
    return 1;
  }
  // Registering needs the link: wait for it (the node connects in the background).
  caf::error err;
  for (int i = 0; i < 100; ++i) {
    err = names.register_name("counter", c);
    if (!cl::is(err, cl::cluster_errc::cluster_unavailable))
      break;
    std::this_thread::sleep_for(100ms);
  }
  if (err) {
    std::printf("server: register: %s\n", sys.render(err).c_str());
    caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
    return 1;
  }
  std::printf("server: registered counter\n");
  std::fflush(stdout);
  caf::scoped_actor self{sys};
  self->wait_for(c); // until a client stops it
  return 0;
}

int run_client(caf::actor_system& sys, cl::node& nd) {
  cl::names names{sys, nd};
  cl::groups groups{sys, nd};
  caf::scoped_actor self{sys};
  auto counter = names.whereis("counter");
  // The server may not have registered yet: no_such_name (or no link) until it has.
  auto add = [&](int32_t n, bool report_missing) {
    bool retry = false;
    self->request(counter, 10s, add_atom::value, add_request{n, nd.name()})
        .receive(
            [&](counter_state& s) {
              std::printf("client: total %lld from %s\n", static_cast<long long>(s.value), s.node.c_str());
            },
            [&](caf::error& e) {
              retry = cl::is(e, cl::cluster_errc::no_such_name) ||
                      cl::is(e, cl::cluster_errc::cluster_unavailable);
              if (!retry || report_missing)
                std::printf("client: add: %s\n", sys.render(e).c_str());
            });
    return !retry;
  };
  int tries = 0;
  while (!add(1, false))
    if (++tries == 200)
      return add(1, true), 1;
    else
      std::this_thread::sleep_for(50ms);
  add(2, true);
  add(3, true);
  // A name nobody holds.
  self->request(names.whereis("nobody"), 10s, add_atom::value, add_request{1, nd.name()})
      .receive([&](counter_state&) { std::printf("client: nobody answered\n"); },
               [&](caf::error& e) {
                 std::printf("client: nobody: %s\n", cl::is(e, cl::cluster_errc::no_such_name)
                                                         ? "no_such_name"
                                                         : sys.render(e).c_str());
               });
  // A broadcast to the group, then wait until the counter has seen it (it arrives on
  // another subject than the calls, so it may come later).
  if (auto err =
          groups.broadcast("events", caf::make_message(event_atom::value, std::string{"hello"}, nd.name())))
    std::printf("client: broadcast: %s\n", sys.render(err).c_str());
  int64_t seen = 0;
  for (int i = 0; i < 100 && seen == 0; ++i) {
    self->request(counter, 10s, events_atom::value)
        .receive([&](int64_t n) { seen = n; }, [&](caf::error&) {});
    if (seen == 0)
      std::this_thread::sleep_for(50ms);
  }
  std::printf("client: the server saw %lld event(s)\n", static_cast<long long>(seen));
  caf::anon_send(counter, stop_atom::value); // a cast
  std::printf("client: done\n");
  std::fflush(stdout);
  // Let the cast leave before the link closes (NATS flushes within a millisecond).
  std::this_thread::sleep_for(200ms);
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  std::string role, url = "nats://127.0.0.1:4222", node_name;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--role"))
      role = argv[i + 1];
    else if (!std::strcmp(argv[i], "--nats"))
      url = argv[i + 1];
    else if (!std::strcmp(argv[i], "--node"))
      node_name = argv[i + 1];
  }
  if (role != "server" && role != "client") {
    std::fprintf(stderr, "usage: %s --role server|client [--nats URL] [--node NAME]\n", argv[0]);
    return 2;
  }
  if (node_name.empty())
    node_name = role + "-node";
  warren::set_log_level(spdlog::level::warn);
  config cfg;
  caf::actor_system sys{cfg};
  cl::options opts;
  opts.node_name = node_name;
  opts.urls = {url};
  cl::node nd{opts};
  nd.start();
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  return role == "server" ? run_server(sys, nd) : run_client(sys, nd);
}
