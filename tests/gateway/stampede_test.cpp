// 2,000 devices connect at once through the echo backend; every one is served.
#include "gw_support.hpp"

using namespace gw_test;

TEST_CASE("a stampede of 2000 connects: every device sends a line and gets its echo") {
  constexpr int n = 2000;
  auto cfg = test_config("echo");
  cfg.listeners[0].net.max_connections = 4096;
  cfg.listeners[0].net.backlog = 4096;
  running_gateway g{cfg};
  asio::io_context io;
  struct conn {
    asio::ip::tcp::socket sock;
    std::string out, in;
    bool done = false;
    explicit conn(asio::io_context& io) : sock(io) {}
  };
  std::vector<std::unique_ptr<conn>> conns;
  int served = 0, failed = 0;
  asio::ip::tcp::endpoint ep{asio::ip::make_address("127.0.0.1"), g.port()};
  for (int i = 0; i < n; ++i) {
    auto c = std::make_unique<conn>(io);
    c->out = "device-" + std::to_string(i) + "\n";
    auto* p = c.get();
    p->sock.async_connect(ep, [&, p](const asio::error_code& ec) {
      if (ec) {
        ++failed;
        return;
      }
      asio::async_write(p->sock, asio::buffer(p->out), [&, p](const asio::error_code& ec2, std::size_t) {
        if (ec2) {
          ++failed;
          return;
        }
        asio::async_read_until(p->sock, asio::dynamic_buffer(p->in), '\n',
                               [&, p](const asio::error_code& ec3, std::size_t) {
                                 if (!ec3 && p->in == p->out)
                                   ++served;
                                 else
                                   ++failed;
                                 p->done = true;
                               });
      });
    });
    conns.push_back(std::move(c));
  }
  auto until = std::chrono::steady_clock::now() + 60s; // safety net only
  while (served + failed < n && std::chrono::steady_clock::now() < until)
    io.run_one_until(until);
  CHECK(failed == 0);
  CHECK(served == n);
  CHECK(g->metrics()->sessions_opened.load() == n);
  CHECK(g->registry()->connections() == static_cast<std::size_t>(n));
  for (auto& c : conns)
    c->sock.close();
  CHECK(eventually([&] { return g->registry()->connections() == 0; }, 30000ms));
}
