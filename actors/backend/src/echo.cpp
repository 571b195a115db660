#include <warren/backend/control.hpp>
#include <warren/backend/echo.hpp>
#include <warren/supervisor.hpp>

#include <caf/all.hpp>

namespace warren::backend {

namespace {

caf::behavior echo_producer(caf::event_based_actor* self, std::shared_ptr<router> routes) {
  return {
      // const: the session keeps the message until accepted, so a mutable reference
      // would make CAF copy the whole batch (copy on write); only the payloads are copied.
      [self, routes](publish_atom, const std::vector<device_message>& batch) {
        if (batch.empty())
          return;
        auto sender = caf::actor_cast<caf::actor>(self->current_sender());
        auto accepted = batch.back().from_device_seq;
        bool accepted_sent = false;
        // A batch comes from one session: one registry lookup and one batch message per
        // run of equal connection ids (one run in practice). The batch that goes back to
        // the publishing session carries its acceptance: one message per publish.
        std::vector<to_device_message> out;
        out.reserve(batch.size());
        const std::string* run_id = nullptr;
        caf::actor session;
        auto ship = [&](bool last) {
          if (session && !out.empty()) {
            if (last && session == sender) {
              self->send(session, deliver_atom::value, std::move(out), accepted_atom::value, accepted);
              accepted_sent = true;
            } else {
              self->send(session, deliver_atom::value, std::move(out));
            }
          }
          out = std::vector<to_device_message>{};
        };
        for (auto& m : batch) {
          if (!run_id || *run_id != m.connection_id) {
            if (run_id)
              ship(false);
            session = routes->find(address_kind::connection, m.connection_id);
            run_id = &m.connection_id;
          }
          // Routed already: the target is not needed (messages.hpp), no copy of the id.
          out.push_back(to_device_message{address_kind::connection, {}, std::nullopt, m.payload});
        }
        ship(true);
        if (sender && !accepted_sent)
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
