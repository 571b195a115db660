// warren::net listener over TLS: versions, mTLS, bad and silent clients.
#include "net_support.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <string_view>
#include <vector>

using namespace net_test;

namespace {
net::listener_options tls_opts(bool mtls = false) {
  net::listener_options o;
  o.tls = server_tls(mtls);
  return o;
}
} // namespace

TEST_CASE("TLS 1.2 and TLS 1.3 echo") {
  fixture f{tls_opts()};
  {
    client c{f.port, client_tls(TLS1_2_VERSION)};
    REQUIRE(c.handshake());
    c.send("whoami\nhello\n");
    CHECK(c.read_line() == "TLSv1.2|");
    CHECK(c.read_line() == "hello");
  }
  {
    client c{f.port, client_tls()};
    REQUIRE(c.handshake());
    c.send("whoami\nhello\n");
    CHECK(c.read_line() == "TLSv1.3|");
    CHECK(c.read_line() == "hello");
  }
  CHECK(f.counters().handshake_failures() == 0);
}

TEST_CASE("TLS 1.3 KeyUpdate mid-stream: the server updates its keys when asked and the echo goes on") {
  fixture f{tls_opts()};
  client c{f.port, client_tls()};
  // Counts the KeyUpdate messages the client receives (handshake message type 24).
  static int key_updates_in = 0;
  key_updates_in = 0;
  SSL_set_msg_callback(c.ssl(),
                       [](int write_p, int, int content_type, const void* buf, size_t len, SSL*, void*) {
                         if (!write_p && content_type == SSL3_RT_HANDSHAKE && len > 0 &&
                             static_cast<const unsigned char*>(buf)[0] == SSL3_MT_KEY_UPDATE)
                           ++key_updates_in;
                       });
  REQUIRE(c.handshake());
  c.send("before\n");
  CHECK(c.read_line() == "before");
  for (int i = 1; i <= 5; ++i) {
    // The update goes out ahead of the next write; "requested" obliges the server to
    // update its own sending keys too, which it must write without being asked to write.
    REQUIRE(SSL_key_update(c.ssl(), SSL_KEY_UPDATE_REQUESTED) == 1);
    c.send("after " + std::to_string(i) + "\n");
    CHECK(c.read_line() == "after " + std::to_string(i));
    CHECK(key_updates_in == i);
  }
  // Not requested: the server only changes its receiving keys, and sends no KeyUpdate.
  REQUIRE(SSL_key_update(c.ssl(), SSL_KEY_UPDATE_NOT_REQUESTED) == 1);
  c.send("quiet\n");
  CHECK(c.read_line() == "quiet");
  CHECK(key_updates_in == 5);
  CHECK(f.counters().handshake_failures() == 0);
}

TEST_CASE("mTLS: a client certificate is verified and its subject visible") {
  fixture f{tls_opts(true)};
  client c{f.port, client_tls(0, true)};
  REQUIRE(c.handshake());
  c.send("whoami\n");
  CHECK(c.read_line() == "TLSv1.3|client");
}

TEST_CASE("mTLS: a client without a certificate is rejected") {
  fixture f{tls_opts(true)};
  client c{f.port, client_tls()};
  c.handshake(); // TLS 1.3: the client may finish before the server checks
  c.send("hello\n");
  CHECK_FALSE(c.read_line().has_value());
  CHECK(f.eventually([](const auto& x) { return x.handshake_tls_error == 1 && x.active == 0; }));
  CHECK(f.counters().handshake_client_cert_required == 1);
  client ok{f.port, client_tls(0, true)};
  REQUIRE(ok.handshake());
  ok.send("hi\n");
  CHECK(ok.read_line() == "hi");
}

TEST_CASE("garbage instead of a ClientHello is a counted handshake failure") {
  fixture f{tls_opts()};
  client bad{f.port};
  bad.send("GET / HTTP/1.0\r\n\r\n");
  CHECK(bad.wait_closed());
  CHECK(f.eventually([](const auto& x) { return x.handshake_tls_error == 1 && x.active == 0; }));
  CHECK(f.counters().handshake_not_tls == 1);
  client c{f.port, client_tls()};
  REQUIRE(c.handshake());
  c.send("fine\n");
  CHECK(c.read_line() == "fine");
}

TEST_CASE("a client that never speaks is closed after handshake_timeout") {
  auto o = tls_opts();
  o.handshake_timeout = 200ms;
  fixture f{o};
  auto t0 = std::chrono::steady_clock::now();
  client silent{f.port};
  CHECK(silent.wait_closed());
  CHECK(std::chrono::steady_clock::now() - t0 >= 150ms);
  CHECK(f.eventually([](const auto& x) { return x.handshake_timeout == 1 && x.active == 0; }));
}

// -- the verified subject: what a client certificate's CN may be ------------------

namespace {

using pkey_ptr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using x509_ptr = std::unique_ptr<X509, decltype(&X509_free)>;
using name_ptr = std::unique_ptr<X509_NAME, decltype(&X509_NAME_free)>;

/// One RDN attribute of a subject: CN or O, with its ASN.1 string type.
struct attr {
  int nid;
  std::string value;
  int type = V_ASN1_UTF8STRING; ///< the bytes as is (no length or content checks)
  int set = 0;                  ///< 0: a new RDN; -1: added to the previous one (multi-valued)
};

name_ptr make_name(const std::vector<attr>& attrs) {
  name_ptr n{X509_NAME_new(), &X509_NAME_free};
  for (auto& a : attrs) {
    auto* bytes = reinterpret_cast<const unsigned char*>(a.value.data());
    REQUIRE(X509_NAME_add_entry_by_NID(n.get(), a.nid, a.type, bytes, static_cast<int>(a.value.size()), -1,
                                       a.set) == 1);
  }
  return n;
}

/// Certificates made with the OpenSSL C API at run time (CNs the openssl CLI cannot
/// write): a CA in a PEM file for the server's ca_file, and leaves it signs.
struct test_ca {
  pkey_ptr key{EVP_EC_gen("P-256"), &EVP_PKEY_free};
  x509_ptr cert{nullptr, &X509_free};
  std::filesystem::path dir;
  std::string file; ///< the CA certificate, PEM
  long serial = 1;

  test_ca() {
    REQUIRE(key);
    cert = sign(make_name({{NID_commonName, "warren-test-ca"}}).get(), key.get(), true);
    char tmpl[] = "/tmp/warren-net-ca-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    file = (dir / "ca.pem").string();
    FILE* f = std::fopen(file.c_str(), "w");
    REQUIRE(f != nullptr);
    PEM_write_X509(f, cert.get());
    std::fclose(f);
  }
  ~test_ca() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  /// A certificate for `subject` and `pub`, signed by this CA (self-signed when `ca`).
  x509_ptr sign(const X509_NAME* subject, EVP_PKEY* pub, bool ca = false) {
    x509_ptr x{X509_new(), &X509_free};
    X509_set_version(x.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x.get()), 86400);
    X509_set_pubkey(x.get(), pub);
    X509_set_subject_name(x.get(), subject);
    X509_set_issuer_name(x.get(), ca ? subject : X509_get_subject_name(cert.get()));
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, ca ? x.get() : cert.get(), x.get(), nullptr, nullptr, 0);
    auto add = [&](int nid, const char* value) {
      X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
      REQUIRE(e != nullptr);
      X509_add_ext(x.get(), e, -1);
      X509_EXTENSION_free(e);
    };
    add(NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    add(NID_key_usage, ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
    if (!ca)
      add(NID_ext_key_usage, "clientAuth");
    REQUIRE(X509_sign(x.get(), ca ? pub : key.get(), EVP_sha256()) > 0);
    return x;
  }
};

/// A client context presenting a new certificate for `subject`, signed by `ca`.
std::shared_ptr<asio::ssl::context> client_with_subject(test_ca& ca, const std::vector<attr>& subject) {
  pkey_ptr key{EVP_EC_gen("P-256"), &EVP_PKEY_free};
  REQUIRE(key);
  auto cert = ca.sign(make_name(subject).get(), key.get());
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->set_verify_mode(asio::ssl::verify_none);
  REQUIRE(SSL_CTX_use_certificate(ctx->native_handle(), cert.get()) == 1);
  REQUIRE(SSL_CTX_use_PrivateKey(ctx->native_handle(), key.get()) == 1);
  return ctx;
}

/// certificate_cn of a certificate for `subject`.
net::subject_cn cn_of(test_ca& ca, const std::vector<attr>& subject) {
  auto cert = ca.sign(make_name(subject).get(), ca.key.get());
  return net::certificate_cn(cert.get());
}

/// BMPString bytes (UTF-16BE) of an ASCII text.
std::string bmp(const std::string& ascii) {
  std::string out;
  for (char c : ascii) {
    out += '\0';
    out += c;
  }
  return out;
}

} // namespace

TEST_CASE("certificate_cn: one CN of up to 255 bytes without control characters, in UTF-8") {
  test_ca ca;
  CHECK(cn_of(ca, {{NID_commonName, "dev-42"}}).cn == "dev-42");
  CHECK(cn_of(ca, {{NID_organizationName, "warren"}, {NID_commonName, "dev-42"}}).cn == "dev-42");
  // Converted to UTF-8 from other string types: PrintableString, BMPString (UTF-16),
  // and a UTF8String with non-ASCII text.
  CHECK(cn_of(ca, {{NID_commonName, "dev-42", V_ASN1_PRINTABLESTRING}}).cn == "dev-42");
  CHECK(cn_of(ca, {{NID_commonName, bmp("dev-42"), V_ASN1_BMPSTRING}}).cn == "dev-42");
  CHECK(cn_of(ca, {{NID_commonName, "capteur-\xc3\xa9t\xc3\xa9"}}).cn == "capteur-\xc3\xa9t\xc3\xa9");
  // Three- and four-byte sequences are letters too (CJK, an emoji).
  CHECK(cn_of(ca, {{NID_commonName, "\xe8\xae\xbe\xe5\xa4\x87-\xf0\x9f\x93\xa1"}}).cn ==
        "\xe8\xae\xbe\xe5\xa4\x87-\xf0\x9f\x93\xa1");
  auto longest = cn_of(ca, {{NID_commonName, std::string(255, 'a')}});
  CHECK(longest.cn == std::string(255, 'a'));
  CHECK(longest.problem.empty());
  // No CN at all: no subject, and nothing to complain about.
  auto none = cn_of(ca, {{NID_organizationName, "warren"}});
  CHECK(none.cn.empty());
  CHECK(none.problem.empty());
  CHECK(net::certificate_cn(nullptr).cn.empty());
}

/// certificate_cn of a certificate whose CN's bytes were replaced after it was made:
/// an encoding OpenSSL itself would refuse to make (or to parse off the wire).
net::subject_cn cn_of_raw(test_ca& ca, int type, const std::string& bytes) {
  auto cert = ca.sign(make_name({{NID_commonName, "placeholder"}}).get(), ca.key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_ENTRY* e = X509_NAME_get_entry(name, X509_NAME_get_index_by_NID(name, NID_commonName, -1));
  REQUIRE(e != nullptr);
  REQUIRE(X509_NAME_ENTRY_set_data(e, type, reinterpret_cast<const unsigned char*>(bytes.data()),
                                   static_cast<int>(bytes.size())) == 1);
  return net::certificate_cn(cert.get());
}

TEST_CASE(
    "certificate_cn: two CNs, an empty one, a long one, control and format characters, bad encodings: none") {
  test_ca ca;
  std::string e_acute_128;
  for (int i = 0; i < 128; ++i)
    e_acute_128 += "\xc3\xa9"; // 128 characters, 256 bytes
  struct bad_case {
    const char* what;
    net::subject_cn got;
    const char* problem;
  };
  const bad_case cases[] = {
      {"two CNs", cn_of(ca, {{NID_commonName, "a"}, {NID_commonName, "b"}}), "more than one CN"},
      {"two CNs in one RDN", cn_of(ca, {{NID_commonName, "a"}, {NID_commonName, "b", V_ASN1_UTF8STRING, -1}}),
       "more than one CN"},
      {"empty", cn_of(ca, {{NID_commonName, ""}}), "CN is empty"},
      {"256 bytes", cn_of(ca, {{NID_commonName, std::string(256, 'a')}}), "longer than 255 bytes (256)"},
      {"128 characters, 256 bytes", cn_of(ca, {{NID_commonName, e_acute_128}}),
       "longer than 255 bytes (256)"},
      {"newline", cn_of(ca, {{NID_commonName, "dev-1\nINFO forged log line"}}),
       "control character 0x0a at byte 5"},
      {"NUL", cn_of(ca, {{NID_commonName, std::string("dev-1\0x", 7)}}), "control character 0x00 at byte 5"},
      {"DEL", cn_of(ca, {{NID_commonName, "dev\x7f"}}), "control character 0x7f at byte 3"},
      {"escape", cn_of(ca, {{NID_commonName, "\x1b[31mred"}}), "control character 0x1b at byte 0"},
      {"newline in a BMPString", cn_of(ca, {{NID_commonName, bmp("a\nb"), V_ASN1_BMPSTRING}}),
       "control character 0x0a at byte 1"},
      {"C1 control (NEL)", cn_of(ca, {{NID_commonName, "dev\xc2\x85x"}}),
       "control character U+0085 at byte 3"},
      {"line separator", cn_of(ca, {{NID_commonName, "dev-1\xe2\x80\xa8INFO"}}),
       "line separator U+2028 at byte 5"},
      {"right-to-left override",
       cn_of(ca, {{NID_commonName, "dev-\xe2\x80\xae"
                                   "1-ved"}}),
       "format character U+202E at byte 4"},
      {"zero-width space", cn_of(ca, {{NID_commonName, "dev\xe2\x80\x8b-1"}}),
       "format character U+200B at byte 3"},
      {"byte order mark",
       cn_of(ca, {{NID_commonName, "\xef\xbb\xbf"
                                   "dev-1"}}),
       "format character U+FEFF at byte 0"},
      {"invalid UTF-8", cn_of_raw(ca, V_ASN1_UTF8STRING, "dev-\xff"), "no UTF-8 form"},
      {"odd-length BMPString", cn_of_raw(ca, V_ASN1_BMPSTRING, std::string("\0a\0", 3)), "no UTF-8 form"},
  };
  for (auto& c : cases) {
    INFO(c.what << ": " << c.got.problem);
    CHECK(c.got.cn.empty());
    CHECK(c.got.problem.find(c.problem) != std::string::npos);
  }
}

TEST_CASE("mTLS: a CN that is no usable identity leaves verified_subject empty, logged once per "
          "connection at warn") {
  test_ca ca;
  auto o = tls_opts();
  o.tls->ca_file = ca.file;
  o.tls->verify_peer = true;
  fixture f{o};
  captured_log log; // after the fixture: it sets the level to critical
  struct conn {
    const char* what;
    std::vector<attr> subject;
    const char* whoami;
    const char* logged; ///< nullptr: nothing logged
  };
  const conn conns[] = {
      {"a plain CN", {{NID_commonName, "dev-1"}}, "TLSv1.3|dev-1", nullptr},
      {"a UTF-8 CN",
       {{NID_commonName, "capteur-\xc3\xa9t\xc3\xa9"}},
       "TLSv1.3|capteur-\xc3\xa9t\xc3\xa9",
       nullptr},
      {"a BMPString CN", {{NID_commonName, bmp("dev-2"), V_ASN1_BMPSTRING}}, "TLSv1.3|dev-2", nullptr},
      {"no CN", {{NID_organizationName, "warren"}}, "TLSv1.3|", nullptr},
      {"a newline",
       {{NID_commonName, "dev-1\nforged"}},
       "TLSv1.3|",
       "CN contains control character 0x0a at byte 5 (CN \"dev-1\\x0aforged\")"},
      {"two CNs", {{NID_commonName, "dev-1"}, {NID_commonName, "dev-2"}}, "TLSv1.3|", "more than one CN"},
      {"256 bytes",
       {{NID_commonName, std::string(256, 'x')}},
       "TLSv1.3|",
       "CN is longer than 255 bytes (256)"},
      {"empty", {{NID_commonName, ""}}, "TLSv1.3|", "CN is empty"},
  };
  std::size_t warned = 0;
  for (auto& c : conns) {
    INFO(std::string{c.what});
    client cl{f.port, client_with_subject(ca, c.subject)};
    REQUIRE(cl.handshake());
    cl.send("whoami\n");
    CHECK(cl.read_line() == std::string{c.whoami});
    if (c.logged != nullptr) {
      ++warned;
      // Logged on the io loop before the endpoint got the subject: already there.
      auto lines = log.lines_with("no usable subject");
      CHECK(lines.size() == warned);
      CHECK(log.lines_with(c.logged).size() == 1);
      CHECK(lines.back().rfind("warning TLS peer 127.0.0.1:", 0) == 0);
      CHECK(lines.back().find('\n') == lines.back().size() - 1); // the formatter's end of line only
    }
  }
  CHECK(log.lines_with("no usable subject").size() == warned);
  CHECK(f.counters().handshake_failures() == 0);
}
