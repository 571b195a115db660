// The `echo` backend: every device message goes back to the same connection, routed
// by connection id through the router, as a to_device_message without
// to_device_seq. Accepted at once. For demos and benchmarks of the whole path.
//
//   supervisor "backend" (one_for_one)
//   └─ producer      registered as backend_spec::producer_name
#pragma once

#include <warren/backend/messages.hpp>

#include <memory>

namespace warren::backend {

backend_spec make_echo_backend(std::shared_ptr<router> routes);

} // namespace warren::backend
