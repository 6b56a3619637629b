// SPDX-License-Identifier: BSD-3-Clause
// ELF loading: see include/amp/rproc/elf.hpp.
//
// Every field is read from the file exactly where the class's layout says, little-endian, into a 64-bit
// local, and checked against the file's size in 64-bit arithmetic before anything is derived from it. Sizes
// are narrowed to std::size_t only once they are known to lie inside the file (so a 64-bit file cannot wrap
// them on a 32-bit host).
#include "amp/rproc/elf.hpp"

#include <cstring>
#include <limits>

namespace amp::rproc {

namespace {

constexpr std::uint64_t kMax64 = std::numeric_limits<std::uint64_t>::max();

// e_ident
constexpr std::size_t kIdentSize = 16;
constexpr std::size_t kEiClass = 4;
constexpr std::size_t kEiData = 5;
constexpr std::size_t kEiVersion = 6;
constexpr std::uint8_t kClass32 = 1;
constexpr std::uint8_t kClass64 = 2;
constexpr std::uint8_t kDataLsb = 1;
constexpr std::uint8_t kDataMsb = 2;
constexpr std::uint32_t kVersionCurrent = 1;
constexpr std::uint16_t kTypeExec = 2;
constexpr std::uint16_t kTypeDyn = 3;
constexpr std::uint32_t kPtLoad = 1;
constexpr std::uint32_t kShtStrtab = 3;
constexpr std::uint32_t kShtNobits = 8;
constexpr std::uint64_t kPnXnum = 0xFFFF;
constexpr std::uint64_t kShnXindex = 0xFFFF;
constexpr char kResourceTableName[] = ".resource_table";

/// A field: its offset in the structure and its width in bytes (2, 4 or 8).
struct Field {
  std::size_t offset;
  std::size_t width;
};

/// Where the fields are, for one ELF class.
struct Layout {
  std::size_t ehdr_size;
  Field e_type, e_machine, e_version, e_entry, e_phoff, e_shoff, e_flags, e_ehsize, e_phentsize, e_phnum,
      e_shentsize, e_shnum, e_shstrndx;
  std::size_t phdr_size;
  Field p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags;
  std::size_t shdr_size;
  Field sh_name, sh_type, sh_addr, sh_offset, sh_size, sh_link, sh_info;
  std::uint64_t max_address;  // the class's address space: 2^32 - 1 or 2^64 - 1
};

constexpr Layout kLayout32{52,      {16, 2}, {18, 2}, {20, 4}, {24, 4}, {28, 4}, {32, 4},      {36, 4},
                           {40, 2}, {42, 2}, {44, 2}, {46, 2}, {48, 2}, {50, 2}, 32,           {0, 4},
                           {4, 4},  {8, 4},  {12, 4}, {16, 4}, {20, 4}, {24, 4}, 40,           {0, 4},
                           {4, 4},  {12, 4}, {16, 4}, {20, 4}, {24, 4}, {28, 4}, 0xFFFFFFFFULL};

constexpr Layout kLayout64{64,      {16, 2}, {18, 2}, {20, 4}, {24, 8}, {32, 8}, {40, 8}, {48, 4},
                           {52, 2}, {54, 2}, {56, 2}, {58, 2}, {60, 2}, {62, 2}, 56,      {0, 4},
                           {8, 8},  {16, 8}, {24, 8}, {32, 8}, {40, 8}, {4, 4},  64,      {0, 4},
                           {4, 4},  {16, 8}, {24, 8}, {32, 8}, {40, 4}, {44, 4}, kMax64};

/// Reads field `f` of the structure at `base`. The caller has checked that the structure is in `file`.
std::uint64_t read_field(std::span<const std::byte> file, std::size_t base, Field f) noexcept {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < f.width; ++i) {
    v |= std::uint64_t{static_cast<std::uint8_t>(file[base + f.offset + i])} << (8 * i);
  }
  return v;
}

/// Whether [offset, offset + size) lies inside a file of `file_size` bytes (no wrap-around).
constexpr bool in_file(std::uint64_t offset, std::uint64_t size, std::size_t file_size) noexcept {
  return offset <= file_size && size <= file_size - offset;
}

/// Whether [base, base + size) fits in the class's address space (size 0 always fits).
constexpr bool address_range_fits(std::uint64_t base, std::uint64_t size, std::uint64_t max) noexcept {
  if (base > max) return false;
  return size == 0 || size - 1 <= max - base;
}

/// The checked fields of one section header that parse() needs.
struct SectionHeader {
  std::uint64_t name, type, addr, offset, size, link, info;
};

SectionHeader read_section(std::span<const std::byte> file, const Layout& l, std::size_t base) noexcept {
  return {read_field(file, base, l.sh_name), read_field(file, base, l.sh_type),
          read_field(file, base, l.sh_addr), read_field(file, base, l.sh_offset),
          read_field(file, base, l.sh_size), read_field(file, base, l.sh_link),
          read_field(file, base, l.sh_info)};
}

}  // namespace

const char* to_string(ElfError e) noexcept {
  switch (e) {
    case ElfError::kNotElf:
      return "not an ELF file (bad magic)";
    case ElfError::kTruncatedHeader:
      return "file ends inside the ELF header";
    case ElfError::kBadClass:
      return "ELF class is neither 32- nor 64-bit";
    case ElfError::kBadDataEncoding:
      return "ELF data encoding is neither little- nor big-endian";
    case ElfError::kNotLittleEndian:
      return "big-endian ELF files are not supported";
    case ElfError::kBadVersion:
      return "ELF version is not 1";
    case ElfError::kWrongType:
      return "ELF type is not an executable (ET_EXEC) amp can load";
    case ElfError::kWrongMachine:
      return "ELF machine differs from the remote's";
    case ElfError::kBadHeaderSize:
      return "ELF header size (e_ehsize) too small";
    case ElfError::kBadProgramHeaders:
      return "bad program header entry size or count";
    case ElfError::kProgramHeadersOutsideFile:
      return "program header table lies outside the file";
    case ElfError::kSegmentOutsideFile:
      return "segment lies outside the file";
    case ElfError::kFileSizeAboveMemSize:
      return "segment's file size exceeds its memory size";
    case ElfError::kAddressOverflow:
      return "address range wraps around the address space";
    case ElfError::kBadSectionHeaders:
      return "bad section header entry size or count";
    case ElfError::kSectionHeadersOutsideFile:
      return "section header table lies outside the file";
    case ElfError::kBadStringTableIndex:
      return "section name string table index (e_shstrndx) is not a section";
    case ElfError::kBadStringTable:
      return "section name string table is not a string table in the file";
    case ElfError::kStringTableOutsideFile:
      return "section name string table lies outside the file";
    case ElfError::kUnterminatedStringTable:
      return "section name string table does not end with NUL";
    case ElfError::kBadSectionName:
      return "section name lies outside the string table";
    case ElfError::kResourceTableOutsideFile:
      return ".resource_table section lies outside the file";
    case ElfError::kDuplicateResourceTable:
      return "more than one .resource_table section";
    case ElfError::kNoResourceTable:
      return "no .resource_table section";
    case ElfError::kSegmentOutsideMemory:
      return "segment does not fit in one of the remote's memory regions";
  }
  return "unknown ELF error";
}

namespace elf {

MachineName machine_name(std::uint16_t machine) noexcept {
  // Names in fixed arrays, copied whole: the freestanding core links no libc string function but mem*.
  static constexpr struct {
    std::uint16_t value;
    char name[sizeof MachineName::text];
  } kNames[] = {{kMachineNone, "EM_NONE"},       {kMachineSparc, "EM_SPARC"},
                {kMachine386, "EM_386"},         {kMachineMips, "EM_MIPS"},
                {kMachinePpc, "EM_PPC"},         {kMachinePpc64, "EM_PPC64"},
                {kMachineArm, "EM_ARM"},         {kMachineSh, "EM_SH"},
                {kMachineIa64, "EM_IA_64"},      {kMachineX86_64, "EM_X86_64"},
                {kMachineXtensa, "EM_XTENSA"},   {kMachineTiC6000, "EM_TI_C6000"},
                {kMachineAarch64, "EM_AARCH64"}, {kMachineMicroblaze, "EM_MICROBLAZE"},
                {kMachineRiscv, "EM_RISCV"}};
  MachineName out;
  for (const auto& n : kNames) {
    if (n.value != machine) continue;
    std::memcpy(out.text, n.name, sizeof out.text);
    return out;
  }
  constexpr char kPrefix[] = "machine ";
  std::memcpy(out.text, kPrefix, sizeof kPrefix - 1);
  char digits[5];  // 65535 at most
  std::size_t n = 0;
  do {
    digits[n++] = static_cast<char>('0' + machine % 10);
    machine = static_cast<std::uint16_t>(machine / 10);
  } while (machine != 0);
  std::size_t pos = sizeof kPrefix - 1;
  while (n > 0) out.text[pos++] = digits[--n];
  out.text[pos] = '\0';
  return out;
}

}  // namespace elf

Status to_status(ElfError e) noexcept {
  switch (e) {
    case ElfError::kNotLittleEndian:
    case ElfError::kWrongType:
    case ElfError::kWrongMachine:
      return Status::kNotSupported;
    case ElfError::kNoResourceTable:
      return Status::kNotFound;
    case ElfError::kSegmentOutsideMemory:
      return Status::kOutOfRange;
    default:
      return Status::kMalformed;
  }
}

Expected<ElfImage, ElfError> ElfImage::parse(std::span<const std::byte> file,
                                             const ParseOptions& options) noexcept {
  const std::size_t size = file.size();
  constexpr std::uint8_t kMagic[4] = {0x7F, 'E', 'L', 'F'};
  for (std::size_t i = 0; i < 4 && i < size; ++i) {
    if (static_cast<std::uint8_t>(file[i]) != kMagic[i]) return unexpected(ElfError::kNotElf);
  }
  if (size < kIdentSize) return unexpected(ElfError::kTruncatedHeader);

  const auto cls = static_cast<std::uint8_t>(file[kEiClass]);
  if (cls != kClass32 && cls != kClass64) return unexpected(ElfError::kBadClass);
  const auto data = static_cast<std::uint8_t>(file[kEiData]);
  if (data == kDataMsb) return unexpected(ElfError::kNotLittleEndian);
  if (data != kDataLsb) return unexpected(ElfError::kBadDataEncoding);
  if (static_cast<std::uint8_t>(file[kEiVersion]) != kVersionCurrent)
    return unexpected(ElfError::kBadVersion);

  const Layout& l = cls == kClass64 ? kLayout64 : kLayout32;
  if (size < l.ehdr_size) return unexpected(ElfError::kTruncatedHeader);
  if (read_field(file, 0, l.e_version) != kVersionCurrent) return unexpected(ElfError::kBadVersion);
  const std::uint64_t type = read_field(file, 0, l.e_type);
  const bool pie = type == kTypeDyn && options.allow_position_independent;
  if (type != kTypeExec && !pie) return unexpected(ElfError::kWrongType);
  if (read_field(file, 0, l.e_ehsize) < l.ehdr_size) return unexpected(ElfError::kBadHeaderSize);

  ElfImage image;
  image.file_ = file;
  image.is64_ = cls == kClass64;
  image.pie_ = pie;
  image.machine_ = static_cast<std::uint16_t>(read_field(file, 0, l.e_machine));
  image.flags_ = static_cast<std::uint32_t>(read_field(file, 0, l.e_flags));
  image.entry_ = read_field(file, 0, l.e_entry);

  // --- Section header 0, when the header defers a count or index to it (extended numbering). ---
  const std::uint64_t shoff = read_field(file, 0, l.e_shoff);
  const std::uint64_t shentsize = read_field(file, 0, l.e_shentsize);
  std::uint64_t shnum = read_field(file, 0, l.e_shnum);
  std::uint64_t shstrndx = read_field(file, 0, l.e_shstrndx);
  std::uint64_t phnum = read_field(file, 0, l.e_phnum);
  const bool extended = shnum == 0 || shstrndx == kShnXindex || phnum == kPnXnum;
  if (shoff == 0) {
    // No section headers: nothing may refer to them. PN_XNUM is a bad program header count (the count
    // it defers to does not exist), the others bad section header fields.
    if (phnum == kPnXnum) return unexpected(ElfError::kBadProgramHeaders);
    if (shnum != 0 || shstrndx == kShnXindex) return unexpected(ElfError::kBadSectionHeaders);
    shstrndx = 0;
  } else {
    if (shentsize < l.shdr_size) return unexpected(ElfError::kBadSectionHeaders);
    if (extended) {
      if (!in_file(shoff, shentsize, size)) return unexpected(ElfError::kSectionHeadersOutsideFile);
      const SectionHeader s0 = read_section(file, l, static_cast<std::size_t>(shoff));
      if (shnum == 0) shnum = s0.size;
      if (shstrndx == kShnXindex) shstrndx = s0.link;
      if (phnum == kPnXnum) phnum = s0.info;
      if (shnum == 0) return unexpected(ElfError::kBadSectionHeaders);
    }
  }

  // --- Program headers. ---
  const std::uint64_t phoff = read_field(file, 0, l.e_phoff);
  const std::uint64_t phentsize = read_field(file, 0, l.e_phentsize);
  if (phnum != 0) {
    if (phentsize < l.phdr_size) return unexpected(ElfError::kBadProgramHeaders);
    // phnum < 2^32 and phentsize < 2^16: the product fits in 64 bits.
    if (!in_file(phoff, phnum * phentsize, size)) return unexpected(ElfError::kProgramHeadersOutsideFile);
    image.phoff_ = static_cast<std::size_t>(phoff);
    image.phentsize_ = static_cast<std::size_t>(phentsize);
    image.phnum_ = static_cast<std::uint32_t>(phnum);
  }
  for (std::uint32_t i = 0; i < image.phnum_; ++i) {
    auto ph = image.program_header(i);
    if (!ph) return unexpected(ph.error());
    if (ph->is_load) ++image.load_count_;
  }

  // --- Section header table. shnum may be a 64-bit count: check the product before multiplying. ---
  if (shoff == 0) return image;
  if (shnum > kMax64 / shentsize || !in_file(shoff, shnum * shentsize, size)) {
    return unexpected(ElfError::kSectionHeadersOutsideFile);
  }

  // --- Section names and the resource table. ---
  if (shstrndx == 0) return image;  // SHN_UNDEF: no section names, so no resource table either
  if (shstrndx >= shnum) return unexpected(ElfError::kBadStringTableIndex);
  const auto sh_base = [&](std::uint64_t index) {
    return static_cast<std::size_t>(shoff + index * shentsize);  // inside the file: checked above
  };
  const SectionHeader strtab = read_section(file, l, sh_base(shstrndx));
  if (strtab.type != kShtStrtab || strtab.size == 0) return unexpected(ElfError::kBadStringTable);
  if (!in_file(strtab.offset, strtab.size, size)) return unexpected(ElfError::kStringTableOutsideFile);
  const std::span<const std::byte> names =
      file.subspan(static_cast<std::size_t>(strtab.offset), static_cast<std::size_t>(strtab.size));
  // The ELF specification ends every string table with a NUL, which terminates every name in it.
  if (names.back() != std::byte{0}) return unexpected(ElfError::kUnterminatedStringTable);
  image.shoff_ = static_cast<std::size_t>(shoff);
  image.shentsize_ = static_cast<std::size_t>(shentsize);
  image.shnum_ = static_cast<std::size_t>(shnum);  // the table fits in the file: so does its count
  image.names_ = names;

  for (std::uint64_t i = 0; i < shnum; ++i) {
    const SectionHeader s = read_section(file, l, sh_base(i));
    if (s.name >= names.size()) return unexpected(ElfError::kBadSectionName);
    const auto name_len = sizeof kResourceTableName;  // including the NUL
    if (names.size() - static_cast<std::size_t>(s.name) < name_len ||
        std::memcmp(names.data() + static_cast<std::size_t>(s.name), kResourceTableName, name_len) != 0) {
      continue;
    }
    if (image.has_rsc_) return unexpected(ElfError::kDuplicateResourceTable);
    if (s.type == kShtNobits || !in_file(s.offset, s.size, size)) {
      return unexpected(ElfError::kResourceTableOutsideFile);
    }
    if (!address_range_fits(s.addr, s.size, l.max_address)) return unexpected(ElfError::kAddressOverflow);
    image.has_rsc_ = true;
    image.rsc_.file_offset = static_cast<std::size_t>(s.offset);
    image.rsc_.data = file.subspan(static_cast<std::size_t>(s.offset), static_cast<std::size_t>(s.size));
    image.rsc_.da = s.addr;
  }
  return image;
}

Expected<ElfImage::ProgramHeader, ElfError> ElfImage::program_header(std::uint32_t index) const noexcept {
  const Layout& l = is64_ ? kLayout64 : kLayout32;
  // Checked by parse(); checked again so that no index can read outside the file.
  const std::uint64_t base = std::uint64_t{phoff_} + std::uint64_t{index} * phentsize_;
  if (index >= phnum_ || !in_file(base, l.phdr_size, file_.size())) {
    return unexpected(ElfError::kProgramHeadersOutsideFile);
  }
  const auto b = static_cast<std::size_t>(base);
  ProgramHeader ph;
  if (read_field(file_, b, l.p_type) != kPtLoad) return ph;
  const std::uint64_t offset = read_field(file_, b, l.p_offset);
  const std::uint64_t filesz = read_field(file_, b, l.p_filesz);
  const std::uint64_t memsz = read_field(file_, b, l.p_memsz);
  const std::uint64_t paddr = read_field(file_, b, l.p_paddr);
  const std::uint64_t vaddr = read_field(file_, b, l.p_vaddr);
  if (!in_file(offset, filesz, file_.size())) return unexpected(ElfError::kSegmentOutsideFile);
  if (filesz > memsz) return unexpected(ElfError::kFileSizeAboveMemSize);
  if (!address_range_fits(paddr, memsz, l.max_address) || !address_range_fits(vaddr, memsz, l.max_address)) {
    return unexpected(ElfError::kAddressOverflow);
  }
  ph.is_load = true;
  ph.segment.da = paddr;
  ph.segment.vaddr = vaddr;
  ph.segment.data = file_.subspan(static_cast<std::size_t>(offset), static_cast<std::size_t>(filesz));
  ph.segment.file_offset = offset;
  ph.segment.memsz = memsz;
  ph.segment.flags = static_cast<std::uint32_t>(read_field(file_, b, l.p_flags));
  return ph;
}

Result<ElfSegment> ElfImage::segment(std::size_t index) const noexcept {
  std::size_t seen = 0;
  for (std::uint32_t i = 0; i < phnum_; ++i) {
    auto ph = program_header(i);
    if (!ph) return fail(to_status(ph.error()));  // only if the file changed after parse()
    if (!ph->is_load) continue;
    if (seen++ == index) return ph->segment;
  }
  return fail(Status::kNotFound);
}

Result<ElfSection> ElfImage::section(std::string_view name) const noexcept {
  const Layout& l = is64_ ? kLayout64 : kLayout32;
  for (std::size_t i = 1; i < shnum_; ++i) {           // 0 is SHN_UNDEF, no section
    const std::size_t base = shoff_ + i * shentsize_;  // inside the file: checked by parse()
    if (!in_file(base, l.shdr_size, file_.size())) return fail(Status::kOutOfRange);
    const SectionHeader s = read_section(file_, l, base);
    if (s.name >= names_.size()) continue;
    const std::size_t at = static_cast<std::size_t>(s.name);
    // Names end with a NUL (parse() checked the table's last byte): compare with the NUL included.
    if (names_.size() - at < name.size() + 1 ||
        std::memcmp(names_.data() + at, name.data(), name.size()) != 0 ||
        names_[at + name.size()] != std::byte{0}) {
      continue;
    }
    ElfSection out;
    out.addr = s.addr;
    out.type = static_cast<std::uint32_t>(s.type);
    out.flags = read_field(file_, base, Field{8, is64_ ? 8U : 4U});  // sh_flags
    if (s.type != kShtNobits) {
      if (!in_file(s.offset, s.size, file_.size())) return fail(Status::kOutOfRange);
      out.data = file_.subspan(static_cast<std::size_t>(s.offset), static_cast<std::size_t>(s.size));
    }
    return out;
  }
  return fail(Status::kNotFound);
}

Expected<ElfResourceTable, ElfError> ElfImage::resource_table() const noexcept {
  if (!has_rsc_) return unexpected(ElfError::kNoResourceTable);
  return rsc_;
}

ElfImage::SegmentIterator::SegmentIterator(const ElfImage* image, std::uint32_t index) noexcept
    : image_(image), index_(index) {
  skip_to_load();
}

void ElfImage::SegmentIterator::skip_to_load() noexcept {
  // A header that no longer decodes (the file changed after parse()) is skipped, never read past.
  while (index_ < image_->phnum_) {
    auto ph = image_->program_header(index_);
    if (ph && ph->is_load) return;
    ++index_;
  }
}

ElfSegment ElfImage::SegmentIterator::operator*() const noexcept {
  auto ph = image_->program_header(index_);
  return ph ? ph->segment : ElfSegment{};
}

ElfImage::SegmentIterator& ElfImage::SegmentIterator::operator++() noexcept {
  ++index_;
  skip_to_load();
  return *this;
}

ElfImage::SegmentRange ElfImage::segments() const noexcept {
  return {SegmentIterator(this, 0), SegmentIterator(this, phnum_)};
}

namespace {

/// The first region that holds all of [da, da + memsz), and the offset there.
struct Placement {
  const metal::IoRegion* region = nullptr;
  std::size_t offset = 0;
};

Placement place(MemoryMap memory, metal::DeviceAddress da, std::uint64_t memsz) noexcept {
  if (memsz > std::numeric_limits<std::size_t>::max()) return {};  // larger than any region here
  for (const metal::IoRegion& r : memory) {
    if (auto off = r.offset_of(da, static_cast<std::size_t>(memsz))) return {&r, *off};
  }
  return {};
}

}  // namespace

namespace {

/// What load() and check_fits() share: the type and machine checks, then `fn(index, segment, da)` for each
/// PT_LOAD segment with p_memsz > 0, stopping at the first error it returns.
template <class Fn>
Expected<void, ElfError> walk_loadable(const ElfImage& image, const LoadOptions& options, Fn&& fn) noexcept {
  // A PIE's addresses are relative to wherever a dynamic loader would put it: nothing says where in the
  // remote.
  if (image.position_independent()) return unexpected(ElfError::kWrongType);
  if (options.machine != elf::kMachineNone && options.machine != image.machine()) {
    return unexpected(ElfError::kWrongMachine);
  }
  for (std::uint32_t i = 0; i < image.program_header_count(); ++i) {
    auto ph = image.program_header(i);
    if (!ph) return unexpected(ph.error());
    if (!ph->is_load || ph->segment.memsz == 0) continue;
    const metal::DeviceAddress da = options.use_vaddr ? ph->segment.vaddr : ph->segment.da;
    if (auto r = fn(i, ph->segment, da); !r) return r;
  }
  return {};
}

}  // namespace

Expected<void, ElfError> check_fits(const ElfImage& image, std::span<const MemoryRange> memory,
                                    const LoadOptions& options, std::uint32_t* program_header) noexcept {
  return walk_loadable(
      image, options,
      [&](std::uint32_t i, const ElfSegment& s, metal::DeviceAddress da) -> Expected<void, ElfError> {
        for (const MemoryRange& r : memory) {
          // [da, da + memsz) in [r.da, r.da + r.size), without overflow (parse checked da + memsz).
          if (da >= r.da && da - r.da <= r.size && s.memsz <= r.size - (da - r.da)) return {};
        }
        if (program_header != nullptr) *program_header = i;
        return unexpected(ElfError::kSegmentOutsideMemory);
      });
}

Expected<void, ElfError> load(const ElfImage& image, MemoryMap memory, const LoadOptions& options) noexcept {
  // Two walks: check every segment, then write. Nothing is written unless all fit.
  auto fits = walk_loadable(
      image, options,
      [&](std::uint32_t, const ElfSegment& s, metal::DeviceAddress da) -> Expected<void, ElfError> {
        if (place(memory, da, s.memsz).region == nullptr) return unexpected(ElfError::kSegmentOutsideMemory);
        return {};
      });
  if (!fits) return fits;
  return walk_loadable(
      image, options,
      [&](std::uint32_t, const ElfSegment& s, metal::DeviceAddress da) -> Expected<void, ElfError> {
        const Placement p = place(memory, da, s.memsz);
        // memsz fits the region, so it fits std::size_t; data.size() <= memsz.
        const auto memsz = static_cast<std::size_t>(s.memsz);
        if (p.region == nullptr || !ok(p.region->write(p.offset, s.data)) ||
            !ok(p.region->fill(p.offset + s.data.size(), std::byte{0}, memsz - s.data.size()))) {
          return unexpected(ElfError::kSegmentOutsideMemory);  // unreachable: checked above
        }
        return {};
      });
}

}  // namespace amp::rproc
