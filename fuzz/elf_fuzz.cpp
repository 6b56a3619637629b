// SPDX-License-Identifier: BSD-3-Clause
// Fuzzes the ELF loader with arbitrary files, such as a corrupt or hostile firmware image. A file that parses
// is loaded (by p_paddr and by p_vaddr) into a fixed set of memory regions, each its own exactly-sized heap
// block so that ASan reports any write outside one. Checks that:
//  - every segment and the resource table reported by the image lie inside the input;
//  - segment(i), segments() and segment_count() agree;
//  - a failed load writes nothing; a successful one writes each segment's bytes and zeros where they belong
//    and nothing anywhere else.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

#include "amp/rproc/elf.hpp"
#include "fuzz_input.hpp"

namespace {

using amp::fuzz::check;

using amp::metal::DeviceAddress;
using amp::metal::IoRegion;
using amp::rproc::ElfImage;
using amp::rproc::ElfSegment;

constexpr std::byte kPattern{0xA5};

bool inside(std::span<const std::byte> part, std::span<const std::byte> whole) {
  if (part.empty()) return true;
  const auto* p = part.data();
  return p >= whole.data() && p <= whole.data() + whole.size() &&
         part.size() <= static_cast<std::size_t>(whole.data() + whole.size() - p);
}

// The remote's memory: adjacent windows (so that segments straddle them), a paged window, and windows at
// the top of the 32- and 64-bit address spaces.
struct Memory {
  std::vector<std::vector<std::byte>> blocks;
  std::vector<IoRegion> regions;
  std::vector<DeviceAddress> pages{0x20000300, 0x20000000, 0x20000100, 0x20000200};

  Memory() {
    const std::pair<std::size_t, DeviceAddress> plain[] = {
        {4096, 0}, {4096, 0x1000}, {256, 0x10000000}, {64, 0xFFFFFFC0}, {64, 0xFFFFFFFFFFFFFFC0}};
    blocks.reserve(6);
    for (const auto& [size, da] : plain) {
      blocks.emplace_back(size, kPattern);
      regions.emplace_back(blocks.back(), da);
    }
    blocks.emplace_back(1024, kPattern);
    auto paged = IoRegion::paged(blocks.back(), pages, 8);
    check(paged.has_value());
    regions.push_back(*paged);
  }
};

/// The region that load() uses for [da, da + memsz): the first that holds it.
int region_of(const Memory& m, DeviceAddress da, std::uint64_t memsz, std::size_t* offset) {
  if (memsz > SIZE_MAX) return -1;
  for (std::size_t i = 0; i < m.regions.size(); ++i) {
    if (auto off = m.regions[i].offset_of(da, static_cast<std::size_t>(memsz))) {
      *offset = *off;
      return static_cast<int>(i);
    }
  }
  return -1;
}

void check_load(const ElfImage& image, bool use_vaddr) {
  Memory m;
  const auto r = amp::rproc::load(image, m.regions, {amp::rproc::elf::kMachineNone, use_vaddr});
  if (!r) {
    check(amp::rproc::to_status(r.error()) != amp::Status::kOk);
    for (const auto& b : m.blocks) {
      check(std::all_of(b.begin(), b.end(), [](std::byte x) { return x == kPattern; }));
    }
    return;
  }
  // Where each segment went; bytes no segment covers must still hold the pattern.
  struct Placed {
    int region;
    std::size_t offset;
    ElfSegment s;
  };
  std::vector<Placed> placed;
  std::vector<std::vector<bool>> covered;
  for (const auto& b : m.blocks) covered.emplace_back(b.size(), false);
  for (const ElfSegment& s : image.segments()) {
    if (s.memsz == 0) continue;
    std::size_t off = 0;
    const int region = region_of(m, use_vaddr ? s.vaddr : s.da, s.memsz, &off);
    check(region >= 0);  // load() succeeded, so every segment fits
    placed.push_back({region, off, s});
    for (std::size_t i = 0; i < s.memsz; ++i) covered[static_cast<std::size_t>(region)][off + i] = true;
  }
  for (std::size_t b = 0; b < m.blocks.size(); ++b) {
    for (std::size_t i = 0; i < m.blocks[b].size(); ++i) {
      check(covered[b][i] || m.blocks[b][i] == kPattern);
    }
  }
  // Segments that no later segment overwrote (in host memory) hold their bytes and zeros.
  for (std::size_t i = 0; i < placed.size(); ++i) {
    const Placed& p = placed[i];
    const bool overwritten =
        std::any_of(placed.begin() + static_cast<std::ptrdiff_t>(i) + 1, placed.end(), [&](const Placed& q) {
          const auto* a = m.blocks[static_cast<std::size_t>(p.region)].data();
          const auto* b = m.blocks[static_cast<std::size_t>(q.region)].data();
          const auto* a0 = a + p.offset;
          const auto* b0 = b + q.offset;
          return std::less<>{}(a0, b0 + q.s.memsz) && std::less<>{}(b0, a0 + p.s.memsz);
        });
    if (overwritten) continue;
    const std::byte* at = m.blocks[static_cast<std::size_t>(p.region)].data() + p.offset;
    check(p.s.data.empty() || std::memcmp(at, p.s.data.data(), p.s.data.size()) == 0);
    for (std::size_t k = p.s.data.size(); k < p.s.memsz; ++k) check(at[k] == std::byte{0});
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> file(reinterpret_cast<const std::byte*>(data), size);
  auto image = ElfImage::parse(file);
  if (!image) {
    check(amp::rproc::to_string(image.error()) != nullptr);
    check(amp::rproc::to_status(image.error()) != amp::Status::kOk);
    return 0;
  }
  check(image->elf_class() == 32 || image->elf_class() == 64);
  std::size_t n = 0;
  for (const ElfSegment& s : image->segments()) {
    check(inside(s.data, file));
    check(s.data.size() <= s.memsz);
    check(s.data.empty() || s.data.data() == file.data() + s.file_offset);
    auto same = image->segment(n);
    check(same.has_value() && same->da == s.da && same->data.data() == s.data.data() &&
          same->memsz == s.memsz);
    ++n;
  }
  check(n == image->segment_count());
  check(image->segment(n).error() == amp::Status::kNotFound);
  if (auto rsc = image->resource_table()) {
    check(inside(rsc->data, file));
    check(rsc->data.empty() || rsc->data.data() == file.data() + rsc->file_offset);
  } else {
    check(rsc.error() == amp::rproc::ElfError::kNoResourceTable);
  }
  check_load(*image, false);
  check_load(*image, true);
  return 0;
}
