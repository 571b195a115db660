// The real warren-gateway binary: SIGTERM drains devices and exits 0.
#include "gw_support.hpp"

#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

using namespace gw_test;

TEST_CASE("SIGTERM: stop accepting, drain devices, exit 0") {
  auto dir = temp_dir("proc");
  auto conf = (dir / "gateway.toml").string();
  auto ports = (dir / "ports.json").string();
  {
    std::ofstream out{conf};
    out << "[gateway]\ndata_dir = \"" << dir.string() << "\"\ndrain_timeout = \"1s\"\nio_threads = 2\n"
        << "log_level = \"warn\"\n"
        << "[[listener]]\nname = \"plain\"\ntls = false\nbind = \"127.0.0.1\"\nport = 0\n"
        << "[admin]\nport = 0\n[backend]\nkind = \"echo\"\n";
  }
  pid_t pid = spawn_gateway(WARREN_GATEWAY_BIN, conf, ports);
  uint16_t port = listener_port(ports, "plain");
  REQUIRE(port != 0);
  std::vector<std::unique_ptr<device>> devices;
  for (int i = 0; i < 5; ++i) {
    devices.push_back(std::make_unique<device>(port));
    devices.back()->send("hi " + std::to_string(i) + "\n");
    REQUIRE(devices.back()->read_line() == "hi " + std::to_string(i));
  }
  REQUIRE(kill(pid, SIGTERM) == 0);
  for (auto& d : devices) {
    CHECK(d->wait_closed(30000ms));
    CHECK(d->close_reason() == asio::error::eof); // a clean close, not a reset
  }
  int status = 0;
  pid_t done = 0;
  REQUIRE(eventually([&] { return (done = waitpid(pid, &status, WNOHANG)) == pid; }, 30000ms));
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST_CASE("bad config: exit 2 with a message") {
  auto dir = temp_dir("badconf");
  auto conf = (dir / "gateway.toml").string();
  std::ofstream{conf} << "[gateway]\nno_such_option = 1\n";
  auto cmd = std::string{WARREN_GATEWAY_BIN} + " -c " + conf + " 2>/dev/null";
  int rc = std::system(cmd.c_str());
  CHECK(WIFEXITED(rc));
  CHECK(WEXITSTATUS(rc) == 2);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST_CASE("verify_peer = true without ca: exit 2, the message names the listener and the keys") {
  auto dir = temp_dir("badmtls");
  auto conf = (dir / "gateway.toml").string();
  auto err = (dir / "stderr.txt").string();
  std::ofstream{conf}
      << "[gateway]\ndata_dir = \"" << dir.string() << "\"\n"
      << "[[listener]]\nname = \"devices\"\nport = 0\nverify_peer = true\n[admin]\nenabled = false\n";
  auto cmd = std::string{WARREN_GATEWAY_BIN} + " -c " + conf + " 2>" + err;
  int rc = std::system(cmd.c_str());
  CHECK(WIFEXITED(rc));
  CHECK(WEXITSTATUS(rc) == 2);
  std::stringstream text;
  text << std::ifstream{err}.rdbuf();
  INFO(text.str());
  CHECK(text.str().find("listener devices: verify_peer = true needs ca") != std::string::npos);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}
