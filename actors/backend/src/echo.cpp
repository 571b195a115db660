#include <warren/backend/control.hpp>
#include <warren/backend/echo.hpp>
#include <warren/supervisor.hpp>

#include <caf/all.hpp>

namespace warren::backend {

namespace {

caf::behavior echo_producer(caf::event_based_actor* self, std::shared_ptr<router> routes) {
  return {
      [self, routes](publish_atom, std::vector<device_message>& batch) {
        if (batch.empty())
          return;
        // A batch comes from one session: one registry lookup per connection id run.
        const std::string* last_id = nullptr;
        caf::actor session;
        for (auto& m : batch) {
          if (!last_id || *last_id != m.connection_id) {
            session = routes->find(address_kind::connection, m.connection_id);
            last_id = &m.connection_id;
          }
          if (session)
            self->send(session, deliver_atom::value,
                       to_device_message{address_kind::connection, m.connection_id, std::nullopt,
                                         std::move(m.payload)});
        }
        if (auto& src = self->current_sender())
          self->send(caf::actor_cast<caf::actor>(src), accepted_atom::value, batch.back().from_device_seq);
      },
      [](flush_atom) { return caf::unit; },
  };
}

} // namespace

backend_spec make_echo_backend(std::shared_ptr<router> routes) {
  backend_spec spec;
  spec.kind = "echo";
  child_spec producer;
  producer.id = "producer";
  producer.name = spec.producer_name;
  producer.start = spawn_fn_of(echo_producer, routes);
  supervisor_flags flags;
  flags.intensity = 5;
  flags.period = std::chrono::seconds(10);
  spec.supervisor = supervisor_child("backend", flags, {std::move(producer)});
  return spec;
}

} // namespace warren::backend
