// Command-line options of warren-loadgen: what to run, against what, how hard and for how long.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <asio/ip/address.hpp>

namespace warren::loadgen {

enum class Workload { churn, stream, idle };
enum class Codec { line, frame };
enum class TlsVersion { any, v12, v13 };

struct Options {
  Workload workload = Workload::churn;

  // Target (loopback only).
  std::string host = "127.0.0.1";
  asio::ip::address address; // parsed and checked form of host
  std::uint16_t port = 0;
  unsigned source_addrs = 64; // bind to 127.0.0.1..127.0.0.N in turn; 0 = let the kernel choose

  // Wire.
  Codec codec = Codec::line;
  std::size_t size = 32; // message payload bytes
  unsigned window = 10;  // stream: messages in flight per connection

  // TLS.
  bool tls = false;
  TlsVersion tls_version = TlsVersion::any;
  bool tls_resume = false;
  bool tls_verify = false;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::string sni;
  std::string ciphers;      // TLS <= 1.2 cipher list
  std::string ciphersuites; // TLS 1.3 suites

  // Pace.
  double rate = 0;      // connections/s at the end of the ramp; 0 = as fast as possible
  double ramp_from = 0; // connections/s at the start of the ramp
  double ramp = 0;      // seconds of linear ramp from ramp_from to rate
  std::uint64_t max_inflight = 1000;
  std::optional<std::uint64_t> connections; // cap on connections opened (churn: attempts)

  // Time.
  double duration = 10;
  double drain = 5; // churn: grace after duration for in-flight attempts
  double connect_timeout = 5;
  double handshake_timeout = 5;
  double timeout = 5;       // response (echo) timeout
  double ping_interval = 0; // idle + frame: send PING every N s (0 = never)

  // Devices (for identify = "first_message").
  std::string device_id_prefix; // non-empty: connection n sends "<prefix><n>" as its first line
  std::uint64_t device_id_start = 0;
  std::string connect_log; // file: one line per established connection (id, connect start, ready)

  // Process.
  unsigned threads = 1;
  bool quiet = false;
  bool linger0 = false;
  std::string tag;
};

// Parses argv into options. On --help or a bad flag, prints to stdout/stderr and returns the exit code
// in *exit_code (and std::nullopt).
std::optional<Options> parse_options(int argc, char** argv, int* exit_code);

// Whether an address is loopback (127.0.0.0/8 or ::1): the only targets this machine allows.
bool is_loopback(const asio::ip::address& a);

const char* to_string(Workload w);
const char* to_string(Codec c);
const char* to_string(TlsVersion v);

} // namespace warren::loadgen
