#include <warren/duration.hpp>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>

namespace warren {

std::optional<caf::timespan> parse_duration(std::string_view text) {
  // Digits with at most one '.', checked by hand: from_chars alone would accept
  // "1e3", "inf" and "nan".
  std::size_t n = 0, dots = 0;
  while (n < text.size() && ((text[n] >= '0' && text[n] <= '9') || text[n] == '.'))
    dots += text[n++] == '.';
  if (n == 0 || dots > 1 || text[0] == '.' || text[n - 1] == '.')
    return std::nullopt;
  double value = 0;
  if (std::from_chars(text.data(), text.data() + n, value).ptr != text.data() + n)
    return std::nullopt;
  auto unit = text.substr(n);
  double scale; // nanoseconds per unit
  if (unit.empty() || unit == "ms")
    scale = 1e6;
  else if (unit == "us")
    scale = 1e3;
  else if (unit == "ns")
    scale = 1;
  else if (unit == "s")
    scale = 1e9;
  else if (unit == "m" || unit == "min")
    scale = 60e9;
  else if (unit == "h")
    scale = 3600e9;
  else
    return std::nullopt;
  double ns = std::round(value * scale);
  if (!(ns < static_cast<double>(std::numeric_limits<int64_t>::max())))
    return std::nullopt;
  return caf::timespan{static_cast<int64_t>(ns)};
}

std::string format_duration(caf::timespan d) {
  auto ns = d.count();
  if (ns % 1'000'000'000 == 0)
    return std::to_string(ns / 1'000'000'000) + "s";
  if (ns % 1'000'000 == 0)
    return std::to_string(ns / 1'000'000) + "ms";
  if (ns % 1'000 == 0)
    return std::to_string(ns / 1'000) + "us";
  return std::to_string(ns) + "ns";
}

} // namespace warren
