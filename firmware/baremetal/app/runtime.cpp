// SPDX-License-Identifier: BSD-3-Clause
// The little a freestanding C++ image needs besides libgcc: the mem* functions the compiler and amp's core
// call, and the C++ ABI's pure-virtual and static-destructor hooks. No C library is linked.
//
// The mem* functions use aligned word accesses when source and destination allow them, bytes otherwise: the
// firmware runs with the MMU off, where unaligned accesses fault on real cores. This file is built with
// -fno-builtin -fno-tree-loop-distribute-patterns, so that the loops are not turned back into calls to the
// functions they implement.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "board.hpp"

namespace {

bool words_aligned(const void* a, const void* b, std::size_t n) noexcept {
  return ((reinterpret_cast<std::uintptr_t>(a) | reinterpret_cast<std::uintptr_t>(b)) % 4 == 0) && n >= 4;
}

}  // namespace

extern "C" {

void* memcpy(void* dst, const void* src, std::size_t n) {
  auto* d = static_cast<unsigned char*>(dst);
  const auto* s = static_cast<const unsigned char*>(src);
  if (words_aligned(d, s, n)) {
    for (; n >= 4; n -= 4, d += 4, s += 4) {
      *static_cast<std::uint32_t*>(static_cast<void*>(d)) =
          *static_cast<const std::uint32_t*>(static_cast<const void*>(s));
    }
  }
  for (; n != 0; --n) *d++ = *s++;
  return dst;
}

void* memmove(void* dst, const void* src, std::size_t n) {
  auto* d = static_cast<unsigned char*>(dst);
  const auto* s = static_cast<const unsigned char*>(src);
  if (d == s || n == 0) return dst;
  if (d < s || d >= s + n) return memcpy(dst, src, n);
  // Overlapping with the destination above: backwards, byte by byte.
  while (n != 0) {
    --n;
    d[n] = s[n];
  }
  return dst;
}

void* memset(void* dst, int value, std::size_t n) {
  auto* d = static_cast<unsigned char*>(dst);
  const auto byte = static_cast<unsigned char>(value);
  for (; n != 0 && reinterpret_cast<std::uintptr_t>(d) % 4 != 0; --n) *d++ = byte;
  const std::uint32_t word = 0x01010101U * byte;
  for (; n >= 4; n -= 4, d += 4) *static_cast<std::uint32_t*>(static_cast<void*>(d)) = word;
  for (; n != 0; --n) *d++ = byte;
  return dst;
}

int memcmp(const void* a, const void* b, std::size_t n) {
  const auto* x = static_cast<const unsigned char*>(a);
  const auto* y = static_cast<const unsigned char*>(b);
  for (; n != 0; --n, ++x, ++y) {
    if (*x != *y) return *x < *y ? -1 : 1;
  }
  return 0;
}

void* memchr(const void* s, int c, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(s);
  const auto byte = static_cast<unsigned char>(c);
  for (; n != 0; --n, ++p) {
    if (*p == byte) return const_cast<unsigned char*>(p);
  }
  return nullptr;
}

std::size_t strlen(const char* s) {
  std::size_t n = 0;
  while (s[n] != '\0') ++n;
  return n;
}

// A pure virtual function called through a half-built or destroyed object: a bug, treated as a fault.
void __cxa_pure_virtual() {
  amp::firmware::firmware_fault("fault: pure virtual function called");
}

// Static objects register their destructors; the firmware never returns, so they never run.
void* __dso_handle = nullptr;
int __aeabi_atexit(void*, void (*)(void*), void*) {
  return 0;
}
int __cxa_atexit(void (*)(void*), void*, void*) {
  return 0;
}

}  // extern "C"
