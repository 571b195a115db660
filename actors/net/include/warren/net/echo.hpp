// The echo protocol: every message is sent back as it came, for tests and benchmarks.
// codec line: each line comes back as a line. codec frame: each DATA payload comes back
// as a PUSH (ids 1, 2, ...), and with listener_options::auto_ack (the default) the
// DATA is acknowledged as soon as on_frames returns (batched ACKs).
#pragma once

#include <warren/net/protocol.hpp>

namespace warren::net {

class echo_protocol : public protocol {
public:
  void on_frames(connection_context& ctx, std::span<const std::string_view> frames) override {
    for (auto f : frames)
      ctx.send(f);
  }
};

inline protocol_factory echo_factory() {
  return [] { return std::make_unique<echo_protocol>(); };
}

} // namespace warren::net
