// SPDX-License-Identifier: BSD-3-Clause
// ELF firmware images: parsing and loading into a remote processor's memory.
//
// A remote processor's firmware is a 32- or 64-bit little-endian ELF executable (ET_EXEC). ElfImage::parse
// checks the whole file once: the ELF header, every program header of type PT_LOAD, the section headers and
// the section-name string table, and the `.resource_table` section. Every offset, size, count and address is
// bounds-checked (in 64-bit arithmetic, so that products and sums cannot wrap) before it is used, and each
// failure has its own ElfError. load() then copies the PT_LOAD segments into the remote's memory, given as a
// list of IoRegions (which translate device addresses): it first checks that every segment fits entirely in
// one region and writes nothing at all unless they all do.
//
// Extended numbering (e_phnum == PN_XNUM, e_shnum == 0 with section headers, e_shstrndx == SHN_XINDEX) is
// supported: the real values are taken from section header 0, as the ELF specification says.
//
// Not checked: overlapping segments (a later segment overwrites an earlier one, as with Linux remoteproc),
// p_align, and the contents of the resource table (see resource_table.hpp). load() copies bytes only; the
// caller cleans caches (metal/cache.hpp) before starting the remote.
//
// Thread-safety: ElfImage is an immutable view of the file (like std::span); any number of threads may use
// one concurrently. The file's bytes must not change while an ElfImage refers to them; if they do, accessors
// still never read outside the file (segments come back empty) and load() still writes only inside the
// regions, but it may then fail after having written part of the image.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "amp/metal/io_region.hpp"
#include "amp/metal/result.hpp"

namespace amp::rproc {

/// Why a file was refused. to_status() maps each to a Status: kMalformed for a broken file, kNotSupported
/// for a valid ELF file amp cannot load, kNotFound for a missing resource table, kOutOfRange for a segment
/// outside the remote's memory.
enum class ElfError : std::uint8_t {
  kNotElf,                     ///< The file does not start with "\x7fELF".
  kTruncatedHeader,            ///< The file ends inside the ELF header.
  kBadClass,                   ///< EI_CLASS is neither ELFCLASS32 nor ELFCLASS64.
  kBadDataEncoding,            ///< EI_DATA is neither ELFDATA2LSB nor ELFDATA2MSB.
  kNotLittleEndian,            ///< A big-endian file (ELFDATA2MSB): not supported.
  kBadVersion,                 ///< EI_VERSION or e_version is not EV_CURRENT (1).
  kWrongType,                  ///< e_type is not ET_EXEC (nor ET_DYN where ParseOptions allow it), or
                               ///< load() was given a position-independent (ET_DYN) image.
  kWrongMachine,               ///< e_machine differs from the machine the caller asked for.
  kBadHeaderSize,              ///< e_ehsize is smaller than the ELF header of the file's class.
  kBadProgramHeaders,          ///< e_phentsize too small for a program header, or PN_XNUM without sections.
  kProgramHeadersOutsideFile,  ///< The program header table does not fit in the file.
  kSegmentOutsideFile,         ///< A PT_LOAD segment's [p_offset, p_offset + p_filesz) is not in the file.
  kFileSizeAboveMemSize,       ///< A PT_LOAD segment has p_filesz > p_memsz.
  kAddressOverflow,            ///< A segment's or the resource table's address range wraps around.
  kBadSectionHeaders,          ///< e_shentsize too small, or section counts without a section header table.
  kSectionHeadersOutsideFile,  ///< The section header table does not fit in the file.
  kBadStringTableIndex,        ///< e_shstrndx (or its extended value) is not a section index.
  kBadStringTable,             ///< The section-name string table is not an SHT_STRTAB with bytes in the file.
  kStringTableOutsideFile,     ///< The section-name string table does not fit in the file.
  kUnterminatedStringTable,    ///< The string table's last byte is not NUL, so a name may be unterminated.
  kBadSectionName,             ///< A section's sh_name lies outside the string table.
  kResourceTableOutsideFile,   ///< `.resource_table` does not fit in the file (or is SHT_NOBITS).
  kDuplicateResourceTable,     ///< More than one section is named `.resource_table`.
  kNoResourceTable,            ///< The file has no `.resource_table` section.
  kSegmentOutsideMemory,       ///< A segment does not fit entirely inside one of the remote's regions.
};

/// A short, static, one-line description of `e` ("segment lies outside the file"). Never null.
const char* to_string(ElfError e) noexcept;

/// The Status class of `e` (see ElfError).
Status to_status(ElfError e) noexcept;

/// Values of the ELF header and program header fields that callers check.
namespace elf {
inline constexpr std::uint16_t kMachineNone = 0;  ///< EM_NONE; in LoadOptions: accept any machine.
inline constexpr std::uint16_t kMachineSparc = 2;
inline constexpr std::uint16_t kMachine386 = 3;
inline constexpr std::uint16_t kMachineMips = 8;
inline constexpr std::uint16_t kMachinePpc = 20;
inline constexpr std::uint16_t kMachinePpc64 = 21;
inline constexpr std::uint16_t kMachineArm = 40;
inline constexpr std::uint16_t kMachineSh = 42;
inline constexpr std::uint16_t kMachineIa64 = 50;
inline constexpr std::uint16_t kMachineX86_64 = 62;
inline constexpr std::uint16_t kMachineXtensa = 94;
inline constexpr std::uint16_t kMachineTiC6000 = 140;
inline constexpr std::uint16_t kMachineAarch64 = 183;
inline constexpr std::uint16_t kMachineMicroblaze = 189;
inline constexpr std::uint16_t kMachineRiscv = 243;
inline constexpr std::uint32_t kSegmentExecute = 1;  ///< PF_X
inline constexpr std::uint32_t kSegmentWrite = 2;    ///< PF_W
inline constexpr std::uint32_t kSegmentRead = 4;     ///< PF_R

/// An e_machine value's name, for messages: "EM_ARM" (the ELF specification's name), or "machine 1234"
/// for a value without a name here. A value (no heap): `machine_name(m).c_str()`.
struct MachineName {
  char text[16] = {};  // "machine 65535" and its NUL fit
  const char* c_str() const noexcept { return text; }
};
MachineName machine_name(std::uint16_t machine) noexcept;
}  // namespace elf

/// A PT_LOAD segment of a parsed image.
struct ElfSegment {
  metal::DeviceAddress da = 0;      ///< p_paddr: where the remote expects the segment.
  metal::DeviceAddress vaddr = 0;   ///< p_vaddr.
  std::span<const std::byte> data;  ///< The p_filesz bytes of the file at p_offset.
  std::uint64_t file_offset = 0;    ///< p_offset.
  std::uint64_t memsz = 0;          ///< p_memsz >= data.size(); the rest is zero-filled when loaded.
  std::uint32_t flags = 0;          ///< p_flags (elf::kSegmentRead | kSegmentWrite | kSegmentExecute).
};

/// The `.resource_table` section of a parsed image.
struct ElfResourceTable {
  std::size_t file_offset = 0;      ///< sh_offset.
  std::span<const std::byte> data;  ///< The sh_size bytes of the file at sh_offset.
  metal::DeviceAddress da = 0;      ///< sh_addr: where the loaded table lives in the remote's memory.
};

/// A section of a parsed image, by name (ElfImage::section).
struct ElfSection {
  std::span<const std::byte> data;  ///< The sh_size bytes of the file at sh_offset (empty for SHT_NOBITS).
  metal::DeviceAddress addr = 0;    ///< sh_addr.
  std::uint32_t type = 0;           ///< sh_type.
  std::uint64_t flags = 0;          ///< sh_flags.
};

struct ParseOptions {
  /// Also accept ET_DYN (a position-independent executable), for inspection only: a "native" firmware (a
  /// Linux program that is the remote, see rproc/linux/process.hpp) is PIE by default, and its
  /// `.resource_table` is read, not loaded. load() refuses such an image (kWrongType).
  bool allow_position_independent = false;
};

class ElfImage {
 public:
  /// An empty image: no segments, no resource table (a placeholder until a file is parsed).
  ElfImage() = default;

  /// Parses and checks `file`, which must outlive the image and not change while it is used.
  [[nodiscard]] static Expected<ElfImage, ElfError> parse(std::span<const std::byte> file,
                                                          const ParseOptions& options = {}) noexcept;

  /// True for an ET_DYN image (only with ParseOptions::allow_position_independent).
  bool position_independent() const noexcept { return pie_; }

  /// 32 or 64.
  unsigned elf_class() const noexcept { return is64_ ? 64U : 32U; }
  /// e_machine (elf::kMachineArm...).
  std::uint16_t machine() const noexcept { return machine_; }
  /// e_flags (processor-specific, e.g. the ARM EABI version).
  std::uint32_t flags() const noexcept { return flags_; }
  /// e_entry: the remote's boot address.
  metal::DeviceAddress entry() const noexcept { return entry_; }
  std::span<const std::byte> file() const noexcept { return file_; }

  /// Number of PT_LOAD segments (including those with p_memsz 0).
  std::size_t segment_count() const noexcept { return load_count_; }
  /// The `index`-th PT_LOAD segment, or kNotFound. Walks the program headers: O(e_phnum); iterate with
  /// segments() to visit them all in O(e_phnum).
  [[nodiscard]] Result<ElfSegment> segment(std::size_t index) const noexcept;

  /// The `.resource_table` section, or kNoResourceTable.
  [[nodiscard]] Expected<ElfResourceTable, ElfError> resource_table() const noexcept;

  /// The first section named `name`: kNotFound when there is none (or the image has no section names),
  /// kOutOfRange when its bytes do not lie in the file.
  [[nodiscard]] Result<ElfSection> section(std::string_view name) const noexcept;

  /// A forward range over the PT_LOAD segments: `for (const ElfSegment& s : image.segments())`.
  /// An input iterator that yields segments by value (decoded from the file on each dereference).
  class SegmentIterator {
   public:
    using value_type = ElfSegment;
    using difference_type = std::ptrdiff_t;

    SegmentIterator() = default;
    ElfSegment operator*() const noexcept;
    SegmentIterator& operator++() noexcept;
    SegmentIterator operator++(int) noexcept {
      SegmentIterator old = *this;
      ++*this;
      return old;
    }
    bool operator==(const SegmentIterator& o) const noexcept { return index_ == o.index_; }

   private:
    friend class ElfImage;
    SegmentIterator(const ElfImage* image, std::uint32_t index) noexcept;
    void skip_to_load() noexcept;
    const ElfImage* image_ = nullptr;
    std::uint32_t index_ = 0;  // program header index
  };
  struct SegmentRange {
    SegmentIterator first;
    SegmentIterator last;
    SegmentIterator begin() const noexcept { return first; }
    SegmentIterator end() const noexcept { return last; }
  };
  SegmentRange segments() const noexcept;

  /// Program header `index` (any type), fully checked: whether it is PT_LOAD, and the segment if it is.
  /// For load() and the iterators; callers use segment() or segments().
  struct ProgramHeader {
    bool is_load = false;
    ElfSegment segment;
  };
  [[nodiscard]] Expected<ProgramHeader, ElfError> program_header(std::uint32_t index) const noexcept;
  std::uint32_t program_header_count() const noexcept { return phnum_; }

 private:
  std::span<const std::byte> file_{};
  bool is64_ = false;
  bool pie_ = false;
  std::uint16_t machine_ = 0;
  std::uint32_t flags_ = 0;
  metal::DeviceAddress entry_ = 0;
  std::size_t phoff_ = 0;
  std::size_t phentsize_ = 0;
  std::uint32_t phnum_ = 0;
  std::size_t load_count_ = 0;
  bool has_rsc_ = false;
  ElfResourceTable rsc_{};
  // The section header table and the section names, as parse() checked them (shnum_ 0: none).
  std::size_t shoff_ = 0;
  std::size_t shentsize_ = 0;
  std::size_t shnum_ = 0;
  std::span<const std::byte> names_{};
};

/// The remote's memory: windows of device addresses, each an IoRegion (which may be paged).
using MemoryMap = std::span<const metal::IoRegion>;

struct LoadOptions {
  /// e_machine the file must have; elf::kMachineNone accepts any.
  std::uint16_t machine = elf::kMachineNone;
  /// Place segments at p_vaddr instead of p_paddr (for remotes whose linker scripts put the load address
  /// in p_vaddr only).
  bool use_vaddr = false;
};

/// A window of the remote's memory by device address only, for checking an image without a mapping of it.
struct MemoryRange {
  metal::DeviceAddress da = 0;
  std::uint64_t size = 0;
};

/// The checks load() makes before it writes (type, machine, every PT_LOAD segment's whole [da, da + p_memsz)
/// inside one range), against memory described by address only: what a host can tell about a firmware for a
/// remote whose memory it does not map (the kernel's remoteproc loads it). Writes nothing. On
/// kSegmentOutsideMemory, `*program_header` (when given) is the index of the segment's program header.
[[nodiscard]] Expected<void, ElfError> check_fits(const ElfImage& image, std::span<const MemoryRange> memory,
                                                  const LoadOptions& options = {},
                                                  std::uint32_t* program_header = nullptr) noexcept;

/// Loads `image` into `memory`: for each PT_LOAD segment with p_memsz > 0, copies p_filesz bytes to its
/// device address and zeroes the following p_memsz - p_filesz bytes. First checks the type (ET_EXEC), the
/// machine and that every
/// segment's whole [da, da + p_memsz) lies inside a single region (the first region that holds it is used);
/// on any failure nothing has been written. A segment spanning two adjacent regions is refused
/// (kSegmentOutsideMemory): pass one region for contiguous memory.
[[nodiscard]] Expected<void, ElfError> load(const ElfImage& image, MemoryMap memory,
                                            const LoadOptions& options = {}) noexcept;

}  // namespace amp::rproc
