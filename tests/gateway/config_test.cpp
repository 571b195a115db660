// The gateway's configuration (apps/gateway/src/config.cpp): TOML and flags for client
// certificates (ca, verify_peer), scheduling (sched_batch), and what the checks refuse.
#include "gw_support.hpp"

#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

using namespace gw_test;

namespace {

const gw::listener_config& only_listener(const gw::config& c) {
  REQUIRE(c.listeners.size() == 1);
  return c.listeners[0];
}

gw::config parse_listener(const std::string& body) {
  return gw::parse_config("[[listener]]\nname = \"devices\"\n" + body, "config_test");
}

/// The message of validate_config's exception, or "" when it accepts `c`.
std::string validation_error(const gw::config& c) {
  try {
    gw::validate_config(c);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return {};
}

/// load_config on a TOML file and flags: its return value and what it wrote to stderr.
struct load_result {
  std::optional<int> rc;
  std::string err;
  gw::config cfg;
};

load_result load(const std::string& toml, std::vector<std::string> flags = {}) {
  auto dir = temp_dir("conf");
  auto file = (dir / "gateway.toml").string();
  std::ofstream{file} << toml;
  std::vector<std::string> args{"warren-gateway", "-c", file};
  args.insert(args.end(), flags.begin(), flags.end());
  std::vector<const char*> argv;
  for (auto& a : args)
    argv.push_back(a.c_str());
  load_result r;
  std::ostringstream captured;
  auto* old = std::cerr.rdbuf(captured.rdbuf());
  r.rc = gw::load_config(static_cast<int>(argv.size()), argv.data(), r.cfg);
  std::cerr.rdbuf(old);
  r.err = captured.str();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return r;
}

} // namespace

TEST_CASE("config: ca without verify_peer turns verify_peer on, as --ca does") {
  auto c = parse_listener("ca = \"/etc/warren/ca.pem\"\n");
  auto& l = only_listener(c);
  CHECK(l.ca_file == "/etc/warren/ca.pem");
  CHECK(l.verify_peer);
}

TEST_CASE("config: ca with verify_peer = false loads the CAs without asking for a client certificate") {
  auto c = parse_listener("ca = \"/etc/warren/ca.pem\"\nverify_peer = false\n");
  auto& l = only_listener(c);
  CHECK(l.ca_file == "/etc/warren/ca.pem");
  CHECK_FALSE(l.verify_peer);
  CHECK(validation_error(c).empty());
}

TEST_CASE("config: neither ca nor verify_peer (or an empty ca): no mTLS") {
  for (const char* body : {"", "ca = \"\"\n"}) {
    INFO(body);
    auto c = parse_listener(body);
    CHECK_FALSE(only_listener(c).verify_peer);
    CHECK(validation_error(c).empty());
  }
  CHECK_FALSE(only_listener(gw::default_config()).verify_peer);
  CHECK(validation_error(gw::default_config()).empty());
}

TEST_CASE("config: verify_peer = true without ca is an error naming the listener and the keys") {
  auto c = parse_listener("verify_peer = true\n");
  CHECK(only_listener(c).verify_peer);
  auto err = validation_error(c);
  CHECK(err.find("listener devices") != std::string::npos);
  CHECK(err.find("verify_peer") != std::string::npos);
  CHECK(err.find("ca") != std::string::npos);
  // With both it is fine; a plain TCP listener has no TLS to verify with.
  CHECK(validation_error(parse_listener("verify_peer = true\nca = \"ca.pem\"\n")).empty());
  CHECK(validation_error(parse_listener("verify_peer = true\ntls = false\n")).empty());
}

TEST_CASE("load_config: verify_peer = true without ca exits 2 with the message; --ca supplies it") {
  const std::string toml = "[[listener]]\nname = \"mtls\"\nverify_peer = true\n";
  auto bad = load(toml);
  REQUIRE(bad.rc.has_value());
  CHECK(*bad.rc == 2);
  CHECK(bad.err.find("listener mtls") != std::string::npos);
  CHECK(bad.err.find("verify_peer = true needs ca") != std::string::npos);

  auto ok = load(toml, {"--ca", "/etc/warren/ca.pem"});
  CHECK_FALSE(ok.rc.has_value());
  CHECK(ok.err.empty());
  auto& l = only_listener(ok.cfg);
  CHECK(l.verify_peer);
  CHECK(l.ca_file == "/etc/warren/ca.pem");
}

TEST_CASE("load_config: --ca turns verify_peer on over the file's verify_peer = false") {
  auto r = load("[[listener]]\nname = \"mtls\"\nca = \"a.pem\"\nverify_peer = false\n", {"--ca", "b.pem"});
  CHECK_FALSE(r.rc.has_value());
  auto& l = only_listener(r.cfg);
  CHECK(l.ca_file == "b.pem");
  CHECK(l.verify_peer);
}

TEST_CASE("load_config: --amqp-url names the broker over the file's [backend.amqp] host and port") {
  auto r = load("[backend]\nkind = \"amqp\"\n[backend.amqp]\nhost = \"old\"\nport = 5673\nprefetch = 10\n",
                {"--amqp-url", "amqp://127.0.0.1:5680"});
  CHECK_FALSE(r.rc.has_value());
  auto& a = r.cfg.backend.amqp;
  CHECK(a["url"].value_or(std::string{}) == "amqp://127.0.0.1:5680");
  CHECK_FALSE(a.contains("host"));
  CHECK_FALSE(a.contains("port"));
  CHECK(a["prefetch"].value_or(int64_t{0}) == 10); // the rest of the section stays
}

TEST_CASE("gateway::start refuses verify_peer without ca too (a config built in code)") {
  auto cfg = test_config();
  cfg.listeners[0].tls = true;
  cfg.listeners[0].verify_peer = true;
  auto data_dir = cfg.data_dir;
  warren::set_log_level(spdlog::level::off);
  {
    gw::gateway g{std::move(cfg)};
    auto err = g.start();
    CHECK(err);
  }
  std::error_code ec;
  std::filesystem::remove_all(data_dir, ec);
}

TEST_CASE("config: identity_profile is unicode by default, strict on request, anything else an error") {
  CHECK(parse_listener("").listeners[0].session.identity_profile == warren::net::identity_profile::unicode);
  CHECK(parse_listener("identity_profile = \"strict\"\n").listeners[0].session.identity_profile ==
        warren::net::identity_profile::strict);
  std::string err;
  try {
    parse_listener("identity_profile = \"ascii\"\n");
  } catch (const std::exception& e) {
    err = e.what();
  }
  CHECK(err.find("identity_profile must be \"unicode\" or \"strict\"") != std::string::npos);
}

TEST_CASE("config: listener names are 1 to 64 letters, digits, '_', '-' or '.'") {
  for (const std::string& good : {std::string{"devices"}, std::string{"tls-8883"}, std::string{"plain_1"},
                                  std::string{"eu.west.a"}, std::string(64, 'x')}) {
    auto c = gw::default_config();
    c.listeners[0].name = good;
    CHECK_MESSAGE(validation_error(c).empty(), good);
  }
  for (const std::string& bad : {std::string{}, std::string(65, 'x'), std::string{"a\"b"}, std::string{"a b"},
                                 std::string{"back\\slash"}, std::string{"new\nline"}}) {
    auto c = gw::default_config();
    c.listeners[0].name = bad;
    auto err = validation_error(c);
    CHECK_MESSAGE(err.find("listener name") != std::string::npos, bad);
  }
  auto r = load("[[listener]]\nname = \"bad name\"\ntls = false\n");
  CHECK(r.rc == 2);
  CHECK(r.err.find("bad name") != std::string::npos);
}

TEST_CASE("config warnings: verify_peer on plain TCP; identify = cert without client certificates") {
  auto c = gw::default_config(); // one TLS listener, identify = cert, no ca
  auto ws = gw::config_warnings(c);
  REQUIRE(ws.size() == 1);
  CHECK(ws[0].find("identify = \"cert\" without client certificates") != std::string::npos);
  CHECK(ws[0].find("listener tls") != std::string::npos);

  c.listeners[0].ca_file = "ca.pem";
  c.listeners[0].verify_peer = true;
  CHECK(gw::config_warnings(c).empty()); // mTLS: cert identification works

  c.listeners[0].tls = false; // plain TCP: verify_peer ignored, and no certificates either
  ws = gw::config_warnings(c);
  REQUIRE(ws.size() == 2);
  CHECK(ws[0].find("verify_peer is set but the listener is plain TCP") != std::string::npos);
  CHECK(ws[1].find("identify = \"cert\"") != std::string::npos);

  c.listeners[0].verify_peer = false;
  c.listeners[0].session.identify = gw::identify_mode::none;
  CHECK(gw::config_warnings(c).empty());
}

TEST_CASE("config: sched_batch is on unless [gateway] turns it off") {
  CHECK(gw::default_config().sched_batch);
  CHECK(gw::parse_config("[gateway]\nio_threads = 1\n", "config_test").sched_batch);
  CHECK_FALSE(gw::parse_config("[gateway]\nsched_batch = false\n", "config_test").sched_batch);
  CHECK_THROWS_AS(gw::parse_config("[gateway]\nsched_batch = 3\n", "config_test"), std::runtime_error);
}

TEST_CASE("config: [admin] limits, token, token_file and TLS") {
  auto c =
      gw::parse_config("[admin]\nbody_limit = 4096\nmax_connections = 8\nmax_requests = 3\nidle_timeout = "
                       "\"2s\"\nread_timeout = \"3s\"\ntoken = \"abc\"\ncert_file = \"c.pem\"\nkey_file = "
                       "\"k.pem\"\n",
                       "config_test");
  CHECK(c.admin.body_limit == 4096);
  CHECK(c.admin.max_connections == 8);
  CHECK(c.admin.max_requests == 3);
  CHECK(c.admin.idle_timeout == std::chrono::seconds(2));
  CHECK(c.admin.read_timeout == std::chrono::seconds(3));
  CHECK(c.admin.token == "abc");
  CHECK(c.admin.cert_file == "c.pem");
  CHECK(validation_error(c).empty());

  auto file = std::filesystem::temp_directory_path() / ("warren-token-" + std::to_string(::getpid()));
  std::ofstream{file} << "from-file \r\nsecond line\n";
  auto f = gw::parse_config("[admin]\ntoken_file = \"" + file.string() + "\"\n", "config_test");
  CHECK(f.admin.token == "from-file");
  std::filesystem::remove(file);
  CHECK_THROWS_AS(gw::parse_config("[admin]\ntoken_file = \"" + file.string() + "\"\n", "config_test"),
                  std::runtime_error);

  auto bad = gw::default_config();
  bad.admin.cert_file = "c.pem";
  CHECK(validation_error(bad).find("both cert_file and key_file") != std::string::npos);
  bad = gw::default_config();
  bad.admin.token = "has space";
  CHECK(validation_error(bad).find("printable ASCII") != std::string::npos);
  bad = gw::default_config();
  bad.admin.body_limit = 0;
  CHECK(validation_error(bad).find("must be positive") != std::string::npos);
}
