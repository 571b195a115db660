#include <warren/backend/control.hpp>
#include <warren/backend/echo.hpp>
#include <warren/supervisor.hpp>

#include <caf/all.hpp>

namespace warren::backend {

namespace {

caf::behavior echo_producer(caf::event_based_actor* self, std::shared_ptr<router> routes) {
  return {
      // A batch comes from one session, about one connection: one registry lookup, and
      // the very batch goes back (shared, no payload copy) with its acceptance, one
      // message per publish.
      [self, routes](publish_atom, const device_batch& batch) {
        if (batch.empty())
          return;
        auto sender = caf::actor_cast<caf::actor>(self->current_sender());
        auto accepted = batch.last_seq();
        auto session = routes->find(address_kind::connection, batch.connection_id());
        if (session && session == sender) {
          self->send(session, deliver_atom::value, batch, accepted_atom::value, accepted);
          return;
        }
        // Not the publisher (a takeover race) or gone: the payloads go to whoever holds
        // the connection id now, if anyone; the acceptance to the publisher.
        if (session)
          self->send(session, deliver_atom::value, batch);
        if (sender)
          self->send(sender, accepted_atom::value, accepted);
      },
      [](flush_atom) { return caf::unit; },
  };
}

} // namespace

backend_spec make_echo_backend(std::shared_ptr<router> routes, std::size_t producers) {
  backend_spec spec;
  spec.kind = "echo";
  spec.producers = std::max<std::size_t>(producers, 1);
  std::vector<child_spec> children;
  for (std::size_t i = 0; i < spec.producers; ++i) {
    child_spec producer;
    producer.id = i == 0 ? std::string{"producer"} : "producer_" + std::to_string(i);
    producer.name = producer_name_at(spec.producer_name, i);
    producer.start = spawn_fn_of(echo_producer, routes);
    children.push_back(std::move(producer));
  }
  supervisor_flags flags;
  flags.intensity = 5;
  flags.period = std::chrono::seconds(10);
  spec.supervisor = supervisor_child("backend", flags, std::move(children));
  return spec;
}

} // namespace warren::backend
