// SPDX-License-Identifier: BSD-3-Clause
#include "amp/rproc/elf.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <iterator>
#include <set>
#include <string>
#include <vector>

namespace amp::rproc {
namespace {

using metal::DeviceAddress;
using metal::IoRegion;
using Bytes = std::vector<std::byte>;

// --- Field positions, written down from the ELF specification (independently of src/rproc/elf.cpp). ---

struct F {
  std::size_t offset;
  std::size_t width;
};

struct Format {
  bool is64;
  std::size_t ehsize, phentsize, shentsize;
  F e_type, e_machine, e_version, e_entry, e_phoff, e_shoff, e_flags, e_ehsize, e_phentsize, e_phnum,
      e_shentsize, e_shnum, e_shstrndx;
  F p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align;
  F sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, sh_info, sh_addralign, sh_entsize;
};

constexpr Format kElf32{false,   52,      32,      40,      {16, 2}, {18, 2}, {20, 4}, {24, 4}, {28, 4},
                        {32, 4}, {36, 4}, {40, 2}, {42, 2}, {44, 2}, {46, 2}, {48, 2}, {50, 2}, {0, 4},
                        {24, 4}, {4, 4},  {8, 4},  {12, 4}, {16, 4}, {20, 4}, {28, 4}, {0, 4},  {4, 4},
                        {8, 4},  {12, 4}, {16, 4}, {20, 4}, {24, 4}, {28, 4}, {32, 4}, {36, 4}};

constexpr Format kElf64{true,    64,      56,      64,      {16, 2}, {18, 2}, {20, 4}, {24, 8}, {32, 8},
                        {40, 8}, {48, 4}, {52, 2}, {54, 2}, {56, 2}, {58, 2}, {60, 2}, {62, 2}, {0, 4},
                        {4, 4},  {8, 8},  {16, 8}, {24, 8}, {32, 8}, {40, 8}, {48, 8}, {0, 4},  {4, 4},
                        {8, 8},  {16, 8}, {24, 8}, {32, 8}, {40, 4}, {44, 4}, {48, 8}, {56, 8}};

void put(Bytes& b, std::size_t base, F f, std::uint64_t v) {
  for (std::size_t i = 0; i < f.width; ++i) b.at(base + f.offset + i) = std::byte(v >> (8 * i));
}

std::uint64_t get(const Bytes& b, std::size_t base, F f) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < f.width; ++i)
    v |= std::uint64_t{std::to_integer<std::uint8_t>(b.at(base + f.offset + i))} << (8 * i);
  return v;
}

Bytes bytes_of(std::initializer_list<std::uint8_t> v) {
  Bytes b;
  for (auto x : v) b.push_back(std::byte{x});
  return b;
}

Bytes counting(std::size_t n, std::uint8_t first) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = std::byte(first + i);
  return b;
}

constexpr std::uint32_t kPtLoad = 1;
constexpr std::uint32_t kPtNote = 4;
constexpr std::uint32_t kShtProgbits = 1;
constexpr std::uint32_t kShtStrtab = 3;
constexpr std::uint32_t kShtNobits = 8;

struct SegmentSpec {
  std::uint32_t type = kPtLoad;
  DeviceAddress paddr = 0;
  DeviceAddress vaddr = 0;
  Bytes data;
  std::uint64_t memsz = 0;
  std::uint32_t flags = elf::kSegmentRead;
};

struct SectionSpec {
  std::string name;
  std::uint32_t type = kShtProgbits;
  DeviceAddress addr = 0;
  Bytes data;  // placed in the file (unless type is SHT_NOBITS)
  std::uint64_t nobits_size = 0;
};

// The image and where its parts are. File layout, in order (each part 8-aligned):
//   ELF header | program headers | segment data | section headers | .shstrtab | section data
struct Built {
  Format fmt;
  Bytes bytes;
  std::size_t phoff = 0;
  std::size_t shoff = 0;
  std::size_t shnum = 0;
  std::size_t shstrndx = 0;
  std::size_t strtab_offset = 0;
  std::size_t strtab_size = 0;
  std::vector<std::size_t> segment_offsets;
  std::vector<std::size_t> section_offsets;  // file offsets of the user sections' data
  std::size_t load_data_end = 0;             // end of the last PT_LOAD segment's data

  std::size_t phdr(std::size_t i) const { return phoff + i * fmt.phentsize; }
  std::size_t shdr(std::size_t i) const { return shoff + i * fmt.shentsize; }  // 0 is the null section
  void set_header(F f, std::uint64_t v) { put(bytes, 0, f, v); }
  void set_phdr(std::size_t i, F f, std::uint64_t v) { put(bytes, phdr(i), f, v); }
  void set_shdr(std::size_t i, F f, std::uint64_t v) { put(bytes, shdr(i), f, v); }
  Bytes truncated(std::size_t n) const {
    return Bytes(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
  }
};

struct ElfBuilder {
  Format fmt = kElf32;
  std::uint16_t type = 2;  // ET_EXEC
  std::uint16_t machine = elf::kMachineArm;
  std::uint64_t entry = 0;
  std::uint32_t flags = 0x05000000;  // EABI 5
  std::vector<SegmentSpec> segments;
  std::vector<SectionSpec> sections;
  bool with_sections = true;

  Built build() const {
    Built b{};
    b.fmt = fmt;
    auto align = [](std::size_t v) { return (v + 7) & ~std::size_t{7}; };
    std::size_t pos = fmt.ehsize;
    b.phoff = pos;
    pos = align(pos + segments.size() * fmt.phentsize);
    for (const SegmentSpec& s : segments) {
      b.segment_offsets.push_back(pos);
      if (s.type == kPtLoad) b.load_data_end = pos + s.data.size();
      pos = align(pos + s.data.size());
    }
    // .shstrtab: "\0" name... ".shstrtab\0"
    std::string strtab(1, '\0');
    std::vector<std::size_t> name_offsets;
    for (const SectionSpec& s : sections) {
      name_offsets.push_back(strtab.size());
      strtab += s.name;
      strtab += '\0';
    }
    const std::size_t strtab_name = strtab.size();
    strtab += ".shstrtab";
    strtab += '\0';
    if (with_sections) {
      b.shnum = sections.size() + 2;
      b.shstrndx = sections.size() + 1;
      b.shoff = pos;
      pos = align(pos + b.shnum * fmt.shentsize);
      b.strtab_offset = pos;
      b.strtab_size = strtab.size();
      pos = align(pos + strtab.size());
      for (const SectionSpec& s : sections) {
        b.section_offsets.push_back(pos);
        pos += s.type == kShtNobits ? 0 : s.data.size();
        pos = align(pos);
      }
    }
    b.bytes.assign(pos, std::byte{0});
    // ELF header.
    const std::array<std::uint8_t, 7> ident{0x7F, 'E', 'L', 'F', static_cast<std::uint8_t>(fmt.is64 ? 2 : 1),
                                            1,    1};
    for (std::size_t i = 0; i < ident.size(); ++i) b.bytes[i] = std::byte{ident[i]};
    b.set_header(fmt.e_type, type);
    b.set_header(fmt.e_machine, machine);
    b.set_header(fmt.e_version, 1);
    b.set_header(fmt.e_entry, entry);
    b.set_header(fmt.e_phoff, segments.empty() ? 0 : b.phoff);
    b.set_header(fmt.e_shoff, b.shoff);
    b.set_header(fmt.e_flags, flags);
    b.set_header(fmt.e_ehsize, fmt.ehsize);
    b.set_header(fmt.e_phentsize, fmt.phentsize);
    b.set_header(fmt.e_phnum, segments.size());
    b.set_header(fmt.e_shentsize, with_sections ? fmt.shentsize : 0);
    b.set_header(fmt.e_shnum, b.shnum);
    b.set_header(fmt.e_shstrndx, b.shstrndx);
    // Program headers and segment data.
    for (std::size_t i = 0; i < segments.size(); ++i) {
      const SegmentSpec& s = segments[i];
      b.set_phdr(i, fmt.p_type, s.type);
      b.set_phdr(i, fmt.p_flags, s.flags);
      b.set_phdr(i, fmt.p_offset, b.segment_offsets[i]);
      b.set_phdr(i, fmt.p_vaddr, s.vaddr);
      b.set_phdr(i, fmt.p_paddr, s.paddr);
      b.set_phdr(i, fmt.p_filesz, s.data.size());
      b.set_phdr(i, fmt.p_memsz, s.memsz);
      b.set_phdr(i, fmt.p_align, 4);
      std::copy(s.data.begin(), s.data.end(),
                b.bytes.begin() + static_cast<std::ptrdiff_t>(b.segment_offsets[i]));
    }
    if (!with_sections) return b;
    // Section headers (0 stays the null section), the string table and section data.
    for (std::size_t i = 0; i < sections.size(); ++i) {
      const SectionSpec& s = sections[i];
      const std::size_t n = i + 1;
      b.set_shdr(n, fmt.sh_name, name_offsets[i]);
      b.set_shdr(n, fmt.sh_type, s.type);
      b.set_shdr(n, fmt.sh_flags, 2);  // SHF_ALLOC
      b.set_shdr(n, fmt.sh_addr, s.addr);
      b.set_shdr(n, fmt.sh_offset, b.section_offsets[i]);
      b.set_shdr(n, fmt.sh_size, s.type == kShtNobits ? s.nobits_size : s.data.size());
      b.set_shdr(n, fmt.sh_addralign, 4);
      if (s.type != kShtNobits) {
        std::copy(s.data.begin(), s.data.end(),
                  b.bytes.begin() + static_cast<std::ptrdiff_t>(b.section_offsets[i]));
      }
    }
    b.set_shdr(b.shstrndx, fmt.sh_name, strtab_name);
    b.set_shdr(b.shstrndx, fmt.sh_type, kShtStrtab);
    b.set_shdr(b.shstrndx, fmt.sh_offset, b.strtab_offset);
    b.set_shdr(b.shstrndx, fmt.sh_size, strtab.size());
    b.set_shdr(b.shstrndx, fmt.sh_addralign, 1);
    std::memcpy(b.bytes.data() + b.strtab_offset, strtab.data(), strtab.size());
    return b;
  }
};

// The remote's memory in the tests: two adjacent RAM windows and one far away, filled with a pattern.
constexpr DeviceAddress kRam0 = 0x10000000;
constexpr DeviceAddress kRam1 = 0x10000100;    // right after ram 0
constexpr DeviceAddress kFar = 0x8'0000'0000;  // above 4 GiB (for 64-bit files)
constexpr std::size_t kRamSize = 0x100;
constexpr std::byte kPattern{0xAA};

/// The device addresses of Memory's regions, for check_fits.
const std::array<MemoryRange, 3> kRanges{MemoryRange{kRam0, kRamSize}, MemoryRange{kRam1, kRamSize},
                                         MemoryRange{kFar, kRamSize}};

struct Memory {
  std::array<Bytes, 3> mem{Bytes(kRamSize, kPattern), Bytes(kRamSize, kPattern), Bytes(kRamSize, kPattern)};
  std::array<IoRegion, 3> regions{IoRegion(mem[0], kRam0), IoRegion(mem[1], kRam1), IoRegion(mem[2], kFar)};

  bool untouched() const {
    return std::all_of(mem.begin(), mem.end(), [](const Bytes& m) {
      return std::all_of(m.begin(), m.end(), [](std::byte x) { return x == kPattern; });
    });
  }
  // The bytes at device address `da` (which must be in one region).
  Bytes at(DeviceAddress da, std::size_t n) const {
    for (std::size_t i = 0; i < regions.size(); ++i) {
      if (auto off = regions[i].offset_of(da, n)) {
        return Bytes(mem[i].begin() + static_cast<std::ptrdiff_t>(*off),
                     mem[i].begin() + static_cast<std::ptrdiff_t>(*off + n));
      }
    }
    ADD_FAILURE() << "no region holds " << da;
    return {};
  }
};

const Bytes kResourceTable = bytes_of({1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});  // ver 1, num 0

// A typical firmware: code at the start of RAM 0, data + bss after it, a note, the resource table and .bss.
ElfBuilder firmware(const Format& fmt, DeviceAddress base = kRam0) {
  ElfBuilder b;
  b.fmt = fmt;
  b.machine = fmt.is64 ? elf::kMachineAarch64 : elf::kMachineArm;
  b.entry = base + 1;
  b.segments = {
      {kPtLoad, base, 0x1000, counting(16, 1), 16, elf::kSegmentRead | elf::kSegmentExecute},
      {kPtNote, 0, 0, counting(8, 0x80), 8, elf::kSegmentRead},
      {kPtLoad, base + 0x40, 0x1040, counting(8, 0x40), 32, elf::kSegmentRead | elf::kSegmentWrite},
  };
  b.sections = {
      {".bss", kShtNobits, base + 0x48, {}, 24},
      {".resource_table", kShtProgbits, base + 0x80, kResourceTable, 0},
  };
  return b;
}

// The error parse() reports, or kParsed when it succeeds.
constexpr auto kParsed = static_cast<ElfError>(0xFF);
ElfError parse_error(const Bytes& b) {
  auto image = ElfImage::parse(b);
  return image ? kParsed : image.error();
}

// The error of `r`, failing the test (instead of trapping in error()) when `r` holds a value.
template <class T, class E>
E error_of(const Expected<T, E>& r) {
  EXPECT_FALSE(r.has_value());
  return r.has_value() ? E{} : r.error();
}

// --- Good images. ---

void check_good_image(const Format& fmt, DeviceAddress base) {
  const Built f = firmware(fmt, base).build();
  auto image = ElfImage::parse(f.bytes);
  ASSERT_TRUE(image) << to_string(image.error());
  EXPECT_EQ(image->elf_class(), fmt.is64 ? 64U : 32U);
  EXPECT_EQ(image->machine(), fmt.is64 ? elf::kMachineAarch64 : elf::kMachineArm);
  EXPECT_EQ(image->entry(), base + 1);
  EXPECT_EQ(image->flags(), 0x05000000U);
  ASSERT_EQ(image->segment_count(), 2U);  // the note is not a PT_LOAD

  auto s0 = image->segment(0);
  ASSERT_TRUE(s0);
  EXPECT_EQ(s0->da, base);
  EXPECT_EQ(s0->vaddr, 0x1000U);
  EXPECT_EQ(s0->memsz, 16U);
  EXPECT_EQ(s0->flags, elf::kSegmentRead | elf::kSegmentExecute);
  EXPECT_EQ(s0->file_offset, f.segment_offsets[0]);
  EXPECT_EQ(s0->data.data(), f.bytes.data() + f.segment_offsets[0]);
  EXPECT_EQ(s0->data.size(), 16U);
  auto s1 = image->segment(1);
  ASSERT_TRUE(s1);
  EXPECT_EQ(s1->da, base + 0x40);
  EXPECT_EQ(s1->memsz, 32U);
  EXPECT_EQ(s1->data.size(), 8U);
  EXPECT_EQ(s1->data.data(), f.bytes.data() + f.segment_offsets[2]);
  EXPECT_EQ(error_of(image->segment(2)), Status::kNotFound);

  auto rsc = image->resource_table();
  ASSERT_TRUE(rsc);
  EXPECT_EQ(rsc->file_offset, f.section_offsets[1]);
  EXPECT_EQ(rsc->data.data(), f.bytes.data() + f.section_offsets[1]);
  EXPECT_EQ(rsc->data.size(), kResourceTable.size());
  EXPECT_EQ(rsc->da, base + 0x80);

  Memory m;
  ASSERT_TRUE(load(*image, m.regions, {}));
  EXPECT_EQ(m.at(base, 16), counting(16, 1));
  // (Built in place: GCC 12's -Warray-bounds misfires on vector::resize here at -O3.)
  Bytes data_and_bss(32, std::byte{0});
  const Bytes data = counting(8, 0x40);
  std::copy(data.begin(), data.end(), data_and_bss.begin());
  EXPECT_EQ(m.at(base + 0x40, 32), data_and_bss);
  // Untouched: the gap between the segments, and what follows the bss.
  EXPECT_EQ(m.at(base + 0x10, 0x30), Bytes(0x30, kPattern));
  EXPECT_EQ(m.at(base + 0x60, 0x20), Bytes(0x20, kPattern));
}

TEST(Elf, LoadsA32BitImage) {
  check_good_image(kElf32, kRam0);
}

TEST(Elf, LoadsA64BitImageAbove4GiB) {
  check_good_image(kElf64, kFar);
}

static_assert(std::input_iterator<ElfImage::SegmentIterator>);

TEST(Elf, SegmentsRangeVisitsEveryLoadSegmentInOrder) {
  const Built f = firmware(kElf64).build();
  auto image = ElfImage::parse(f.bytes);
  ASSERT_TRUE(image);
  std::vector<DeviceAddress> das;
  for (const ElfSegment& s : image->segments()) das.push_back(s.da);
  EXPECT_EQ(das, (std::vector<DeviceAddress>{kRam0, kRam0 + 0x40}));
}

TEST(Elf, VaddrOptionPlacesSegmentsAtTheirVirtualAddresses) {
  ElfBuilder b = firmware(kElf32);
  b.segments[0].vaddr = kRam1;  // p_paddr stays in ram 0
  b.segments[2].vaddr = kRam1 + 0x40;
  const Built f = b.build();
  auto image = ElfImage::parse(f.bytes);
  ASSERT_TRUE(image);

  Memory by_vaddr;
  ASSERT_TRUE(load(*image, by_vaddr.regions, {elf::kMachineNone, true}));
  EXPECT_EQ(by_vaddr.at(kRam1, 16), counting(16, 1));
  EXPECT_EQ(by_vaddr.mem[0], Bytes(kRamSize, kPattern));

  Memory by_paddr;
  ASSERT_TRUE(load(*image, by_paddr.regions, {elf::kMachineNone, false}));
  EXPECT_EQ(by_paddr.at(kRam0, 16), counting(16, 1));
  EXPECT_EQ(by_paddr.mem[1], Bytes(kRamSize, kPattern));
}

TEST(Elf, MachineMustMatchWhenAsked) {
  const Built f = firmware(kElf32).build();
  auto image = ElfImage::parse(f.bytes);
  ASSERT_TRUE(image);
  Memory m;
  auto r = load(*image, m.regions, {elf::kMachineRiscv, false});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), ElfError::kWrongMachine);
  EXPECT_EQ(to_status(r.error()), Status::kNotSupported);
  EXPECT_TRUE(m.untouched());
  EXPECT_TRUE(load(*image, m.regions, {elf::kMachineArm, false}));
  EXPECT_FALSE(m.untouched());
}

TEST(Elf, EmptySegmentsAreSkippedWhereverTheyPoint) {
  ElfBuilder b = firmware(kElf32);
  b.segments.push_back(
      {kPtLoad, 0x50000000, 0x50000000, {}, 0, elf::kSegmentRead});  // outside every region, but empty
  const Built f = b.build();
  auto image = ElfImage::parse(f.bytes);
  ASSERT_TRUE(image);
  EXPECT_EQ(image->segment_count(), 3U);
  Memory m;
  EXPECT_TRUE(load(*image, m.regions));
}

TEST(Elf, ImageWithoutSectionHeadersHasNoResourceTable) {
  ElfBuilder b = firmware(kElf32);
  b.with_sections = false;
  const Built f = b.build();
  auto image = ElfImage::parse(f.bytes);
  ASSERT_TRUE(image);
  EXPECT_EQ(error_of(image->resource_table()), ElfError::kNoResourceTable);
  EXPECT_EQ(to_status(ElfError::kNoResourceTable), Status::kNotFound);
  Memory m;
  EXPECT_TRUE(load(*image, m.regions));
}

TEST(Elf, NoResourceTable) {
  ElfBuilder b = firmware(kElf64);
  b.sections[1].name = ".resource_tabl";  // a prefix is not the name
  b.sections.push_back({".resource_table.x", kShtProgbits, 0, kResourceTable, 0});  // nor is a longer name
  auto image = ElfImage::parse(b.build().bytes);
  ASSERT_TRUE(image);
  EXPECT_EQ(error_of(image->resource_table()), ElfError::kNoResourceTable);
}

TEST(Elf, NullStringTableIndexMeansNoNames) {
  Built f = firmware(kElf32).build();
  f.set_header(kElf32.e_shstrndx, 0);  // SHN_UNDEF
  auto image = ElfImage::parse(f.bytes);
  ASSERT_TRUE(image);
  EXPECT_EQ(error_of(image->resource_table()), ElfError::kNoResourceTable);
}

TEST(Elf, EmptyImageLoadsNothing) {
  const ElfImage image;
  EXPECT_EQ(image.segment_count(), 0U);
  EXPECT_EQ(image.segments().begin(), image.segments().end());
  EXPECT_EQ(error_of(image.resource_table()), ElfError::kNoResourceTable);
  Memory m;
  EXPECT_TRUE(load(image, m.regions));
  EXPECT_TRUE(m.untouched());
}

// --- Extended numbering (counts and the string table index in section header 0). ---

TEST(Elf, ExtendedNumberingComesFromSectionZero) {
  for (const Format* fmt : {&kElf32, &kElf64}) {
    Built f = firmware(*fmt).build();
    f.set_header(fmt->e_shnum, 0);
    f.set_shdr(0, fmt->sh_size, f.shnum);
    f.set_header(fmt->e_shstrndx, 0xFFFF);  // SHN_XINDEX
    f.set_shdr(0, fmt->sh_link, f.shstrndx);
    f.set_header(fmt->e_phnum, 0xFFFF);  // PN_XNUM
    f.set_shdr(0, fmt->sh_info, 3);
    auto image = ElfImage::parse(f.bytes);
    ASSERT_TRUE(image) << to_string(image.error());
    EXPECT_EQ(image->segment_count(), 2U);
    auto rsc = image->resource_table();
    ASSERT_TRUE(rsc);
    EXPECT_EQ(rsc->file_offset, f.section_offsets[1]);

    // The values from section 0 are checked like the others.
    Built bad = f;
    bad.set_shdr(0, fmt->sh_link, f.shnum);
    EXPECT_EQ(parse_error(bad.bytes), ElfError::kBadStringTableIndex);
    bad = f;
    bad.set_shdr(0, fmt->sh_info, 0xFFFFFFFF);
    EXPECT_EQ(parse_error(bad.bytes), ElfError::kProgramHeadersOutsideFile);
    bad = f;
    bad.set_shdr(0, fmt->sh_size, 0);
    EXPECT_EQ(parse_error(bad.bytes), ElfError::kBadSectionHeaders);
    bad = f;
    bad.set_shdr(0, fmt->sh_size, fmt->is64 ? 0x4000'0000'0000'0000ULL : 0xFFFF'FFFFULL);  // x64 wraps
    EXPECT_EQ(parse_error(bad.bytes), ElfError::kSectionHeadersOutsideFile);
  }
}

TEST(Elf, ExtendedNumberingNeedsSectionHeaders) {
  ElfBuilder b = firmware(kElf32);
  b.with_sections = false;
  Built f = b.build();
  // PN_XNUM defers the program header count to a section header that is not there: elf.hpp documents
  // that as a bad program header count.
  f.set_header(kElf32.e_phnum, 0xFFFF);
  EXPECT_EQ(parse_error(f.bytes), ElfError::kBadProgramHeaders);
  ElfBuilder b64 = firmware(kElf64);
  b64.with_sections = false;
  Built f64 = b64.build();
  f64.set_header(kElf64.e_phnum, 0xFFFF);
  EXPECT_EQ(parse_error(f64.bytes), ElfError::kBadProgramHeaders);
  f = b.build();
  f.set_header(kElf32.e_shstrndx, 0xFFFF);
  EXPECT_EQ(parse_error(f.bytes), ElfError::kBadSectionHeaders);
  f = b.build();
  f.set_header(kElf32.e_shnum, 3);
  EXPECT_EQ(parse_error(f.bytes), ElfError::kBadSectionHeaders);
}

// --- Machine names, for messages. ---

TEST(Elf, MachinesAreNamedAsTheSpecificationNamesThem) {
  EXPECT_STREQ(elf::machine_name(elf::kMachineNone).c_str(), "EM_NONE");
  EXPECT_STREQ(elf::machine_name(2).c_str(), "EM_SPARC");
  EXPECT_STREQ(elf::machine_name(3).c_str(), "EM_386");
  EXPECT_STREQ(elf::machine_name(8).c_str(), "EM_MIPS");
  EXPECT_STREQ(elf::machine_name(20).c_str(), "EM_PPC");
  EXPECT_STREQ(elf::machine_name(21).c_str(), "EM_PPC64");
  EXPECT_STREQ(elf::machine_name(40).c_str(), "EM_ARM");
  EXPECT_STREQ(elf::machine_name(42).c_str(), "EM_SH");
  EXPECT_STREQ(elf::machine_name(50).c_str(), "EM_IA_64");
  EXPECT_STREQ(elf::machine_name(62).c_str(), "EM_X86_64");
  EXPECT_STREQ(elf::machine_name(94).c_str(), "EM_XTENSA");
  EXPECT_STREQ(elf::machine_name(140).c_str(), "EM_TI_C6000");
  EXPECT_STREQ(elf::machine_name(183).c_str(), "EM_AARCH64");
  EXPECT_STREQ(elf::machine_name(189).c_str(), "EM_MICROBLAZE");
  EXPECT_STREQ(elf::machine_name(243).c_str(), "EM_RISCV");
}

TEST(Elf, UnnamedMachinesAreNamedByNumber) {
  EXPECT_STREQ(elf::machine_name(1).c_str(), "machine 1");
  EXPECT_STREQ(elf::machine_name(10).c_str(), "machine 10");
  EXPECT_STREQ(elf::machine_name(258).c_str(), "machine 258");
  EXPECT_STREQ(elf::machine_name(0xFFFF).c_str(), "machine 65535");
}

// --- The ELF header. ---

TEST(Elf, TruncatedAtEveryBoundaryGivesTheErrorOfThePartCut) {
  for (const Format* fmt : {&kElf32, &kElf64}) {
    const Built f = firmware(*fmt).build();
    ASSERT_EQ(parse_error(f.bytes), kParsed);
    // A cut before the end of a part reports that part (checks run in file order in this layout).
    const std::size_t rsc_end = f.section_offsets[1] + kResourceTable.size();
    const std::vector<std::pair<std::size_t, ElfError>> parts{
        {fmt->ehsize, ElfError::kTruncatedHeader},
        {f.phoff + 3 * fmt->phentsize, ElfError::kProgramHeadersOutsideFile},
        {f.load_data_end, ElfError::kSegmentOutsideFile},
        {f.shoff + f.shnum * fmt->shentsize, ElfError::kSectionHeadersOutsideFile},
        {f.strtab_offset + f.strtab_size, ElfError::kStringTableOutsideFile},
        {rsc_end, ElfError::kResourceTableOutsideFile},
    };
    ASSERT_EQ(rsc_end, f.bytes.size());
    for (std::size_t cut = 0; cut < f.bytes.size(); ++cut) {
      const auto part =
          std::find_if(parts.begin(), parts.end(), [&](const auto& p) { return cut < p.first; });
      ASSERT_NE(part, parts.end());
      EXPECT_EQ(parse_error(f.truncated(cut)), part->second)
          << "ELF" << (fmt->is64 ? 64 : 32) << " cut at " << cut;
    }
  }
}

TEST(Elf, BadMagic) {
  const Built f = firmware(kElf32).build();
  for (std::size_t i = 0; i < 4; ++i) {
    Bytes b = f.bytes;
    b[i] ^= std::byte{0x20};
    EXPECT_EQ(parse_error(b), ElfError::kNotElf) << i;
    b.resize(i + 1);  // even when the file ends right after the wrong byte
    EXPECT_EQ(parse_error(b), ElfError::kNotElf) << i;
  }
  EXPECT_EQ(to_status(ElfError::kNotElf), Status::kMalformed);
}

TEST(Elf, WrongClass) {
  for (std::uint8_t cls : std::array<std::uint8_t, 3>{0, 3, 0xFF}) {
    Bytes b = firmware(kElf32).build().bytes;
    b[4] = std::byte{cls};
    EXPECT_EQ(parse_error(b), ElfError::kBadClass) << int{cls};
  }
  // A 32-bit file claiming class 64 is read with the 64-bit layout, and refused.
  Bytes b = firmware(kElf32).build().bytes;
  b[4] = std::byte{2};
  EXPECT_NE(parse_error(b), kParsed);
}

TEST(Elf, BigEndianIsNotSupported) {
  Bytes b = firmware(kElf32).build().bytes;
  b[5] = std::byte{2};  // ELFDATA2MSB
  EXPECT_EQ(parse_error(b), ElfError::kNotLittleEndian);
  EXPECT_EQ(to_status(ElfError::kNotLittleEndian), Status::kNotSupported);
  for (std::uint8_t data : std::array<std::uint8_t, 2>{0, 3}) {
    b[5] = std::byte{data};
    EXPECT_EQ(parse_error(b), ElfError::kBadDataEncoding);
  }
}

TEST(Elf, BadVersion) {
  for (const Format* fmt : {&kElf32, &kElf64}) {
    Bytes b = firmware(*fmt).build().bytes;
    b[6] = std::byte{0};  // EI_VERSION
    EXPECT_EQ(parse_error(b), ElfError::kBadVersion);
    Built f = firmware(*fmt).build();
    f.set_header(fmt->e_version, 2);
    EXPECT_EQ(parse_error(f.bytes), ElfError::kBadVersion);
  }
}

TEST(Elf, OnlyExecutablesAreSupported) {
  for (std::uint16_t type :
       std::array<std::uint16_t, 5>{0, 1, 3, 4, 0xFE00}) {  // NONE, REL, DYN, CORE, OS-specific
    ElfBuilder b = firmware(kElf64);
    b.type = type;
    EXPECT_EQ(parse_error(b.build().bytes), ElfError::kWrongType) << type;
  }
  EXPECT_EQ(to_status(ElfError::kWrongType), Status::kNotSupported);
}

TEST(Elf, PositionIndependentImagesAreForInspectionOnly) {
  ElfBuilder b = firmware(kElf64);
  b.type = 3;  // ET_DYN, as a PIE native firmware
  const Built f = b.build();
  EXPECT_EQ(parse_error(f.bytes), ElfError::kWrongType);  // not by default
  auto image = ElfImage::parse(f.bytes, {.allow_position_independent = true});
  ASSERT_TRUE(image) << to_string(image.error());
  EXPECT_TRUE(image->position_independent());
  auto rsc = image->resource_table();
  ASSERT_TRUE(rsc);
  EXPECT_EQ(rsc->data.size(), kResourceTable.size());
  // Nowhere to load it: refused, and memory untouched.
  Memory m;
  EXPECT_EQ(error_of(load(*image, m.regions, {})), ElfError::kWrongType);
  EXPECT_EQ(m.at(kRam0, 16), Bytes(16, kPattern));
  EXPECT_EQ(error_of(check_fits(*image, kRanges)), ElfError::kWrongType);
  // An executable stays loadable with the option on.
  const Built executable = firmware(kElf64).build();
  auto exec = ElfImage::parse(executable.bytes, {.allow_position_independent = true});
  ASSERT_TRUE(exec);
  EXPECT_FALSE(exec->position_independent());
}

TEST(Elf, HeaderSizeTooSmall) {
  Built f = firmware(kElf32).build();
  f.set_header(kElf32.e_ehsize, 51);
  EXPECT_EQ(parse_error(f.bytes), ElfError::kBadHeaderSize);
  f.set_header(kElf32.e_ehsize, 64);  // larger is fine
  EXPECT_EQ(parse_error(f.bytes), kParsed);
}

// --- Program headers and segments. ---

TEST(Elf, ProgramHeaderEntrySizeTooSmall) {
  for (const Format* fmt : {&kElf32, &kElf64}) {
    Built f = firmware(*fmt).build();
    f.set_header(fmt->e_phentsize, fmt->phentsize - 1);
    EXPECT_EQ(parse_error(f.bytes), ElfError::kBadProgramHeaders);
    f.set_header(fmt->e_phentsize, 0);
    EXPECT_EQ(parse_error(f.bytes), ElfError::kBadProgramHeaders);
  }
}

TEST(Elf, LargerProgramHeaderEntriesAreAccepted) {
  // Entries of 64 bytes: the headers are re-laid out by hand at that stride.
  Built f = firmware(kElf32).build();
  Bytes b = f.bytes;
  const std::size_t table = b.size();
  b.resize(table + 3 * 64, std::byte{0});
  for (std::size_t i = 0; i < 3; ++i) {
    std::copy_n(f.bytes.begin() + static_cast<std::ptrdiff_t>(f.phdr(i)), 32,
                b.begin() + static_cast<std::ptrdiff_t>(table + 64 * i));
  }
  put(b, 0, kElf32.e_phoff, table);
  put(b, 0, kElf32.e_phentsize, 64);
  auto image = ElfImage::parse(b);
  ASSERT_TRUE(image) << to_string(image.error());
  ASSERT_EQ(image->segment_count(), 2U);
  EXPECT_EQ(image->segment(1)->da, kRam0 + 0x40);
}

TEST(Elf, ProgramHeadersPastTheEnd) {
  for (const Format* fmt : {&kElf32, &kElf64}) {
    Built f = firmware(*fmt).build();
    f.set_header(fmt->e_phoff, f.bytes.size() - 3 * fmt->phentsize + 1);  // one byte too far
    EXPECT_EQ(parse_error(f.bytes), ElfError::kProgramHeadersOutsideFile);
    f.set_header(fmt->e_phoff, f.bytes.size() + 1);
    EXPECT_EQ(parse_error(f.bytes), ElfError::kProgramHeadersOutsideFile);
    f = firmware(*fmt).build();
    f.set_header(fmt->e_phnum, 0xFFFE);  // phnum * phentsize far past the end
    EXPECT_EQ(parse_error(f.bytes), ElfError::kProgramHeadersOutsideFile);
  }
  // phoff + phnum * phentsize wrapping around 2^64.
  Built f = firmware(kElf64).build();
  f.set_header(kElf64.e_phoff, ~std::uint64_t{0} - 16);
  EXPECT_EQ(parse_error(f.bytes), ElfError::kProgramHeadersOutsideFile);
}

TEST(Elf, SegmentPastTheEnd) {
  for (const Format* fmt : {&kElf32, &kElf64}) {
    Built f = firmware(*fmt).build();
    f.set_phdr(2, fmt->p_offset, f.bytes.size() - 7);  // 8 bytes from 7 before the end
    EXPECT_EQ(parse_error(f.bytes), ElfError::kSegmentOutsideFile);
    f.set_phdr(2, fmt->p_offset, f.bytes.size() - 8);  // exactly at the end is fine
    EXPECT_EQ(parse_error(f.bytes), kParsed);
    f.set_phdr(2, fmt->p_offset, f.bytes.size() + 1);
    f.set_phdr(2, fmt->p_filesz, 0);
    EXPECT_EQ(parse_error(f.bytes), ElfError::kSegmentOutsideFile);
    f = firmware(*fmt).build();
    f.set_phdr(0, fmt->p_filesz, f.bytes.size());
    f.set_phdr(0, fmt->p_memsz, f.bytes.size());
    EXPECT_EQ(parse_error(f.bytes), ElfError::kSegmentOutsideFile);
  }
  // p_offset + p_filesz wrapping around 2^64 (or 2^32 in a 32-bit file: no wrap in 64-bit arithmetic).
  Built f = firmware(kElf64).build();
  f.set_phdr(0, kElf64.p_offset, ~std::uint64_t{0} - 7);
  EXPECT_EQ(parse_error(f.bytes), ElfError::kSegmentOutsideFile);
  f = firmware(kElf32).build();
  f.set_phdr(0, kElf32.p_offset, 0xFFFFFFF8);
  EXPECT_EQ(parse_error(f.bytes), ElfError::kSegmentOutsideFile);
}

TEST(Elf, NonLoadSegmentsAreNotChecked) {
  Built f = firmware(kElf32).build();
  f.set_phdr(1, kElf32.p_offset, 0xFFFFFFF0);  // the note
  f.set_phdr(1, kElf32.p_filesz, 0x100);
  EXPECT_EQ(parse_error(f.bytes), kParsed);
}

TEST(Elf, FileSizeAboveMemSize) {
  for (const Format* fmt : {&kElf32, &kElf64}) {
    Built f = firmware(*fmt).build();
    f.set_phdr(2, fmt->p_memsz, 7);  // filesz 8
    EXPECT_EQ(parse_error(f.bytes), ElfError::kFileSizeAboveMemSize);
  }
}

TEST(Elf, AddressRangeWrapping) {
  // 32-bit files address 4 GiB: the last byte may be 0xFFFFFFFF, no further.
  Built f = firmware(kElf32).build();
  f.set_phdr(0, kElf32.p_paddr, 0xFFFFFFF0);
  EXPECT_EQ(parse_error(f.bytes), kParsed);
  f.set_phdr(0, kElf32.p_paddr, 0xFFFFFFF1);
  EXPECT_EQ(parse_error(f.bytes), ElfError::kAddressOverflow);
  f = firmware(kElf32).build();
  f.set_phdr(0, kElf32.p_vaddr, 0xFFFFFFF1);  // vaddr too: load() may use it
  EXPECT_EQ(parse_error(f.bytes), ElfError::kAddressOverflow);
  f = firmware(kElf32).build();
  f.set_phdr(2, kElf32.p_memsz, 0xFFFFFFFF);
  EXPECT_EQ(parse_error(f.bytes), ElfError::kAddressOverflow);

  f = firmware(kElf64).build();
  f.set_phdr(0, kElf64.p_paddr, ~std::uint64_t{0} - 15);
  EXPECT_EQ(parse_error(f.bytes), kParsed);
  f.set_phdr(0, kElf64.p_paddr, ~std::uint64_t{0} - 14);
  EXPECT_EQ(parse_error(f.bytes), ElfError::kAddressOverflow);
  f = firmware(kElf64).build();
  f.set_phdr(2, kElf64.p_memsz, ~std::uint64_t{0});
  EXPECT_EQ(parse_error(f.bytes), ElfError::kAddressOverflow);
  // Also the resource table's address.
  f = firmware(kElf64).build();
  f.set_shdr(2, kElf64.sh_addr, ~std::uint64_t{0} - 14);
  EXPECT_EQ(parse_error(f.bytes), ElfError::kAddressOverflow);
}

// --- Section headers and names. ---

TEST(Elf, SectionHeadersPastTheEnd) {
  for (const Format* fmt : {&kElf32, &kElf64}) {
    Built f = firmware(*fmt).build();
    f.set_header(fmt->e_shoff, f.bytes.size() + 8);
    EXPECT_EQ(parse_error(f.bytes), ElfError::kSectionHeadersOutsideFile);
    f.set_header(fmt->e_shoff, f.bytes.size() - f.shnum * fmt->shentsize + 1);
    EXPECT_EQ(parse_error(f.bytes), ElfError::kSectionHeadersOutsideFile);
    f = firmware(*fmt).build();
    f.set_header(fmt->e_shnum, 0xFEFF);
    EXPECT_EQ(parse_error(f.bytes), ElfError::kSectionHeadersOutsideFile);
  }
  Built f = firmware(kElf64).build();
  f.set_header(kElf64.e_shoff, ~std::uint64_t{0} - 63);
  EXPECT_EQ(parse_error(f.bytes), ElfError::kSectionHeadersOutsideFile);
}

TEST(Elf, SectionHeaderEntrySizeTooSmall) {
  for (const Format* fmt : {&kElf32, &kElf64}) {
    Built f = firmware(*fmt).build();
    f.set_header(fmt->e_shentsize, fmt->shentsize - 1);
    EXPECT_EQ(parse_error(f.bytes), ElfError::kBadSectionHeaders);
  }
}

TEST(Elf, BadStringTableIndex) {
  Built f = firmware(kElf32).build();
  f.set_header(kElf32.e_shstrndx, f.shnum);
  EXPECT_EQ(parse_error(f.bytes), ElfError::kBadStringTableIndex);
  f.set_header(kElf32.e_shstrndx, 0xFF00);
  EXPECT_EQ(parse_error(f.bytes), ElfError::kBadStringTableIndex);
}

TEST(Elf, StringTableMustBeAStringTableInTheFile) {
  for (const Format* fmt : {&kElf32, &kElf64}) {
    Built f = firmware(*fmt).build();
    f.set_shdr(f.shstrndx, fmt->sh_type, kShtProgbits);
    EXPECT_EQ(parse_error(f.bytes), ElfError::kBadStringTable);
    f = firmware(*fmt).build();
    f.set_shdr(f.shstrndx, fmt->sh_size, 0);
    EXPECT_EQ(parse_error(f.bytes), ElfError::kBadStringTable);
    f = firmware(*fmt).build();
    f.set_shdr(f.shstrndx, fmt->sh_size, f.bytes.size());
    EXPECT_EQ(parse_error(f.bytes), ElfError::kStringTableOutsideFile);
    f = firmware(*fmt).build();
    f.set_shdr(f.shstrndx, fmt->sh_offset, fmt->is64 ? ~std::uint64_t{0} : 0xFFFFFFFFU);
    EXPECT_EQ(parse_error(f.bytes), ElfError::kStringTableOutsideFile);
  }
}

TEST(Elf, SectionNameOutsideTheStringTable) {
  for (const Format* fmt : {&kElf32, &kElf64}) {
    Built f = firmware(*fmt).build();
    f.set_shdr(1, fmt->sh_name, f.strtab_size);  // one past the last byte
    EXPECT_EQ(parse_error(f.bytes), ElfError::kBadSectionName);
    f.set_shdr(1, fmt->sh_name, 0xFFFFFFFF);
    EXPECT_EQ(parse_error(f.bytes), ElfError::kBadSectionName);
    f.set_shdr(1, fmt->sh_name, f.strtab_size - 1);  // the final NUL: an empty name
    EXPECT_EQ(parse_error(f.bytes), kParsed);
  }
}

TEST(Elf, SectionNameWithoutTerminator) {
  for (const Format* fmt : {&kElf32, &kElf64}) {
    Built f = firmware(*fmt).build();
    f.bytes[f.strtab_offset + f.strtab_size - 1] = std::byte{'x'};  // ".shstrtabx", unterminated
    EXPECT_EQ(parse_error(f.bytes), ElfError::kUnterminatedStringTable);
  }
  // A table that ends in the middle of ".resource_table": the name there is ".reso", not the table.
  Built f = firmware(kElf32).build();
  const std::size_t rsc_name = get(f.bytes, f.shdr(2), kElf32.sh_name);
  f.set_shdr(f.shstrndx, kElf32.sh_size, rsc_name + 5);
  f.set_shdr(f.shstrndx, kElf32.sh_name, 0);               // ".shstrtab" is cut off too
  f.bytes[f.strtab_offset + rsc_name + 4] = std::byte{0};  // keep the table NUL-terminated
  auto image = ElfImage::parse(f.bytes);
  ASSERT_TRUE(image);
  EXPECT_EQ(error_of(image->resource_table()), ElfError::kNoResourceTable);
}

TEST(Elf, TwoResourceTables) {
  ElfBuilder b = firmware(kElf32);
  b.sections.push_back({".resource_table", kShtProgbits, kRam0 + 0xC0, kResourceTable, 0});
  EXPECT_EQ(parse_error(b.build().bytes), ElfError::kDuplicateResourceTable);
}

TEST(Elf, ResourceTableOutsideTheFile) {
  for (const Format* fmt : {&kElf32, &kElf64}) {
    Built f = firmware(*fmt).build();
    f.set_shdr(2, fmt->sh_size, kResourceTable.size() + 1);
    EXPECT_EQ(parse_error(f.bytes), ElfError::kResourceTableOutsideFile);
    f = firmware(*fmt).build();
    f.set_shdr(2, fmt->sh_offset, fmt->is64 ? ~std::uint64_t{0} - 3 : 0xFFFFFFFCU);
    EXPECT_EQ(parse_error(f.bytes), ElfError::kResourceTableOutsideFile);
    f = firmware(*fmt).build();
    f.set_shdr(2, fmt->sh_type, kShtNobits);  // no bytes in the file
    EXPECT_EQ(parse_error(f.bytes), ElfError::kResourceTableOutsideFile);
  }
}

// --- Loading into memory that cannot hold the image writes nothing. ---

void expect_load_refused(const ElfBuilder& b, ElfError want, LoadOptions options = {}) {
  const Built f = b.build();
  auto image = ElfImage::parse(f.bytes);
  ASSERT_TRUE(image) << to_string(image.error());
  Memory m;
  auto r = load(*image, m.regions, options);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), want) << to_string(r.error());
  EXPECT_TRUE(m.untouched());
  // check_fits, given the same memory by address only, says the same.
  auto checked = check_fits(*image, kRanges, options);
  ASSERT_FALSE(checked);
  EXPECT_EQ(checked.error(), want) << to_string(checked.error());
}

TEST(Elf, CheckFitsAcceptsWhatLoadAccepts) {
  for (const Format* fmt : {&kElf32, &kElf64}) {
    const Built f = firmware(*fmt, fmt->is64 ? kFar : kRam0).build();
    auto image = ElfImage::parse(f.bytes);
    ASSERT_TRUE(image);
    EXPECT_TRUE(check_fits(*image, kRanges));
    Memory m;
    EXPECT_TRUE(load(*image, m.regions));
    // Without the region it needs, both refuse.
    const std::array<MemoryRange, 1> only_ram1{MemoryRange{kRam1, kRamSize}};
    std::uint32_t bad = 99;
    EXPECT_EQ(error_of(check_fits(*image, only_ram1, {}, &bad)), ElfError::kSegmentOutsideMemory);
    EXPECT_EQ(bad, 0U) << "the first PT_LOAD is program header 0";
    EXPECT_EQ(error_of(check_fits(*image, kRanges, {elf::kMachineRiscv, false})), ElfError::kWrongMachine);
  }
}

TEST(Elf, SegmentOutsideEveryRegionWritesNothing) {
  ElfBuilder b = firmware(kElf32);
  b.segments[2].paddr = 0x20000000;  // the first segment fits, the last does not
  expect_load_refused(b, ElfError::kSegmentOutsideMemory);
  EXPECT_EQ(to_status(ElfError::kSegmentOutsideMemory), Status::kOutOfRange);

  b = firmware(kElf32);
  b.segments[2].paddr = kRam0 - 8;  // starts just before ram 0
  expect_load_refused(b, ElfError::kSegmentOutsideMemory);

  b = firmware(kElf32);
  b.segments[2].paddr = 0xFFFFFF00;  // no region there at all
  expect_load_refused(b, ElfError::kSegmentOutsideMemory);
}

TEST(Elf, SegmentTooLargeForItsRegionWritesNothing) {
  ElfBuilder b = firmware(kElf64, kFar);
  b.segments[2].memsz = kRamSize - 0x40 + 1;  // the bss runs one byte past the end of the region
  expect_load_refused(b, ElfError::kSegmentOutsideMemory);
  b.segments[2].memsz = kRamSize - 0x40;  // up to the last byte is fine
  const Built f = b.build();
  auto image = ElfImage::parse(f.bytes);
  ASSERT_TRUE(image);
  Memory m;
  EXPECT_TRUE(load(*image, m.regions));
  EXPECT_EQ(m.mem[2].back(), std::byte{0});
}

TEST(Elf, SegmentStraddlingTwoRegionsWritesNothing) {
  ElfBuilder b = firmware(kElf32);
  b.segments[2].paddr = kRam1 - 8;  // 8 bytes in ram 0, the rest in ram 1: contiguous, but two regions
  expect_load_refused(b, ElfError::kSegmentOutsideMemory);
}

TEST(Elf, HugeSegmentWritesNothing) {
  ElfBuilder b = firmware(kElf64);
  b.segments[2].memsz = std::uint64_t{1} << 40;
  expect_load_refused(b, ElfError::kSegmentOutsideMemory);
}

TEST(Elf, VaddrOutsideMemoryWritesNothing) {
  ElfBuilder b = firmware(kElf32);  // vaddrs 0x1000 and 0x1040: no region there
  expect_load_refused(b, ElfError::kSegmentOutsideMemory, {elf::kMachineNone, true});
}

TEST(Elf, PagedRegionsAreLoadedThroughTheirPageTable) {
  // Ram 0's bytes answer to two 128-byte pages at swapped device addresses.
  ElfBuilder b = firmware(kElf32);
  b.segments[0].paddr = kRam0 + 0x80;  // the first page of the device range: the second half of the buffer
  Memory m;
  const std::array<DeviceAddress, 2> pages{kRam0 + 0x80, kRam0};
  auto paged = IoRegion::paged(m.mem[0], pages, 7);
  ASSERT_TRUE(paged);
  const std::array<IoRegion, 1> regions{*paged};
  const Built f = b.build();
  auto image = ElfImage::parse(f.bytes);
  ASSERT_TRUE(image);
  ASSERT_TRUE(load(*image, regions));
  EXPECT_EQ(Bytes(m.mem[0].begin(), m.mem[0].begin() + 16), counting(16, 1));
  EXPECT_EQ(Bytes(m.mem[0].begin() + 0xC0, m.mem[0].begin() + 0xC8), counting(8, 0x40));
}

TEST(Elf, EveryErrorHasItsOwnMessage) {
  std::set<std::string> messages;
  const int count = static_cast<int>(ElfError::kSegmentOutsideMemory) + 1;
  for (int i = 0; i < count; ++i) {
    const char* s = to_string(static_cast<ElfError>(i));
    ASSERT_NE(s, nullptr);
    EXPECT_NE(std::string(s), "unknown ELF error") << i;
    messages.insert(s);
  }
  EXPECT_EQ(messages.size(), static_cast<std::size_t>(count));
  EXPECT_STREQ(to_string(static_cast<ElfError>(200)), "unknown ELF error");
  EXPECT_EQ(to_status(ElfError::kSegmentOutsideFile), Status::kMalformed);
}

// --- Sections by name (what a host reads besides the resource table, such as a log dictionary). ---

TEST(Elf, SectionByNameIsFoundWithItsBytesAndAddressAndNoOtherName) {
  for (const Format* fmt : {&kElf32, &kElf64}) {
    ElfBuilder b = firmware(*fmt);
    b.sections.push_back({"amp_log_fmt", kShtProgbits, 0, bytes_of({'h', 'i', 0}), 0});
    const Built f = b.build();
    auto image = ElfImage::parse(f.bytes);
    ASSERT_TRUE(image) << to_string(image.error());
    auto s = image->section("amp_log_fmt");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->data.data(), f.bytes.data() + f.section_offsets[2]);
    EXPECT_EQ(s->data.size(), 3U);
    EXPECT_EQ(s->addr, 0U);
    EXPECT_EQ(s->type, kShtProgbits);
    EXPECT_EQ(s->flags, 2U);  // what the builder writes: SHF_ALLOC
    auto bss = image->section(".bss");
    ASSERT_TRUE(bss);
    EXPECT_TRUE(bss->data.empty());  // SHT_NOBITS: no bytes in the file
    EXPECT_EQ(bss->addr, kRam0 + 0x48);
    // Only the whole name matches: neither a prefix nor a longer name.
    EXPECT_EQ(error_of(image->section("amp_log")), Status::kNotFound);
    EXPECT_EQ(error_of(image->section("amp_log_fmt_x")), Status::kNotFound);
    EXPECT_EQ(error_of(image->section("")), Status::kNotFound);
  }
}

TEST(Elf, SectionWhoseBytesLieOutsideTheFileIsRefused) {
  ElfBuilder b = firmware(kElf32);
  b.sections.push_back({"amp_log_fmt", kShtProgbits, 0, bytes_of({'h', 'i', 0}), 0});
  Built f = b.build();
  f.set_shdr(3, kElf32.sh_offset, f.bytes.size() - 1);  // 3 bytes from the last one: past the end
  auto image = ElfImage::parse(f.bytes);
  ASSERT_TRUE(image) << to_string(image.error());
  EXPECT_EQ(error_of(image->section("amp_log_fmt")), Status::kOutOfRange);
  EXPECT_TRUE(image->section(".resource_table"));
}

TEST(Elf, ImageWithoutSectionNamesHasNoSections) {
  ElfBuilder b = firmware(kElf32);
  b.with_sections = false;
  auto image = ElfImage::parse(b.build().bytes);
  ASSERT_TRUE(image);
  EXPECT_EQ(error_of(image->section(".resource_table")), Status::kNotFound);
}

}  // namespace
}  // namespace amp::rproc
