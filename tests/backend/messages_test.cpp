// device_batch: how it is built, read and shared (warren/backend/messages.hpp).
#include <warren/backend/messages.hpp>

#include <caf/make_message.hpp>
#include <caf/message.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

using warren::backend::device_batch;
using warren::backend::device_message;
using warren::backend::device_message_view;

namespace {

const std::string conn = "0b8f6a52-3c1e-4d2a-9f47-5e6d7c8b9a01";

/// Three messages: a message id on the first and last, an empty payload, a binary one.
device_batch three() {
  device_batch::builder b{conn, "dev-7", 3, 10};
  b.add(4, 104, "four").add(5, std::nullopt, "").add(6, 106, std::string_view{"s\0x\xff", 4});
  CHECK(b.size() == 3);
  return std::move(b).done();
}

} // namespace

TEST_CASE("an empty batch") {
  device_batch none;
  CHECK(none.empty());
  CHECK(none.size() == 0);
  CHECK(none.connection_id().empty());
  CHECK(none.device_id().empty());
  CHECK(none.last_seq() == 0);
  CHECK(none.begin() == none.end());

  // Built without messages: the ids, nothing else.
  auto built = device_batch::builder{conn, "dev-1"}.done();
  CHECK(built.empty());
  CHECK(built.connection_id() == conn);
  CHECK(built.device_id() == "dev-1");
  CHECK(built.last_seq() == 0);
  CHECK(built.begin() == built.end());
}

TEST_CASE("a built batch: ids once, each message by index and by iteration") {
  auto b = three();
  REQUIRE(b.size() == 3);
  CHECK_FALSE(b.empty());
  CHECK(b.connection_id() == conn);
  CHECK(b.device_id() == "dev-7");
  CHECK(b.last_seq() == 6);

  CHECK(b[0].from_device_seq == 4);
  CHECK(b[0].message_id == 104);
  CHECK(b[0].payload == "four");
  CHECK(b[1].from_device_seq == 5);
  CHECK_FALSE(b[1].message_id);
  CHECK(b[1].payload.empty());
  CHECK(b[2].from_device_seq == 6);
  CHECK(b[2].message_id == 106);
  CHECK(b[2].payload == std::string_view{"s\0x\xff", 4});

  std::vector<uint64_t> seqs;
  std::string all;
  for (device_message_view m : b) {
    seqs.push_back(m.from_device_seq);
    all.append(m.payload);
  }
  CHECK(seqs == std::vector<uint64_t>{4, 5, 6});
  CHECK(all == std::string{"fours\0x\xff", 8});
  // The payloads lie back to back in one buffer.
  CHECK(b[2].payload.data() == b[0].payload.data() + 4);
}

TEST_CASE("message(i) is an owning device_message with every field") {
  auto b = three();
  device_message m = b.message(0);
  CHECK(m.connection_id == conn);
  CHECK(m.device_id == "dev-7");
  CHECK(m.from_device_seq == 4);
  CHECK(m.message_id == 104);
  CHECK(m.payload == "four");
  m = b.message(2);
  CHECK(m.from_device_seq == 6);
  CHECK(m.payload == std::string{"s\0x\xff", 4});
  CHECK(b.message(1).message_id == std::nullopt);
  // It outlives the batch.
  b = device_batch{};
  CHECK(m.connection_id == conn);
  CHECK(m.payload.size() == 4);
}

TEST_CASE("without a device id, and past the builder's size hints") {
  device_batch::builder bld{conn, "", 1, 1};
  for (uint64_t seq = 1; seq <= 100; ++seq)
    bld.add(seq, std::nullopt, std::string(seq % 7, static_cast<char>('a' + seq % 26)));
  auto b = std::move(bld).done();
  CHECK(b.device_id().empty());
  CHECK(b.connection_id() == conn);
  REQUIRE(b.size() == 100);
  CHECK(b.last_seq() == 100);
  for (uint64_t seq = 1; seq <= 100; ++seq) {
    auto m = b[seq - 1];
    CHECK(m.from_device_seq == seq);
    CHECK(m.payload == std::string(seq % 7, static_cast<char>('a' + seq % 26)));
  }
}

TEST_CASE("a copy shares the data, and keeps it when the original is gone") {
  auto original = three();
  device_batch copy = original;
  CHECK(copy.connection_id().data() == original.connection_id().data());
  CHECK(copy[0].payload.data() == original[0].payload.data());
  CHECK(copy[2].payload.data() == original[2].payload.data());

  auto view = copy[0].payload;
  original = device_batch{};
  CHECK(original.empty());
  CHECK(view == "four"); // still alive in `copy`
  CHECK(copy.size() == 3);
  CHECK(copy.device_id() == "dev-7");

  device_batch moved = std::move(copy);
  CHECK(moved[0].payload.data() == view.data());
}

TEST_CASE("in a caf::message the batch is shared, not copied") {
  auto b = three();
  auto msg = caf::make_message(b);
  REQUIRE(msg.match_elements<device_batch>());
  const auto& inside = msg.get_as<device_batch>(0);
  CHECK(inside[1].from_device_seq == 5);
  CHECK(inside[0].payload.data() == b[0].payload.data());
  auto other = msg; // what a session keeps while the producer reads the batch
  CHECK(other.get_as<device_batch>(0)[2].payload.data() == b[2].payload.data());
}

TEST_CASE("backend_spec::producer_names: the pool by index, the first under the base name") {
  // Initialized, not assigned: GCC 12's -Wrestrict misfires on a short literal assigned
  // to a std::string under -O2 with the sanitizers (GCC bug 105329).
  warren::backend::backend_spec spec{.kind = "echo", .supervisor = {}, .producer_name = "p", .producers = 3};
  CHECK(spec.producer_names() == std::vector<std::string>{"p", "p.1", "p.2"});
  spec.producers = 0; // a backend that said nothing: one producer
  CHECK(spec.producer_names() == std::vector<std::string>{"p"});
}
