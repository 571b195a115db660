// [backend.amqp] keys and validation (no broker needed).
#include <warren/amqp/amqp.hpp>

#include <doctest/doctest.h>

using warren::amqp::options;
using warren::amqp::set_option;

TEST_CASE("set_option parses every documented key") {
  options o;
  CHECK(set_option(o, "host", "rabbit.example") == "");
  CHECK(set_option(o, "port", "5673") == "");
  CHECK(set_option(o, "heartbeat", "30") == "");
  CHECK(set_option(o, "reconnect_max", "2m") == "");
  CHECK(set_option(o, "reconnect_initial", "250") == "");
  CHECK(set_option(o, "flush_timeout", "7s") == "");
  CHECK(set_option(o, "connect_timeout", "1.5s") == ""); // the gateway's grammar (warren/duration.hpp)
  CHECK(set_option(o, "consumers", "3") == "");
  CHECK(set_option(o, "prefetch", "100") == "");
  CHECK(set_option(o, "exchange_type", "direct") == "");
  CHECK(o.host == "rabbit.example");
  CHECK(o.port == 5673);
  CHECK(o.heartbeat == std::chrono::seconds(30));
  CHECK(o.reconnect_max == std::chrono::minutes(2));
  CHECK(o.reconnect_initial == std::chrono::milliseconds(250));
  CHECK(o.flush_timeout == std::chrono::seconds(7));
  CHECK(o.connect_timeout == std::chrono::milliseconds(1500));
  CHECK(o.consumers == 3);
  CHECK(o.prefetch == 100);
  CHECK(o.exchange_type == "direct");
  CHECK(warren::amqp::validate(o) == "");
  for (auto& k : warren::amqp::option_keys())
    CHECK_MESSAGE(set_option(o, k, "nonsense-value-x") != "unknown key '" + k + "'", k);
}

TEST_CASE("set_option: url names the broker in one value (librabbitmq's amqp_parse_url)") {
  options o;
  CHECK(set_option(o, "url", "amqp://warren:s%40cret@rabbit.example:5673/devices") == "");
  CHECK(o.host == "rabbit.example");
  CHECK(o.port == 5673);
  CHECK(o.user == "warren");
  CHECK(o.password == "s@cret"); // percent-decoded
  CHECK(o.vhost == "devices");
  CHECK(set_option(o, "url", "amqp://127.0.0.1") == ""); // the rest: AMQP's defaults
  CHECK(o.host == "127.0.0.1");
  CHECK(o.port == 5672);
  CHECK(o.user == "guest");
  CHECK(o.vhost == "/");
  CHECK(set_option(o, "url", "amqp://127.0.0.1/") == ""); // the AMQP URI spec: an empty vhost
  CHECK(o.vhost == "");
  CHECK(set_option(o, "url", "http://rabbit.example") != "");
  CHECK(set_option(o, "url", "amqp://h:notaport") != "");
  CHECK(set_option(o, "url", "amqps://rabbit.example").find("not supported") != std::string::npos);
}

TEST_CASE("set_option and validate reject what does not fit") {
  options o;
  CHECK(set_option(o, "nope", "1") == "unknown key 'nope'");
  CHECK(set_option(o, "port", "70000") != "");
  CHECK(set_option(o, "port", "-1") != "");
  CHECK(set_option(o, "prefetch", "0") != "");
  CHECK(set_option(o, "flush_timeout", "5 parsecs") != "");
  o.exchange_type = "fanout";
  CHECK(warren::amqp::validate(o) != "");
  o = options{};
  o.reconnect_max = std::chrono::milliseconds(1);
  CHECK(warren::amqp::validate(o) != "");
  CHECK_THROWS_AS(warren::amqp::backend(o, nullptr), std::invalid_argument);
}
