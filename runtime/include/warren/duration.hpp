// Durations as operators write them in configuration files and flags: "250ms", "1.5s",
// "2m". One grammar for every Warren option (the gateway's config, [backend.amqp]).
#pragma once

#include <caf/timespan.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace warren {

/// Parses a non-negative number (decimals allowed: "1.5s") followed by a unit: ns, us,
/// ms, s, m (or min), h; no unit means milliseconds. Nothing else: no spaces, signs,
/// exponents or infinities, nor a value beyond caf::timespan's range. Empty otherwise.
std::optional<caf::timespan> parse_duration(std::string_view text);

/// The shortest exact form parse_duration reads back: "5s", "250ms", "1500us", "7ns".
std::string format_duration(caf::timespan d);

} // namespace warren
