#include <warren/cluster/pending.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace std::chrono_literals;
using pending = warren::cluster::pending_requests<std::string>;

TEST_CASE("a request is taken once; its token is then unknown") {
  pending p;
  auto t0 = pending::clock::now();
  auto a = p.add("a", t0 + 1s);
  auto b = p.add("b", t0 + 1s);
  CHECK(a != 0);
  CHECK(a != b);
  CHECK(p.size() == 2);
  CHECK(p.take(a) == std::string{"a"});
  CHECK(!p.take(a));
  CHECK(p.size() == 1);
}

TEST_CASE("expire hands back exactly the requests past their deadline, oldest first") {
  pending p;
  auto t0 = pending::clock::now();
  auto a = p.add("a", t0 + 1s);
  auto b = p.add("b", t0 + 2s);
  p.add("c", t0 + 3s);
  CHECK(p.take(b));
  std::vector<std::string> expired;
  p.expire(t0 + 500ms, [&](uint64_t, std::string&& s) { expired.push_back(s); });
  CHECK(expired.empty());
  p.expire(t0 + 2500ms, [&](uint64_t token, std::string&& s) {
    CHECK(token == a);
    expired.push_back(s);
  });
  CHECK(expired == std::vector<std::string>{"a"}); // b was answered: no timeout for it
  CHECK(p.size() == 1);
  p.clear([&](uint64_t, std::string&& s) { expired.push_back(s); });
  CHECK(expired == std::vector<std::string>{"a", "c"});
  CHECK(p.empty());
}
