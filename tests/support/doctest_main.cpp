// The main() of every doctest executable. Writing to a socket the peer already
// closed must fail that write (EPIPE), not kill the test process: clients in the
// tests (raw OpenSSL, pipes to openssl s_client) write after the server may have
// closed on purpose.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <csignal>

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  return doctest::Context(argc, argv).run();
}
