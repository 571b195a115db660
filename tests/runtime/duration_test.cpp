// warren::parse_duration / format_duration: the one duration grammar of every option.
#include <warren/duration.hpp>

#include <doctest/doctest.h>

#include <chrono>

using namespace std::chrono_literals;
using warren::format_duration;
using warren::parse_duration;

TEST_CASE("parse_duration: a number and a unit; no unit is milliseconds") {
  CHECK(parse_duration("250ms") == caf::timespan{250ms});
  CHECK(parse_duration("250") == caf::timespan{250ms});
  CHECK(parse_duration("1.5s") == caf::timespan{1500ms});
  CHECK(parse_duration("0.25ms") == caf::timespan{250us});
  CHECK(parse_duration("2m") == caf::timespan{2min});
  CHECK(parse_duration("2min") == caf::timespan{2min});
  CHECK(parse_duration("1h") == caf::timespan{1h});
  CHECK(parse_duration("10us") == caf::timespan{10us});
  CHECK(parse_duration("7ns") == caf::timespan{7ns});
  CHECK(parse_duration("0") == caf::timespan{0});
}

TEST_CASE("parse_duration: anything else is refused, never read as something close") {
  for (const char* bad : {"", "s", "-1s", "+1s", "1e3ms", "inf", "nan", "1.s", ".5s", "1..5s", "5 s", " 5s",
                          "5parsecs", "5S", "1.2.3s", "999999999999h"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_duration(bad).has_value());
  }
}

TEST_CASE("format_duration: the shortest exact form, which parse_duration reads back") {
  CHECK(format_duration(caf::timespan{5s}) == "5s");
  CHECK(format_duration(caf::timespan{1500ms}) == "1500ms");
  CHECK(format_duration(caf::timespan{1500us}) == "1500us");
  CHECK(format_duration(caf::timespan{7ns}) == "7ns");
  for (auto d : {caf::timespan{5s}, caf::timespan{1500ms}, caf::timespan{1500us}, caf::timespan{7ns}})
    CHECK(parse_duration(format_duration(d)) == d);
}
