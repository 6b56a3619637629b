// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/time.hpp"

#include <cerrno>
#include <ctime>

namespace amp::metal {

std::uint64_t monotonic_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000U + static_cast<std::uint64_t>(ts.tv_nsec);
}

void sleep_ns(std::uint64_t ns) noexcept {
  // Sleep until an absolute deadline so that signals (EINTR) do not stretch or shorten the sleep.
  const std::uint64_t deadline = deadline_after(ns);
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(deadline / 1'000'000'000U);
  ts.tv_nsec = static_cast<long>(deadline % 1'000'000'000U);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

}  // namespace amp::metal
