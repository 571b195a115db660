// identify = cert end to end: a listener with mTLS required (configured from TOML, as
// an operator would), devices with client certificates made at run time by a test CA,
// the registry, the admin API, the local backend's subscribers and consumers.
#include "gw_support.hpp"

#include <warren/backend/control.hpp>
#include <warren/registry.hpp>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <stdexcept>

using namespace gw_test;
using json = nlohmann::json;

namespace {

/// A temp dir with two CAs and certificates they signed (openssl CLI, ECDSA P-256),
/// removed at the end of the test.
struct test_pki {
  struct leaf {
    std::string cert, key;
  };
  std::filesystem::path dir;
  std::string ca_a, ca_b; ///< CA certificates; the gateway trusts ca_a only
  leaf server;            ///< CN localhost, SAN 127.0.0.1, by ca_a
  leaf dev42;             ///< CN dev-42, by ca_a
  leaf dev42_reissued;    ///< CN dev-42, by ca_a, another key and serial
  leaf dev42_other_ca;    ///< CN dev-42, by ca_b
  leaf no_cn;             ///< O=warren-test, no CN, by ca_a
  leaf two_cn;            ///< CN dev-42 and CN dev-43, by ca_a

  test_pki() : dir(temp_dir("pki")) {
    try {
      ca_a = make_ca("ca-a");
      ca_b = make_ca("ca-b");
      server = make_leaf("server", "/CN=localhost", "ca-a", "serverAuth", "DNS:localhost,IP:127.0.0.1");
      dev42 = make_leaf("dev42", "/CN=dev-42", "ca-a", "clientAuth");
      dev42_reissued = make_leaf("dev42-reissued", "/CN=dev-42", "ca-a", "clientAuth");
      dev42_other_ca = make_leaf("dev42-other-ca", "/CN=dev-42", "ca-b", "clientAuth");
      no_cn = make_leaf("no-cn", "/O=warren-test", "ca-a", "clientAuth");
      two_cn = make_leaf("two-cn", "/CN=dev-42/CN=dev-43", "ca-a", "clientAuth");
    } catch (...) {
      remove();
      throw;
    }
  }
  ~test_pki() { remove(); }
  test_pki(const test_pki&) = delete;
  test_pki& operator=(const test_pki&) = delete;

private:
  int serial_ = 1;

  std::string path(const std::string& name) const { return (dir / name).string(); }
  void remove() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  static void sh(const std::string& cmd) {
    if (std::system((cmd + " >/dev/null 2>&1").c_str()) != 0)
      throw std::runtime_error("failed: " + cmd);
  }
  static constexpr const char* newkey = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

  std::string make_ca(const std::string& name) {
    sh(std::string{"openssl req -x509"} + newkey + " -days 1 -sha256 -subj /CN=warren-test-" + name +
       " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -keyout " +
       path(name + ".key") + " -out " + path(name + ".crt"));
    return path(name + ".crt");
  }

  leaf make_leaf(const std::string& name, const std::string& subject, const std::string& ca,
                 const char* usage, const std::string& san = {}) {
    leaf l{path(name + ".crt"), path(name + ".key")};
    auto ext = path(name + ".ext");
    std::string ext_text = "basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,digitalSignature\\n"
                           "extendedKeyUsage=" +
                           std::string{usage} + "\\n";
    if (!san.empty())
      ext_text += "subjectAltName=" + san + "\\n";
    sh("printf '" + ext_text + "' > " + ext);
    sh(std::string{"openssl req -new"} + newkey + " -subj " + subject + " -keyout " + l.key + " -out " +
       path(name + ".csr"));
    sh("openssl x509 -req -in " + path(name + ".csr") + " -CA " + path(ca + ".crt") + " -CAkey " +
       path(ca + ".key") + " -set_serial " + std::to_string(++serial_) + " -days 1 -sha256 -extfile " + ext +
       " -out " + l.cert);
    return l;
  }
};

/// The test config with its plain listener replaced by listener "mtls", read from TOML
/// as an operator would write it: mTLS required against ca_a, identify = cert.
/// `verify_peer`: the line for that key ("": absent, ca alone turns it on).
gw::config mtls_config(const test_pki& pki, const std::string& verify_peer = "verify_peer = true\n") {
  std::string toml = "[[listener]]\n"
                     "name = \"mtls\"\n"
                     "bind = \"127.0.0.1\"\n"
                     "port = 0\n"
                     "tls = true\n"
                     "identify = \"cert\"\n"
                     "gap_timeout = \"10m\"\n"; // no run reaches it: a held message fails the test
  toml += verify_peer;
  toml += "cert = \"" + pki.server.cert + "\"\n";
  toml += "key = \"" + pki.server.key + "\"\n";
  toml += "ca = \"" + pki.ca_a + "\"\n";
  auto parsed = gw::parse_config(toml, "mtls_test");
  auto cfg = test_config();
  cfg.listeners = parsed.listeners;
  REQUIRE(cfg.listeners.size() == 1);
  CHECK(cfg.listeners[0].verify_peer == (verify_peer.find("false") == std::string::npos));
  CHECK(cfg.listeners[0].session.identify == gw::identify_mode::cert);
  return cfg;
}

/// A device that trusts ca_a and presents `l` (or no certificate).
std::shared_ptr<asio::ssl::context> device_tls(const test_pki& pki, const test_pki::leaf* l,
                                               int max_version = 0) {
  client_tls_options o;
  o.ca_file = pki.ca_a;
  if (l != nullptr) {
    o.cert_file = l->cert;
    o.key_file = l->key;
  }
  o.max_version = max_version;
  return client_tls(o);
}

int post(running_gateway& g, const std::string& path, const std::string& body) {
  auto cli = g.http();
  auto res = cli.Post(path.c_str(), body, "application/octet-stream");
  return res ? res->status : -1;
}

net::listener_counters counters(running_gateway& g) {
  auto c = net::listener::counters(g->system(), "mtls");
  REQUIRE(c);
  return *c;
}

caf::actor device_session(running_gateway& g, const std::string& device_id) {
  return g->registry()->find(backend::address_kind::device, device_id);
}

} // namespace

TEST_CASE("mTLS, identify = cert: the verified CN is the device id in the registry, the admin API, "
          "device messages and backend messages") {
  test_pki pki;
  running_gateway g{mtls_config(pki)};
  collector col{g->hub()};
  device d{g.port("mtls"), device_tls(pki, &pki.dev42)};
  REQUIRE(d.handshake());
  REQUIRE(eventually([&] { return device_session(g, "dev-42") != nullptr; }));

  auto xs = g.sessions();
  REQUIRE(xs.size() == 1);
  auto conn_id = xs[0].connection_id;
  CHECK(xs[0].device_id == "dev-42");
  CHECK(xs[0].listener == "mtls");
  CHECK(xs[0].tls_version == "TLSv1.3");
  CHECK(g->registry()->devices() == 1);
  CHECK(device_session(g, "dev-42") == g->registry()->find(backend::address_kind::connection, conn_id));

  // GET /v1/connections lists it under its device id.
  auto res = g.http().Get("/v1/connections");
  REQUIRE(res);
  REQUIRE(res->status == 200);
  auto list = json::parse(res->body);
  REQUIRE(list.size() == 1);
  CHECK(list[0]["connection_id"] == conn_id);
  CHECK(list[0]["device_id"] == "dev-42");
  CHECK(list[0]["listener"] == "mtls");

  // Device -> backend: every line is a message (the id came from the certificate).
  d.send("temperature=21.5\nhumidity=40\n");
  REQUIRE(col.wait_for(2));
  auto got = col.snapshot();
  REQUIRE(got.size() == 2);
  for (std::size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i].device_id == "dev-42");
    CHECK(got[i].connection_id == conn_id);
    CHECK(got[i].from_device_seq == i + 1);
  }
  CHECK(got[0].payload == "temperature=21.5");
  CHECK(got[1].payload == "humidity=40");

  // Backend -> device by device id: straight to a local backend consumer, then through
  // the admin API (which uses the consumers too).
  auto consumer = warren::whereis(g->system(), backend::consumer_name(0));
  REQUIRE(consumer);
  bool delivered = false;
  {
    caf::scoped_actor self{g->system()};
    backend::to_device_message m{backend::address_kind::device, "dev-42", 1, "set interval=30"};
    self->request(consumer, caf::timespan{10s}, backend::deliver_atom::value, std::move(m))
        .receive([&](backend::delivered_atom) { delivered = true; },
                 [&](caf::error& err) { FAIL_CHECK("deliver failed: " << g->system().render(err)); });
  }
  CHECK(delivered);
  CHECK(d.read_line() == "set interval=30");
  CHECK(post(g, "/v1/devices/dev-42/messages?to_device_seq=2", "via admin") == 202);
  CHECK(d.read_line() == "via admin");
  CHECK(eventually([&] { return g->metrics()->messages_out.load() == 2; }));
  CHECK(g->metrics()->undeliverable.load() == 0);
  CHECK(g->metrics()->takeovers.load() == 0);
  CHECK(counters(g).handshake_tls_error == 0);
}

TEST_CASE("mTLS, identify = cert: a second connection with the same CN takes the device over") {
  test_pki pki;
  running_gateway g{mtls_config(pki)};
  collector col{g->hub()};
  device a{g.port("mtls"), device_tls(pki, &pki.dev42)};
  REQUIRE(a.handshake());
  REQUIRE(eventually([&] { return device_session(g, "dev-42") != nullptr; }));
  auto first = device_session(g, "dev-42");
  auto conn_a = g.sessions().at(0).connection_id;
  a.send("from-a\n");
  REQUIRE(col.wait_for(1));
  CHECK(col.snapshot()[0].connection_id == conn_a);
  CHECK(post(g, "/v1/devices/dev-42/messages?to_device_seq=1", "one") == 202);
  CHECK(a.read_line() == "one");

  // The same device again, with a re-issued certificate (same CN, same CA).
  device b{g.port("mtls"), device_tls(pki, &pki.dev42_reissued)};
  REQUIRE(b.handshake());
  CHECK(a.wait_closed());
  CHECK(a.close_reason() == asio::error::eof); // a clean close (TLS close_notify), not a reset
  REQUIRE(eventually([&] {
    auto s = device_session(g, "dev-42");
    return s && s != first && g.sessions().size() == 1;
  }));
  first = nullptr;
  auto xs = g.sessions();
  auto conn_b = xs.at(0).connection_id;
  CHECK(conn_b != conn_a);
  CHECK(xs[0].device_id == "dev-42");
  CHECK(g->registry()->devices() == 1);
  CHECK(g->metrics()->takeovers.load() == 1);
  CHECK(g->registry()->find(backend::address_kind::connection, conn_a) == nullptr);

  // Messages for dev-42 now reach b. Seq 2 follows seq 1 that went to a: the ordering
  // state was inherited (else it would wait for the 10-minute gap_timeout).
  CHECK(post(g, "/v1/devices/dev-42/messages?to_device_seq=2", "two") == 202);
  CHECK(b.read_line() == "two");
  CHECK(post(g, "/v1/devices/dev-42/messages", "three") == 202);
  CHECK(b.read_line() == "three");
  CHECK(g->metrics()->gap_skips.load() == 0);
  CHECK(g->metrics()->reordered.load() == 0);
  // b's messages reach the backend as dev-42's, numbered from 1 on the new connection.
  b.send("from-b\n");
  REQUIRE(col.wait_for(2));
  auto m = col.snapshot().at(1);
  CHECK(m.device_id == "dev-42");
  CHECK(m.connection_id == conn_b);
  CHECK(m.from_device_seq == 1);
  CHECK(m.payload == "from-b");
  CHECK(post(g, "/v1/connections/" + conn_a + "/messages", "x") == 404); // the old connection is gone
}

TEST_CASE("mTLS, identify = cert: no client certificate, or one from another CA, is refused; nothing "
          "registers and the device that owns the CN is untouched") {
  test_pki pki;
  running_gateway g{mtls_config(pki)};
  collector col{g->hub()};
  device owner{g.port("mtls"), device_tls(pki, &pki.dev42)};
  REQUIRE(owner.handshake());
  REQUIRE(eventually([&] { return device_session(g, "dev-42") != nullptr; }));
  auto owner_session = device_session(g, "dev-42");
  auto owner_conn = g.sessions().at(0).connection_id;

  struct attempt {
    const char* what;
    const test_pki::leaf* cert;
    uint64_t net::listener_counters::*reason;
  };
  const attempt attempts[] = {
      {"no client certificate", nullptr, &net::listener_counters::handshake_client_cert_required},
      {"CN dev-42 from another CA", &pki.dev42_other_ca, &net::listener_counters::handshake_bad_client_cert},
  };
  uint64_t failures = 0;
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    for (const auto& a : attempts) {
      INFO(a.what << (version == TLS1_2_VERSION ? ", TLS 1.2" : ", TLS 1.3"));
      auto before = counters(g).*a.reason;
      device d{g.port("mtls"), device_tls(pki, a.cert, version)};
      bool handshake_ok = d.handshake();
      // TLS 1.2: the server's refusal ends the client's handshake. TLS 1.3: the client
      // may finish first; the server's alert then ends the connection.
      if (version == TLS1_2_VERSION)
        CHECK_FALSE(handshake_ok);
      if (handshake_ok) {
        d.send("impostor\n");
        CHECK_FALSE(d.read_line().has_value());
      }
      ++failures;
      CHECK(eventually([&] {
        auto c = counters(g);
        return c.*a.reason == before + 1 && c.handshake_tls_error == failures && c.active == 1;
      }));
    }
  }

  // Nothing registered, no takeover: dev-42 still belongs to the owner.
  CHECK(g->registry()->connections() == 1);
  CHECK(g->registry()->devices() == 1);
  CHECK(device_session(g, "dev-42") == owner_session);
  CHECK(g->metrics()->sessions_opened.load() == 1);
  CHECK(g->metrics()->takeovers.load() == 0);
  auto c = counters(g);
  CHECK(c.handshake_client_cert_required == 2);
  CHECK(c.handshake_bad_client_cert == 2);
  CHECK(c.handshake_tls_error == 4);
  CHECK(c.accepted == 5);
  auto res = g.http().Get("/metrics");
  REQUIRE(res);
  CHECK(res->body.find("warren_listener_handshake_tls_error_total{listener=\"mtls\"} 4\n") !=
        std::string::npos);
  CHECK(res->body.find("warren_gateway_sessions_opened_total 1\n") != std::string::npos);
  CHECK(res->body.find("warren_gateway_takeovers_total 0\n") != std::string::npos);

  // Nothing the impostors sent reached the backend; the owner still works both ways.
  CHECK(col.snapshot().empty());
  CHECK(g->metrics()->messages_in.load() == 0);
  CHECK(post(g, "/v1/devices/dev-42/messages", "still yours") == 202);
  CHECK(owner.read_line() == "still yours");
  owner.send("owner\n");
  REQUIRE(col.wait_for(1));
  auto got = col.snapshot();
  REQUIRE(got.size() == 1);
  CHECK(got[0].payload == "owner");
  CHECK(got[0].device_id == "dev-42");
  CHECK(got[0].connection_id == owner_conn);
}

namespace {

/// A device whose verified certificate names no one device (`cert`): it connects, its
/// messages carry no device id, no device is registered, and it is reachable by
/// connection id only.
void connects_without_device_id(const test_pki::leaf test_pki::*cert) {
  test_pki pki;
  running_gateway g{mtls_config(pki)};
  collector col{g->hub()};
  device d{g.port("mtls"), device_tls(pki, &(pki.*cert))};
  REQUIRE(d.handshake());
  d.send("anonymous\n");
  REQUIRE(col.wait_for(1));
  auto m = col.snapshot().at(0);
  CHECK(m.device_id.empty());
  CHECK(m.payload == "anonymous");
  auto xs = g.sessions();
  REQUIRE(xs.size() == 1);
  CHECK(xs[0].device_id.empty());
  CHECK(xs[0].connection_id == m.connection_id);
  CHECK(g->registry()->devices() == 0);
  CHECK(post(g, "/v1/devices/dev-42/messages", "x") == 404);
  CHECK(post(g, "/v1/connections/" + m.connection_id + "/messages", "by connection") == 202);
  CHECK(d.read_line() == "by connection");
  CHECK(counters(g).handshake_tls_error == 0);
}

} // namespace

TEST_CASE("mTLS, identify = cert: a verified certificate without a CN connects without a device id") {
  connects_without_device_id(&test_pki::no_cn);
}

TEST_CASE("mTLS from TOML: ca without verify_peer requires client certificates (as --ca); "
          "verify_peer = false with ca does not ask for one") {
  test_pki pki;
  SUBCASE("ca alone: mTLS") {
    running_gateway g{mtls_config(pki, "")};
    device d{g.port("mtls"), device_tls(pki, &pki.dev42)};
    REQUIRE(d.handshake());
    REQUIRE(eventually([&] { return device_session(g, "dev-42") != nullptr; }));
    CHECK(g.sessions().at(0).device_id == "dev-42");
    device anonymous{g.port("mtls"), device_tls(pki, nullptr)};
    if (anonymous.handshake()) { // TLS 1.3: the server's alert may come after the client finished
      anonymous.send("hello\n");
      CHECK_FALSE(anonymous.read_line().has_value());
    }
    CHECK(eventually([&] { return counters(g).handshake_client_cert_required == 1; }));
    CHECK(g->registry()->connections() == 1);
  }
  SUBCASE("ca with verify_peer = false: no client certificate asked for, every device anonymous") {
    running_gateway g{mtls_config(pki, "verify_peer = false\n")};
    collector col{g->hub()};
    device with_cert{g.port("mtls"), device_tls(pki, &pki.dev42)};
    REQUIRE(with_cert.handshake());
    device without{g.port("mtls"), device_tls(pki, nullptr)};
    REQUIRE(without.handshake());
    with_cert.send("a\n");
    without.send("b\n");
    REQUIRE(col.wait_for(2));
    for (auto& m : col.snapshot())
      CHECK(m.device_id.empty());
    CHECK(g->registry()->devices() == 0);
    CHECK(counters(g).handshake_failures() == 0);
  }
}

TEST_CASE("/metrics: failed handshakes by reason, one series per listener and reason") {
  test_pki pki;
  running_gateway g{mtls_config(pki)};
  {
    device no_cert{g.port("mtls"), device_tls(pki, nullptr, TLS1_2_VERSION)};
    CHECK_FALSE(no_cert.handshake());
  }
  {
    device garbage{g.port("mtls")}; // plain TCP to a TLS listener
    garbage.send("GET / HTTP/1.0\r\n\r\n");
    CHECK(garbage.wait_closed());
  }
  {
    device other_ca{g.port("mtls"), device_tls(pki, &pki.dev42_other_ca, TLS1_2_VERSION)};
    CHECK_FALSE(other_ca.handshake());
  }
  REQUIRE(eventually([&] {
    auto c = counters(g);
    return c.handshake_tls_error == 3 && c.active == 0;
  }));
  auto res = g.http().Get("/metrics");
  REQUIRE(res);
  REQUIRE(res->status == 200);
  const auto& body = res->body;
  CHECK(body.find("# TYPE warren_listener_handshake_failures_total counter\n") != std::string::npos);
  const std::pair<const char*, int> expected[] = {
      {"timeout", 0},          {"peer_closed", 0},
      {"not_tls", 1},          {"unsupported_version", 0},
      {"no_shared_cipher", 0}, {"client_cert_required", 1},
      {"bad_client_cert", 1},  {"other", 0},
  };
  for (auto& [reason, n] : expected) {
    auto line = "warren_listener_handshake_failures_total{listener=\"mtls\",reason=\"" + std::string{reason} +
                "\"} " + std::to_string(n) + "\n";
    INFO(line);
    CHECK(body.find(line) != std::string::npos);
  }
  // One series per reason, and the existing totals are still there.
  std::size_t series = 0;
  for (auto at = body.find("\nwarren_listener_handshake_failures_total{"); at != std::string::npos;
       at = body.find("\nwarren_listener_handshake_failures_total{", at + 1))
    ++series;
  CHECK(series == std::size(expected));
  CHECK(body.find("warren_listener_handshake_tls_error_total{listener=\"mtls\"} 3\n") != std::string::npos);
  CHECK(body.find("warren_listener_handshake_timeout_total{listener=\"mtls\"} 0\n") != std::string::npos);
}

TEST_CASE("mTLS, identify = cert: a verified certificate with two CNs connects without a device id") {
  connects_without_device_id(&test_pki::two_cn); // neither dev-42 nor dev-43: it names no one device
}
