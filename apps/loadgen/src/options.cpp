#include "options.hpp"

#include <iostream>
#include <map>

#include <CLI/CLI.hpp>

namespace warren::loadgen {

bool is_loopback(const asio::ip::address& a) {
  if (a.is_v4())
    return (a.to_v4().to_uint() >> 24) == 127;
  return a.to_v6().is_loopback();
}

const char* to_string(Workload w) {
  switch (w) {
    case Workload::churn:
      return "churn";
    case Workload::stream:
      return "stream";
    case Workload::idle:
      return "idle";
  }
  return "?";
}

const char* to_string(Codec c) {
  return c == Codec::line ? "line" : "frame";
}

const char* to_string(TlsVersion v) {
  switch (v) {
    case TlsVersion::any:
      return "any";
    case TlsVersion::v12:
      return "1.2";
    case TlsVersion::v13:
      return "1.3";
  }
  return "?";
}

std::optional<Options> parse_options(int argc, char** argv, int* exit_code) {
  Options o;
  CLI::App app{"warren-loadgen: a load generator acting as many Warren devices.\n"
               "Workloads: churn (connect, [TLS], one echo, close), stream (C connections x W messages in "
               "flight), idle (hold N connections open). Targets must be loopback."};
  app.option_defaults()->always_capture_default();

  const std::map<std::string, Workload> workloads{
      {"churn", Workload::churn}, {"stream", Workload::stream}, {"idle", Workload::idle}};
  const std::map<std::string, Codec> codecs{{"line", Codec::line}, {"frame", Codec::frame}};
  const std::map<std::string, TlsVersion> versions{
      {"any", TlsVersion::any}, {"1.2", TlsVersion::v12}, {"1.3", TlsVersion::v13}};

  std::string workload, codec = "line", tls_version = "any";
  app.add_option("workload", workload, "churn | stream | idle")
      ->required()
      ->check(CLI::IsMember({"churn", "stream", "idle"}));

  auto* target = "Target";
  app.add_option("--host", o.host, "Target address: 127.0.0.0/8, ::1 or localhost")->group(target);
  app.add_option("-p,--port", o.port, "Target port")->required()->group(target);
  app.add_option("--source-addrs", o.source_addrs,
                 "Bind each connection to 127.0.0.1..127.0.0.N in turn (IPv4 only; 0 = no bind)")
      ->check(CLI::Range(0u, 254u))
      ->group(target);

  auto* wire = "Wire";
  app.add_option("--codec", codec, "line | frame")->check(CLI::IsMember({"line", "frame"}))->group(wire);
  app.add_option("-s,--size", o.size, "Message payload size in bytes")
      ->check(CLI::Range(std::size_t{1}, std::size_t{16} << 20))
      ->group(wire);
  app.add_option("-w,--window", o.window, "stream: messages kept in flight per connection")
      ->check(CLI::Range(1u, 1000000u))
      ->group(wire);

  auto* tls = "TLS";
  app.add_flag("--tls", o.tls, "Use TLS (default: plain TCP)")->group(tls);
  app.add_option("--tls-version", tls_version, "any (1.2 or 1.3) | 1.2 | 1.3")
      ->check(CLI::IsMember({"any", "1.2", "1.3"}))
      ->group(tls);
  app.add_flag("--tls-resume", o.tls_resume,
               "Resume TLS sessions (per io thread, last session); default: full handshake every time")
      ->group(tls);
  app.add_flag("--tls-verify", o.tls_verify, "Verify the server certificate against --ca-file")->group(tls);
  app.add_option("--ca-file", o.ca_file, "CA bundle (PEM) for --tls-verify")
      ->check(CLI::ExistingFile)
      ->group(tls);
  app.add_option("--cert", o.cert_file, "Client certificate (PEM) for mutual TLS")
      ->check(CLI::ExistingFile)
      ->group(tls);
  app.add_option("--key", o.key_file, "Client private key (PEM) for mutual TLS")
      ->check(CLI::ExistingFile)
      ->group(tls);
  app.add_option("--sni", o.sni, "Server name sent in SNI (and checked with --tls-verify)")->group(tls);
  app.add_option("--ciphers", o.ciphers, "OpenSSL cipher list for TLS 1.2")->group(tls);
  app.add_option("--ciphersuites", o.ciphersuites, "OpenSSL ciphersuites for TLS 1.3")->group(tls);

  auto* pace = "Pace";
  app.add_option("-r,--rate", o.rate, "Target new connections/s after the ramp (0 = as fast as possible)")
      ->check(CLI::NonNegativeNumber)
      ->group(pace);
  app.add_option("--ramp", o.ramp, "Seconds of linear ramp from --ramp-from to --rate")
      ->check(CLI::NonNegativeNumber)
      ->group(pace);
  app.add_option("--ramp-from", o.ramp_from, "Connections/s at the start of the ramp")
      ->check(CLI::NonNegativeNumber)
      ->group(pace);
  app.add_option("--max-inflight", o.max_inflight,
                 "Bound on connection attempts in progress (whole process); with --rate, launches due "
                 "while at the bound are skipped and counted")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{10000000}))
      ->group(pace);
  app.add_option("-n,--connections", o.connections,
                 "churn: total attempts (stop when done); stream/idle: connections to open "
                 "(default 10 for stream, 1000 for idle)")
      ->group(pace);

  auto* time = "Time";
  app.add_option("-d,--duration", o.duration, "Run time in seconds (always bounded)")
      ->check(CLI::Range(0.001, 86400.0))
      ->group(time);
  app.add_option("--drain", o.drain, "churn: seconds granted to in-flight attempts after --duration")
      ->check(CLI::Range(0.0, 600.0))
      ->group(time);
  app.add_option("--connect-timeout", o.connect_timeout, "TCP connect timeout, seconds")
      ->check(CLI::Range(0.001, 600.0))
      ->group(time);
  app.add_option("--handshake-timeout", o.handshake_timeout, "TLS handshake timeout, seconds")
      ->check(CLI::Range(0.001, 600.0))
      ->group(time);
  app.add_option("-t,--timeout", o.timeout, "Echo (response) timeout, seconds")
      ->check(CLI::Range(0.001, 600.0))
      ->group(time);
  app.add_option("--ping-interval", o.ping_interval,
                 "idle with --codec frame: send a PING every N seconds and expect the PONG (0 = off)")
      ->check(CLI::Range(0.0, 3600.0))
      ->group(time);

  auto* dev = "Devices";
  app.add_option("--device-id-prefix", o.device_id_prefix,
                 "Connection n sends \"<prefix><n>\" as its first line (for identify = \"first_message\"); "
                 "idle: lines the gateway pushes are then counted, not violations")
      ->group(dev);
  app.add_option("--device-id-start", o.device_id_start,
                 "First n of --device-id-prefix (n = start, start+1, ... in launch order)")
      ->group(dev);
  app.add_option("--connect-log", o.connect_log,
                 "Write one line per established connection: \"<device id or n> <connect start ns> <ready "
                 "ns>\" (CLOCK_MONOTONIC)")
      ->group(dev);

  auto* proc = "Process";
  app.add_option("-j,--threads", o.threads, "io threads, each with its own asio::io_context")
      ->check(CLI::Range(1u, 256u))
      ->group(proc);
  app.add_flag("-q,--quiet", o.quiet, "No progress line on stderr")->group(proc);
  app.add_flag("--linger0", o.linger0, "Close with RST (SO_LINGER 0) instead of FIN: no TIME_WAIT")
      ->group(proc);
  app.add_option("--tag", o.tag, "Free text copied into the JSON result (e.g. to tell split runs apart)")
      ->group(proc);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    *exit_code = app.exit(e);
    return std::nullopt;
  }

  o.workload = workloads.at(workload);
  o.codec = codecs.at(codec);
  o.tls_version = versions.at(tls_version);

  auto fail = [&](const std::string& msg) -> std::optional<Options> {
    std::cerr << "warren-loadgen: " << msg << "\n";
    *exit_code = 2;
    return std::nullopt;
  };

  std::string h = o.host;
  if (h == "localhost")
    h = "127.0.0.1";
  if (h.size() > 2 && h.front() == '[' && h.back() == ']')
    h = h.substr(1, h.size() - 2);
  asio::error_code ec;
  o.address = asio::ip::make_address(h, ec);
  if (ec)
    return fail("--host must be an IP literal or localhost: " + o.host);
  if (o.address.is_v6() && o.address.to_v6().is_v4_mapped())
    o.address = asio::ip::make_address_v4(asio::ip::v4_mapped, o.address.to_v6());
  if (!is_loopback(o.address))
    return fail("refusing non-loopback target " + o.host + " (only 127.0.0.0/8 and ::1 are allowed)");
  if (o.address.is_v6())
    o.source_addrs = 0;
  if (o.port == 0)
    return fail("--port must be > 0");
  if (o.codec == Codec::line && o.size == 0)
    return fail("--size must be > 0");
  if (o.tls_verify && o.ca_file.empty())
    return fail("--tls-verify needs --ca-file");
  if (o.cert_file.empty() != o.key_file.empty())
    return fail("--cert and --key go together");
  if ((o.tls_resume || o.tls_verify || !o.cert_file.empty() || !o.sni.empty()) && !o.tls)
    return fail("TLS options given without --tls");
  if (o.ping_interval > 0 && o.codec != Codec::frame)
    return fail("--ping-interval needs --codec frame");
  if (!o.device_id_prefix.empty() && o.codec != Codec::line)
    return fail("--device-id-prefix needs --codec line");
  if (!o.connections) {
    if (o.workload == Workload::stream)
      o.connections = 10;
    else if (o.workload == Workload::idle)
      o.connections = 1000;
  }
  if (o.connections && *o.connections == 0)
    return fail("--connections must be > 0");
  return o;
}

} // namespace warren::loadgen
