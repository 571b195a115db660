#include <warren/cluster/subject.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace warren::cluster;

TEST_CASE("plain ids stay as they are; every other byte is escaped") {
  CHECK(encode_token("sensor-1") == "sensor-1");
  CHECK(encode_token("a_B-9") == "a_B-9");
  CHECK(encode_token("a.b") == "a~2Eb");
  CHECK(encode_token("*") == "~2A");
  CHECK(encode_token(">") == "~3E");
  CHECK(encode_token("a b\tc") == "a~20b~09c");
  CHECK(encode_token("~") == "~7E");
  CHECK(encode_token("\xc3\xa9") == "~C3~A9"); // é
  CHECK(encode_token("") == "");
  CHECK(subject_for("warren.dev", "x.y") == "warren.dev.x~2Ey");
}

TEST_CASE("a token holds no character NATS treats specially, and decodes to its id") {
  std::string all;
  for (int c = 1; c < 256; ++c)
    all.push_back(static_cast<char>(c));
  for (auto id : {std::string{"sensor-1"}, std::string{"a.b.*.>"}, std::string{" ~%/\\"}, all,
                  std::string{"\xe2\x80\xae-rtl"}, std::string(255, '.')}) {
    auto t = encode_token(id);
    CHECK(t.find_first_of(".*> \t\r\n") == std::string::npos);
    for (char c : t)
      CHECK(static_cast<unsigned char>(c) < 0x80);
    auto back = decode_token(t);
    REQUIRE(back);
    CHECK(*back == id);
  }
}

TEST_CASE("decode_token refuses what encode_token cannot have made") {
  CHECK(!decode_token(""));
  CHECK(!decode_token("a.b")); // a dot
  CHECK(!decode_token("~2"));  // short escape
  CHECK(!decode_token("~2e")); // lower-case hex
  CHECK(!decode_token("~41")); // 'A' escaped: one id, one token
  CHECK(!decode_token("x~"));
  CHECK(!decode_token("\xc3\xa9")); // raw non-ASCII
  CHECK(decode_token("~7E") == std::string{"~"});
}
