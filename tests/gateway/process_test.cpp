// The real warren-gateway binary: SIGTERM drains devices and exits 0.
#include "gw_support.hpp"

#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>
#include <set>
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

namespace {

/// Whether process `pid` holds a TCP socket listening on `port` (its fds against the
/// LISTEN entries of /proc/net/tcp).
bool holds_listen_socket(pid_t pid, uint16_t port) {
  std::set<std::string> inodes;
  std::ifstream tcp{"/proc/net/tcp"};
  std::string line;
  std::getline(tcp, line); // header
  while (std::getline(tcp, line)) {
    std::istringstream in{line};
    std::string sl, local, remote, state, queues, timer, retr, uid, timeout, inode;
    in >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
    if (state == "0A" && std::stoul(local.substr(local.find(':') + 1), nullptr, 16) == port)
      inodes.insert("socket:[" + inode + "]");
  }
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::error_code ec2;
    if (inodes.count(std::filesystem::read_symlink(e.path(), ec2).string()) != 0)
      return true;
  }
  return false;
}

std::string rolling_conf(const std::filesystem::path& dir, uint16_t port) {
  auto conf = (dir / ("gateway-" + std::to_string(port) + ".toml")).string();
  std::ofstream{conf} << "[gateway]\ndata_dir = \"" << dir.string()
                      << "\"\ndrain_timeout = \"30s\"\nio_threads = 2\nlog_level = \"warn\"\n"
                      << "[[listener]]\nname = \"plain\"\ntls = false\nbind = \"127.0.0.1\"\nport = " << port
                      << "\n[admin]\nenabled = false\n[backend]\nkind = \"echo\"\n";
  return conf;
}

} // namespace

TEST_CASE("rolling restart: gateway B on the same port, A drains: every new device is served, A's own "
          "devices too until they leave") {
  auto dir = temp_dir("rolling");
  auto ports_a = (dir / "a.json").string(), ports_b = (dir / "b.json").string();
  pid_t a = spawn_gateway(WARREN_GATEWAY_BIN, rolling_conf(dir, 0), ports_a);
  uint16_t port = listener_port(ports_a, "plain");
  REQUIRE(port != 0);
  device old{port}; // before B exists: A's
  old.send("old 1\n");
  REQUIRE(old.read_line() == "old 1");
  pid_t b = spawn_gateway(WARREN_GATEWAY_BIN, rolling_conf(dir, port), ports_b);
  REQUIRE(listener_port(ports_b, "plain") == port);
  REQUIRE(holds_listen_socket(a, port));
  REQUIRE(holds_listen_socket(b, port));
  REQUIRE(kill(a, SIGTERM) == 0);
  // The drain starts by closing A's listen socket; A stays up for `old`.
  REQUIRE(eventually([&] { return !holds_listen_socket(a, port); }, 30000ms));
  std::vector<std::unique_ptr<device>> fresh;
  for (int i = 0; i < 40; ++i) {
    fresh.push_back(std::make_unique<device>(port));
    fresh.back()->send("new " + std::to_string(i) + "\n");
  }
  int served = 0;
  for (int i = 0; i < 40; ++i)
    served += fresh[static_cast<std::size_t>(i)]->read_line() == "new " + std::to_string(i) ? 1 : 0;
  CHECK(served == 40);
  old.send("old 2\n"); // A still serves the device it has while it drains
  CHECK(old.read_line() == "old 2");
  CHECK(waitpid(a, nullptr, WNOHANG) == 0);
  old.close(); // A's last device leaves: its drain ends, it exits 0
  int status = 0;
  REQUIRE(eventually([&] { return waitpid(a, &status, WNOHANG) == a; }, 30000ms));
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  fresh.clear();
  REQUIRE(kill(b, SIGTERM) == 0);
  REQUIRE(eventually([&] { return waitpid(b, &status, WNOHANG) == b; }, 30000ms));
  CHECK(WEXITSTATUS(status) == 0);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}
