// SPDX-License-Identifier: BSD-3-Clause
#include "trace.hpp"

#include <atomic>

namespace amp::firmware::trace {

namespace {

// The linker script places .amp_trace at AMP_BOARD_TRACE_DA, the address the resource table declares. It is
// a loaded section (zeros in the image), so a host that loads the image sees an empty trace at once.
__attribute__((section(".amp_trace"), used, aligned(8))) char g_buffer[kSize] = {};
std::size_t g_length = 0;
std::size_t g_dropped = 0;

// Byte stores the compiler must make (the host reads them) and cannot fold into a library call.
void put(std::size_t at, char c) noexcept {
  static_cast<volatile char*>(g_buffer)[at] = c;
}

void append(std::string_view line, std::size_t limit) noexcept {
  std::size_t at = g_length;
  // Room for the text, its newline and the NUL after it, below `limit`.
  if (at + 2 > limit) return;
  const std::size_t room = limit - at - 2;
  const std::size_t n = line.size() < room ? line.size() : room;
  for (std::size_t i = 0; i < n; ++i) put(at + i, line[i]);
  at += n;
  put(at + 1, '\0');  // the new end first: the text the host sees is always terminated
  put(at, '\n');
  ++at;
  std::atomic_signal_fence(std::memory_order_release);
  g_length = at;
}

}  // namespace

const char* buffer() noexcept {
  return g_buffer;
}

std::string_view text() noexcept {
  return {g_buffer, g_length};
}

void clear() noexcept {
  for (std::size_t i = 0; i < kSize; ++i) put(i, '\0');
  g_length = 0;
  g_dropped = 0;
}

void write_line(std::string_view line) noexcept {
  const std::size_t limit = kSize - kFaultReserve;
  if (g_length + line.size() + 2 > limit) {
    ++g_dropped;
    return;
  }
  append(line, limit);
}

void write_fault_line(std::string_view line) noexcept {
  append(line, kSize);
}

std::size_t dropped() noexcept {
  return g_dropped;
}

}  // namespace amp::firmware::trace
