// SPDX-License-Identifier: BSD-3-Clause
// A small builder of 32-bit ELF executables for tests that need a firmware image of their own: PT_LOAD
// segments with their bytes, named sections (such as .resource_table) placed inside them, and the header
// fields a test may want wrong (machine, class, byte order, type). Field positions are written down from the
// ELF specification, independently of src/rproc/elf.cpp.
//
//   Elf32Image img;
//   img.entry = 0x40100000;
//   img.add_segment(0x40100000, code, 0x1000);
//   img.add_section(".resource_table", 0x40100400);   // inside the segment: its bytes are the segment's
//   std::vector<std::byte> file = img.build();
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace amp::rproc::testing {

struct Elf32Image {
  struct Segment {
    std::uint32_t paddr = 0;
    std::vector<std::byte> data;
    std::uint32_t memsz = 0;
    std::uint32_t flags = 5;  // R + X
  };
  struct Section {
    std::string name;
    std::uint32_t addr = 0;
    std::uint32_t size = 0;  // bytes taken from the segment that holds addr
  };

  std::uint16_t type = 2;       // ET_EXEC
  std::uint16_t machine = 40;   // EM_ARM
  std::uint8_t elf_class = 1;   // ELFCLASS32 (2: claims 64-bit)
  std::uint8_t data_order = 1;  // ELFDATA2LSB (2: big-endian)
  std::uint32_t entry = 0;
  std::uint32_t flags = 0x05000400;  // EABI 5, hard float
  std::vector<Segment> segments;
  std::vector<Section> sections;

  Segment& add_segment(std::uint32_t paddr, std::vector<std::byte> data, std::uint32_t memsz = 0) {
    Segment s;
    s.paddr = paddr;
    s.memsz = memsz != 0 ? memsz : static_cast<std::uint32_t>(data.size());
    s.data = std::move(data);
    segments.push_back(std::move(s));
    return segments.back();
  }
  void add_section(std::string name, std::uint32_t addr, std::uint32_t size) {
    sections.push_back({std::move(name), addr, size});
  }
  /// Writes `bytes` into the segment that holds [addr, addr + size) (it must be there).
  bool poke(std::uint32_t addr, const void* bytes, std::size_t size) {
    for (Segment& s : segments) {
      if (addr >= s.paddr && addr - s.paddr + size <= s.data.size()) {
        std::memcpy(s.data.data() + (addr - s.paddr), bytes, size);
        return true;
      }
    }
    return false;
  }

  std::vector<std::byte> build() const {
    constexpr std::size_t kEhsize = 52, kPhent = 32, kShent = 40;
    auto align = [](std::size_t v) { return (v + 7) & ~std::size_t{7}; };
    std::size_t pos = align(kEhsize + segments.size() * kPhent);
    std::vector<std::size_t> seg_off;
    for (const Segment& s : segments) {
      seg_off.push_back(pos);
      pos = align(pos + s.data.size());
    }
    std::string strtab(1, '\0');
    std::vector<std::size_t> name_off;
    for (const Section& s : sections) {
      name_off.push_back(strtab.size());
      strtab += s.name + '\0';
    }
    const std::size_t shstrtab_name = strtab.size();
    strtab += std::string(".shstrtab") + '\0';
    const std::size_t strtab_off = pos;
    pos = align(pos + strtab.size());
    const std::size_t shoff = pos;
    const std::size_t shnum = sections.size() + 2;
    pos += shnum * kShent;
    std::vector<std::byte> b(pos);
    auto put = [&](std::size_t at, std::uint64_t v, std::size_t width) {
      for (std::size_t i = 0; i < width; ++i) {
        const std::size_t shift = data_order == 2 ? 8 * (width - 1 - i) : 8 * i;
        b[at + i] = std::byte(static_cast<std::uint8_t>(v >> shift));
      }
    };
    const std::uint8_t ident[] = {0x7F, 'E', 'L', 'F', elf_class, data_order, 1};
    std::memcpy(b.data(), ident, sizeof ident);
    put(16, type, 2);
    put(18, machine, 2);
    put(20, 1, 4);
    put(24, entry, 4);
    put(28, segments.empty() ? 0 : kEhsize, 4);
    put(32, shoff, 4);
    put(36, flags, 4);
    put(40, kEhsize, 2);
    put(42, kPhent, 2);
    put(44, segments.size(), 2);
    put(46, kShent, 2);
    put(48, shnum, 2);
    put(50, shnum - 1, 2);
    for (std::size_t i = 0; i < segments.size(); ++i) {
      const Segment& s = segments[i];
      const std::size_t ph = kEhsize + i * kPhent;
      put(ph + 0, 1, 4);  // PT_LOAD
      put(ph + 4, seg_off[i], 4);
      put(ph + 8, s.paddr, 4);
      put(ph + 12, s.paddr, 4);
      put(ph + 16, s.data.size(), 4);
      put(ph + 20, s.memsz, 4);
      put(ph + 24, s.flags, 4);
      put(ph + 28, 4, 4);
      std::memcpy(b.data() + seg_off[i], s.data.data(), s.data.size());
    }
    std::memcpy(b.data() + strtab_off, strtab.data(), strtab.size());
    for (std::size_t i = 0; i < sections.size(); ++i) {
      const Section& s = sections[i];
      std::size_t offset = 0;
      for (std::size_t k = 0; k < segments.size(); ++k) {
        if (s.addr >= segments[k].paddr && s.addr < segments[k].paddr + segments[k].data.size())
          offset = seg_off[k] + (s.addr - segments[k].paddr);
      }
      const std::size_t sh = shoff + (i + 1) * kShent;
      put(sh + 0, name_off[i], 4);
      put(sh + 4, 1, 4);  // SHT_PROGBITS
      put(sh + 8, 3, 4);  // SHF_ALLOC | SHF_WRITE
      put(sh + 12, s.addr, 4);
      put(sh + 16, offset, 4);
      put(sh + 20, s.size, 4);
      put(sh + 32, 4, 4);
    }
    const std::size_t sh = shoff + (shnum - 1) * kShent;
    put(sh + 0, shstrtab_name, 4);
    put(sh + 4, 3, 4);  // SHT_STRTAB
    put(sh + 16, strtab_off, 4);
    put(sh + 20, strtab.size(), 4);
    put(sh + 32, 1, 4);
    return b;
  }
};

}  // namespace amp::rproc::testing
