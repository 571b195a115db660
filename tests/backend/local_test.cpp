// The local backend's pieces without actors: its JSON lines and its hub.
#include <warren/backend/local.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace warren::backend;

namespace {

const std::string conn = "0b8f6a52-3c1e-4d2a-9f47-5e6d7c8b9a01";
constexpr int64_t now_ms = 1700000000123; // 2023-11-14T22:13:20.123Z

} // namespace

TEST_CASE("to_json_line: one line per message, UTF-8 payloads as text, others base64") {
  device_batch::builder bld{conn, "dev-1"};
  bld.add(1, std::nullopt, "h\xc3\xa9llo \"x\"")
      .add(2, 42, std::string_view{"\0\xff", 2})
      .add(3, std::nullopt, "");
  auto b = std::move(bld).done();
  CHECK(to_json_line(b.connection_id(), b.device_id(), b[0], now_ms) ==
        R"({"connection_id":")" + conn +
            R"(","device_id":"dev-1","from_device_seq":1,"message_id":null,"payload":"h)"
            "\xc3\xa9"
            R"(llo \"x\"","payload_encoding":"utf-8","received_at":"2023-11-14T22:13:20.123Z"})");
  CHECK(
      to_json_line(b.connection_id(), b.device_id(), b[1], now_ms) ==
      R"({"connection_id":")" + conn +
          R"(","device_id":"dev-1","from_device_seq":2,"message_id":42,"payload":"AP8=","payload_encoding":)"
          R"("base64","received_at":"2023-11-14T22:13:20.123Z"})");
  CHECK(
      to_json_line(b.connection_id(), "", b[2], now_ms) ==
      R"({"connection_id":")" + conn +
          R"(","device_id":"","from_device_seq":3,"message_id":null,"payload":"","payload_encoding":"utf-8",)"
          R"("received_at":"2023-11-14T22:13:20.123Z"})");
}

TEST_CASE("is_utf8: well-formed UTF-8 only (what to_json_line sends as text)") {
  CHECK(is_utf8(""));
  CHECK(is_utf8("plain"));
  CHECK(is_utf8("h\xc3\xa9 \xe8\xae\xbe \xf0\x9f\x93\xa1")); // 2, 3 and 4 bytes
  CHECK(is_utf8(std::string_view{"a\0b", 3}));               // NUL is a character
  CHECK_FALSE(is_utf8("\xff"));                              // never a UTF-8 byte
  CHECK_FALSE(is_utf8("\x80"));                              // lone continuation
  CHECK_FALSE(is_utf8("ab\xc3"));                            // truncated
  CHECK_FALSE(is_utf8("\xc0\xaf"));                          // overlong '/'
  CHECK_FALSE(is_utf8("\xed\xa0\x80"));                      // surrogate U+D800
  CHECK_FALSE(is_utf8("\xf4\x90\x80\x80"));                  // U+110000
  CHECK_FALSE(is_utf8("\xf0\x9f\x93"));                      // 4-byte form cut short
}

TEST_CASE("local_hub: every subscriber gets each message of a batch, owning, in order") {
  local_hub hub;
  device_batch::builder bld{conn, "dev-2", 2};
  bld.add(7, 70, "seven").add(8, std::nullopt, "eight");
  auto b = std::move(bld).done();
  hub.publish(b); // nobody listens: nothing happens

  std::vector<device_message> first, second;
  auto t1 = hub.subscribe([&](const device_message& m) { first.push_back(m); });
  auto t2 = hub.subscribe([&](const device_message& m) { second.push_back(m); });
  CHECK(hub.subscribers() == 2);
  hub.publish(b);
  hub.publish(device_batch{});
  REQUIRE(first.size() == 2);
  CHECK(first[0].connection_id == conn);
  CHECK(first[0].device_id == "dev-2");
  CHECK(first[0].from_device_seq == 7);
  CHECK(first[0].message_id == 70);
  CHECK(first[0].payload == "seven");
  CHECK(first[1].from_device_seq == 8);
  CHECK_FALSE(first[1].message_id);
  CHECK(first[1].payload == "eight");
  REQUIRE(second.size() == 2);
  CHECK(second[1].payload == "eight");

  hub.unsubscribe(t1);
  hub.publish(b);
  CHECK(first.size() == 2);
  CHECK(second.size() == 4);
  hub.unsubscribe(t2);
  CHECK(hub.subscribers() == 0);
}
