#pragma once
// Replaces the global operator new/delete with versions that count allocations, so
// a test can assert that a code path allocates nothing. Replacing them is allowed in
// a program: include this header in exactly one translation unit of a test binary.

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace warren_test {
inline std::atomic<std::size_t> allocations{0};
} // namespace warren_test

void* operator new(std::size_t n) {
  warren_test::allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n))
    return p;
  throw std::bad_alloc();
}
// GCC's -fsanitize=thread build misreads these as new/free mismatches.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
#pragma GCC diagnostic pop
