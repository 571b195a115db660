// The echo protocol: every frame is sent back as it came. For tests and benchmarks.
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
