// SPDX-License-Identifier: BSD-3-Clause
// A program outside the amp tree, built against an installed amp.
#include <amp/metal/io_region.hpp>
#include <amp/metal/log.hpp>
#include <amp/metal/time.hpp>

#include <array>
#include <cstdio>

int main() {
  alignas(8) std::array<std::byte, 64> mem{};
  const amp::metal::IoRegion region(mem, 0x1000);
  if (region.store<std::uint32_t>(8, 0xfeedU) != amp::Status::kOk) return 1;
  auto off = region.offset_of(0x1008);
  auto value = region.load<std::uint32_t>(8);
  if (!off || *off != 8 || !value || *value != 0xfeedU) return 2;
  if (region.offset_of(0x2000).has_value()) return 3;
  if (amp::metal::monotonic_ns() == 0) return 4;
  std::array<char, 64> line{};
  (void)amp::metal::format(line, "amp consumer ok (%s)", amp::to_string(amp::Status::kOk));
  std::puts(line.data());
  return 0;
}
