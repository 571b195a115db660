// The `echo` backend: every device message goes back to the same connection, routed
// by connection id through the router, as a to_device_message without to_device_seq
// would be. Accepted at once. For demos and benchmarks of the whole path.
//
// Each publish gets one message back: the published device_batch itself (shared, no
// copy) as a one-way (deliver_atom, device_batch, accepted_atom, seq) (messages.hpp).
// `producers` producers share the work (sessions pick one by connection id), so the
// echo is no single-threaded choke point; one per scheduler thread is a good size.
//
//   supervisor "backend" (one_for_one)
//   ├─ producer      registered as backend_spec::producer_name
//   └─ producer_<i>  i = 1 .. producers - 1: producer_name_at(producer_name, i)
#pragma once

#include <warren/backend/messages.hpp>

#include <cstddef>
#include <memory>

namespace warren::backend {

backend_spec make_echo_backend(std::shared_ptr<router> routes, std::size_t producers = 1);

} // namespace warren::backend
