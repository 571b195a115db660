// Shared by names_test and groups_test: one "peer" is an actor system with its own
// cluster::node on one NATS server, the user types that cross nodes (inspect plus a
// registered type name), and waiting on conditions.
#pragma once

#include <warren/cluster/groups.hpp>
#include <warren/cluster/names.hpp>
#include <warren/cluster/node.hpp>
#include <warren/log.hpp>
#include <warren_test/nats_cluster.hpp>

#include <caf/all.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace embed_test {

using namespace std::chrono_literals;
namespace cl = warren::cluster;

using add_atom = caf::atom_constant<caf::atom("tadd")>;
using get_atom = caf::atom_constant<caf::atom("tget")>;
using bump_atom = caf::atom_constant<caf::atom("tbump")>;
using hang_atom = caf::atom_constant<caf::atom("thang")>;
using fail_atom = caf::atom_constant<caf::atom("tfail")>;
using tick_atom = caf::atom_constant<caf::atom("ttick")>;
using lost_atom = caf::atom_constant<caf::atom("tlost")>;

/// A call's argument: crosses nodes through its inspect() and the name "add_req".
struct add_req {
  int32_t amount = 0;
  std::string who;
  friend bool operator==(const add_req& a, const add_req& b) {
    return a.amount == b.amount && a.who == b.who;
  }
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, add_req& x) {
  return f(caf::meta::type_name("add_req"), x.amount, x.who);
}

/// A call's reply.
struct total {
  int64_t value = 0;
  std::string node;
  friend bool operator==(const total& a, const total& b) { return a.value == b.value && a.node == b.node; }
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, total& x) {
  return f(caf::meta::type_name("total"), x.value, x.node);
}

/// Registered only where a test says so (an unknown type name elsewhere).
struct secret {
  int32_t x = 0;
  friend bool operator==(const secret& a, const secret& b) { return a.x == b.x; }
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, secret& x) {
  return f(caf::meta::type_name("secret"), x.x);
}

struct test_config : caf::actor_system_config {
  explicit test_config(bool with_secret = false) {
    set("logger.verbosity", caf::atom("quiet"));
    add_message_type<add_req>("add_req");
    add_message_type<total>("total");
    if (with_secret)
      add_message_type<secret>("secret");
  }
};

inline cl::options opts_for(std::string name, std::vector<std::string> urls) {
  cl::options o;
  o.node_name = std::move(name);
  o.urls = std::move(urls);
  o.request_timeout = 2s;
  o.reconnect_wait = 50ms;
  o.reconnect_wait_max = 200ms;
  o.discover_servers = false; // a node stays on its own server (a split must split it)
  return o;
}

inline bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds deadline = 15000ms) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until)
      return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

/// An actor system, its node on `url`, and the cluster layers on it.
struct peer {
  test_config cfg;
  caf::actor_system sys;
  cl::node nd;
  cl::names names;
  cl::groups groups;

  peer(const std::string& name, std::vector<std::string> urls, cl::names_options no = {},
       bool with_secret = false)
    : cfg(with_secret), sys(cfg), nd(opts_for(name, std::move(urls))), names(sys, nd, no), groups(sys, nd) {
    nd.start();
  }
};

struct counter_state {
  int64_t value = 0;
  std::vector<caf::response_promise> hung; ///< hang_atom: never answered
};

/// A gen_server-like counter; tells `observer` (lost_atom, name, node) when it loses a name.
inline caf::behavior counter(caf::stateful_actor<counter_state>* self, std::string node,
                             caf::actor observer) {
  return {
      [=](add_atom, add_req& r) -> total {
        self->state.value += r.amount;
        return {self->state.value, node};
      },
      [=](bump_atom, int32_t n) { self->state.value += n; },
      [=](get_atom) -> total {
        return {self->state.value, node};
      },
      [=](hang_atom) { self->state.hung.push_back(self->make_response_promise()); },
      [=](fail_atom) -> caf::error { return caf::sec::invalid_argument; },
      [=](cl::name_lost_atom, std::string& name) {
        if (observer)
          self->send(observer, lost_atom::value, name, node);
      },
  };
}

/// The reply of a call, or its error.
struct call_result {
  std::optional<total> value;
  caf::error err;
};

template <class... Ts>
call_result call(caf::actor_system& sys, const caf::actor& to, Ts&&... xs) {
  caf::scoped_actor self{sys};
  call_result out;
  self->request(to, 30s, std::forward<Ts>(xs)...)
      .receive([&](total& t) { out.value = t; }, [&](caf::error& e) { out.err = std::move(e); });
  return out;
}

} // namespace embed_test
