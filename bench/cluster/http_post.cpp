// warren-http-post: POST /v1/devices/{id}/messages to a gateway's admin API as fast as possible or at a
// fixed offered rate, over C keep-alive connections (one thread each; reconnects when the server
// closes, cpp-httplib closes after 5 requests by default).
//
//   http_post <port> <ids-file> <connections> <seconds> [rate]
//
// Ids are taken round robin from the file (first word of each line). Each body is
// "t=<CLOCK_MONOTONIC ns> http", so warren-loadgen --device-id-prefix measures the push latency at the
// device. Latency here is from the request's scheduled send time (rate mode; no coordinated omission)
// or actual send time (max mode) to the end of the response. Prints one line:
//   http sent=N status_202=N status_404=N other=N errors=N rate=R/s p50=ms p99=ms max=ms
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace {

int64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void sleep_until_ns(int64_t t) {
  timespec ts{time_t(t / 1000000000), long(t % 1000000000)};
  while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) != 0) {
  }
}

int dial(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

struct Result {
  uint64_t sent = 0, s202 = 0, s404 = 0, other = 0, errors = 0;
  std::vector<double> lat_ms;
};

// The admin server (cpp-httplib 0.11, no TCP_NODELAY) writes a response's headers and body in two
// writes: with Nagle on its side and delayed ACKs on ours, every request after the first on a
// keep-alive connection would wait ~40 ms for our ACK. So this client ACKs at once (TCP_QUICKACK is
// reset by the kernel: set before every read).
void quickack(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

// One request/response on fd; returns the status (0: I/O error). Sets close_after.
int exchange(int fd, const std::string& req, std::string& buf, bool& close_after) {
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != ssize_t(req.size()))
    return 0;
  buf.clear();
  size_t header_end = std::string::npos;
  char tmp[4096];
  while (header_end == std::string::npos) {
    quickack(fd);
    ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0)
      return 0;
    buf.append(tmp, size_t(n));
    header_end = buf.find("\r\n\r\n");
  }
  int status = std::atoi(buf.c_str() + 9);
  size_t len = 0;
  std::string head = buf.substr(0, header_end);
  for (auto& c : head)
    c = char(std::tolower(c));
  if (auto p = head.find("content-length:"); p != std::string::npos)
    len = std::strtoull(head.c_str() + p + 15, nullptr, 10);
  close_after = head.find("connection: close") != std::string::npos;
  while (buf.size() < header_end + 4 + len) {
    quickack(fd);
    ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0)
      return 0;
    buf.append(tmp, size_t(n));
  }
  return status;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: http_post <port> <ids-file> <connections> <seconds> [rate]\n");
    return 2;
  }
  const uint16_t port = uint16_t(std::atoi(argv[1]));
  std::vector<std::string> ids;
  {
    std::ifstream in{argv[2]};
    std::string line;
    while (std::getline(in, line)) {
      if (auto sp = line.find(' '); sp != std::string::npos)
        line.resize(sp);
      if (!line.empty())
        ids.push_back(line);
    }
  }
  const unsigned conns = unsigned(std::atoi(argv[3]));
  const double seconds = std::atof(argv[4]);
  const double rate = argc > 5 ? std::atof(argv[5]) : 0;
  const int64_t t0 = now_ns() + 10000000;
  const int64_t t_end = t0 + int64_t(seconds * 1e9);
  std::vector<Result> res(conns);
  std::vector<std::thread> th;
  for (unsigned c = 0; c < conns; ++c)
    th.emplace_back([&, c] {
      auto& r = res[c];
      r.lat_ms.reserve(size_t(rate > 0 ? rate * seconds / conns + 16 : 1 << 20));
      const int64_t interval = rate > 0 ? int64_t(1e9 * conns / rate) : 0;
      int64_t sched = t0 + (rate > 0 ? interval * c / conns : 0);
      size_t k = c;
      int fd = -1;
      std::string buf, req;
      sleep_until_ns(t0);
      for (;;) {
        if (rate > 0) {
          if (sched >= t_end)
            break;
          sleep_until_ns(sched);
        } else if (now_ns() >= t_end) {
          break;
        }
        if (fd < 0 && (fd = dial(port)) < 0) {
          ++r.errors;
          sched += interval;
          continue;
        }
        const std::string& id = ids[k % ids.size()];
        k += conns;
        const int64_t start = rate > 0 ? sched : now_ns();
        const std::string body = "t=" + std::to_string(now_ns()) + " http";
        req = "POST /v1/devices/" + id +
              "/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + std::to_string(body.size()) +
              "\r\n\r\n" + body;
        bool close_after = false;
        int status = exchange(fd, req, buf, close_after);
        const int64_t end = now_ns();
        ++r.sent;
        if (status == 0) {
          ++r.errors;
          ::close(fd);
          fd = -1;
        } else {
          if (status == 202)
            ++r.s202;
          else if (status == 404)
            ++r.s404;
          else
            ++r.other;
          r.lat_ms.push_back(double(end - start) / 1e6);
          if (close_after) {
            ::close(fd);
            fd = -1;
          }
        }
        sched += interval;
      }
      if (fd >= 0)
        ::close(fd);
    });
  for (auto& t : th)
    t.join();
  const double took = double(std::max(now_ns(), t_end) - t0) / 1e9;
  Result all;
  for (auto& r : res) {
    all.sent += r.sent;
    all.s202 += r.s202;
    all.s404 += r.s404;
    all.other += r.other;
    all.errors += r.errors;
    all.lat_ms.insert(all.lat_ms.end(), r.lat_ms.begin(), r.lat_ms.end());
  }
  std::sort(all.lat_ms.begin(), all.lat_ms.end());
  auto pct = [&](double p) {
    if (all.lat_ms.empty())
      return -1.0;
    return all.lat_ms[std::min(all.lat_ms.size() - 1, size_t(p / 100 * double(all.lat_ms.size() - 1) + 0.5))];
  };
  std::printf("http sent=%llu status_202=%llu status_404=%llu other=%llu errors=%llu rate=%.0f/s p50=%.3f "
              "p99=%.3f max=%.3f\n",
              static_cast<unsigned long long>(all.sent), static_cast<unsigned long long>(all.s202),
              static_cast<unsigned long long>(all.s404), static_cast<unsigned long long>(all.other),
              static_cast<unsigned long long>(all.errors), double(all.s202) / took, pct(50), pct(99),
              all.lat_ms.empty() ? -1.0 : all.lat_ms.back());
  return 0;
}
