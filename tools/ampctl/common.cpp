// SPDX-License-Identifier: BSD-3-Clause
#include "common.hpp"

#include <cstdio>

#include "amp/metal/linux/device.hpp"
#include "amp/rproc/elf.hpp"

namespace ampctl {

bool read_whole_file(const std::string& path, std::string& out) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  char buf[65536];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  const bool good = std::ferror(f) == 0;
  std::fclose(f);
  return good;
}

std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_address_range(std::string_view text) {
  // Numbers as sysfs prints them (0x-hex or decimal, nothing else: no sign, no spaces).
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto addr = amp::metal::parse_sysfs_number(text.substr(0, colon));
  auto size = amp::metal::parse_sysfs_number(text.substr(colon + 1));
  if (!addr || !size || *size == 0 || *addr + *size < *addr) return std::nullopt;
  return std::pair<std::uint64_t, std::uint64_t>{*addr, *size};
}

std::uint16_t host_machine() {
  namespace elf = amp::rproc::elf;
#if defined(__x86_64__)
  return elf::kMachineX86_64;
#elif defined(__aarch64__)
  return elf::kMachineAarch64;
#elif defined(__arm__)
  return elf::kMachineArm;
#elif defined(__riscv)
  return elf::kMachineRiscv;
#elif defined(__i386__)
  return elf::kMachine386;
#else
  return elf::kMachineNone;
#endif
}

}  // namespace ampctl
