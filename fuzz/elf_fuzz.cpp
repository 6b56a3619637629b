// SPDX-License-Identifier: BSD-3-Clause
// Fuzzes the ELF loader with arbitrary files, such as a corrupt or hostile firmware image. A file that parses
// is loaded (by p_paddr and by p_vaddr) into a fixed set of memory regions, each its own exactly-sized heap
// block so that ASan reports any write outside one. Checks that:
//  - every segment and the resource table reported by the image lie inside the input;
//  - segment(i), segments() and segment_count() agree;
//  - a section found by name (the resource table, the log dictionary) lies inside the input, and the same
//    as resource_table() for `.resource_table`;
//  - a failed load writes nothing; a successful one writes each segment's bytes and zeros where they belong
//    (in segment order, where segments overlap) and nothing anywhere else.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
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
// the top of the 32- and 64-bit address spaces. Allocated once (fresh blocks and a byte-by-byte check of
// them for every loaded file cost nearly all of the run): each window is its own exact-size Block, filled
// with the pattern and put back to it before each load.
struct Memory {
  std::vector<std::unique_ptr<amp::fuzz::Block>> blocks;
  std::vector<std::vector<std::byte>> expected;  // per block: what a load must leave there
  std::vector<IoRegion> regions;
  std::vector<DeviceAddress> pages{0x20000300, 0x20000000, 0x20000100, 0x20000200};

  Memory() {
    const std::pair<std::size_t, DeviceAddress> plain[] = {
        {4096, 0}, {4096, 0x1000}, {256, 0x10000000}, {64, 0xFFFFFFC0}, {64, 0xFFFFFFFFFFFFFFC0}};
    for (const auto& [size, da] : plain) {
      regions.emplace_back(std::span(add(size)->data(), size), da);
    }
    auto paged = IoRegion::paged(std::span(add(1024)->data(), 1024), pages, 8);
    check(paged.has_value());
    regions.push_back(*paged);
  }
  amp::fuzz::Block* add(std::size_t size) {
    blocks.push_back(std::make_unique<amp::fuzz::Block>(size));
    std::memset(blocks.back()->data(), static_cast<int>(kPattern), size);
    blocks.back()->snapshot();
    expected.emplace_back(size);
    return blocks.back().get();
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
  static Memory m;
  for (const auto& b : m.blocks) b->restore();
  const auto r = amp::rproc::load(image, m.regions, {amp::rproc::elf::kMachineNone, use_vaddr});
  if (!r) {
    check(amp::rproc::to_status(r.error()) != amp::Status::kOk);
    for (const auto& b : m.blocks) check(b->unchanged());
    return;
  }
  // What the memory must hold: the pattern, with each segment's bytes and zeros written over it in order
  // (where segments overlap in host memory, the later one's). Nothing else may have changed.
  for (std::size_t b = 0; b < m.blocks.size(); ++b) {
    std::memcpy(m.expected[b].data(), m.blocks[b]->pristine(), m.blocks[b]->size());
  }
  for (const ElfSegment& s : image.segments()) {
    if (s.memsz == 0) continue;
    std::size_t off = 0;
    const int region = region_of(m, use_vaddr ? s.vaddr : s.da, s.memsz, &off);
    check(region >= 0);  // load() succeeded, so every segment fits
    std::byte* at = m.expected[static_cast<std::size_t>(region)].data() + off;
    if (!s.data.empty()) std::memcpy(at, s.data.data(), s.data.size());
    std::memset(at + s.data.size(), 0, static_cast<std::size_t>(s.memsz) - s.data.size());
  }
  for (std::size_t b = 0; b < m.blocks.size(); ++b) {
    check(std::memcmp(m.blocks[b]->data(), m.expected[b].data(), m.blocks[b]->size()) == 0);
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
  for (const char* name : {".resource_table", "amp_log_fmt", ""}) {
    if (auto sec = image->section(name)) {
      check(inside(sec->data, file));
      if (name[0] == '.')
        check(image->resource_table() && sec->data.data() == image->resource_table()->data.data());
    } else {
      check(sec.error() == amp::Status::kNotFound || sec.error() == amp::Status::kOutOfRange);
    }
  }
  check_load(*image, false);
  check_load(*image, true);
  return 0;
}
