// SPDX-License-Identifier: BSD-3-Clause
// Remoteproc resource tables: parsing, validation, visiting, write-back and building.
//
// The layout is Linux remoteproc's (include/linux/remoteproc.h) and OpenAMP's, byte for byte, little-endian:
//
//   header:   le32 ver (1); le32 num; le32 reserved[2]; le32 offset[num]   (offsets from the table start)
//   entry:    le32 type; then a body that depends on the type:
//     kRscCarveout (0), kRscDevmem (1):  le32 da; le32 pa; le32 len; le32 flags; le32 reserved; char name[32]
//     kRscTrace (2):                     le32 da; le32 len; le32 reserved; char name[32]
//     kRscVdev (3):                      see amp/virtio/rsc_vdev.hpp (header, vrings, then config bytes)
//     vendor (kRscVendorStart..kRscVendorEnd - 1): a vendor-defined body, which extends up to the next entry
//                                        (by offset) or the table's end.
//
// ResourceTable::parse validates a whole table held in an IoRegion (it may be shared memory the peer can
// change at any time): every value is read once into a local, checked, then used. What parse learns about the
// layout (the entry count, each entry's offset, type and extent) is kept in the ResourceTable; for_each and
// the write-back functions rely on that copy for bounds and re-read (and re-check) only the entries' bodies,
// so a peer that rewrites the table after parse can make a walk fail but never make amp access memory
// outside the table.
//
// Validation, in this order (each failure is an RscError, reported with the index of the offending entry in
// the offset array, or kNoEntry for the header): the table holds the header and is 4-byte aligned in memory;
// ver is 1; the offset array lies inside the table; num <= kMaxEntries; every offset is 4-byte aligned, at or
// after the end of the offset array and leaves room for the type word; the type is known (0..3 or vendor);
// each entry's body (for a vdev: its header, its vrings and its config space) lies inside the table; names
// are NUL-terminated within 32 bytes; a vdev has 1..kMaxVrings vrings, each with num a power of two
// <= kMaxVringNum and align a power of two >= 4 (da may be kRscAddrAny); finally no two entries overlap.
//
// Unknown types (4..127 and >= 512) are refused with kUnknownType -> Status::kNotSupported: the table may
// be valid for a newer remoteproc, but amp cannot know such an entry's extent and so cannot check it. (The
// kernel skips them with a warning; amp prefers to refuse what it cannot check.)
//
// Requires a little-endian host (as all of amp's shared-memory structures): parse reads native words.
//
// Thread-safety: ResourceTable is a value holding a view of the table's memory (like IoRegion) plus a copy
// of its layout; copies are independent and const member functions may run concurrently with each other.
// Whether the *memory* may change concurrently is the remoteproc protocol's business (the host writes back
// while the remote is stopped); amp stays memory-safe either way. TableBuilder is not thread-safe: one
// thread at a time.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "amp/metal/io_region.hpp"
#include "amp/metal/result.hpp"
#include "amp/virtio/ring.hpp"
#include "amp/virtio/rsc_vdev.hpp"

namespace amp::rproc {

/// Entry types (struct fw_rsc_hdr's type).
inline constexpr std::uint32_t kRscCarveout = 0;
inline constexpr std::uint32_t kRscDevmem = 1;
inline constexpr std::uint32_t kRscTrace = 2;
inline constexpr std::uint32_t kRscVdev = virtio::kRscVdev;
inline constexpr std::uint32_t kRscVendorStart = 128;  ///< First vendor-specific type.
inline constexpr std::uint32_t kRscVendorEnd = 512;    ///< One past the last vendor-specific type.

/// A da or pa of this value asks the host to choose the address (FW_RSC_ADDR_ANY).
inline constexpr std::uint32_t kRscAddrAny = virtio::kRscAddrAny;
/// Bytes of a name field (RPROC_MAX_NAME_LEN), including its terminating NUL.
inline constexpr std::size_t kRscNameSize = 32;

/// Sizes of the fixed parts of the table and its entries, in bytes. Entry sizes include the type word.
inline constexpr std::size_t kRscHeaderSize = virtio::kRscTableHeaderSize;  // ver, num, reserved[2]
inline constexpr std::size_t kRscCarveoutSize = 4 + 20 + kRscNameSize;      // also devmem
inline constexpr std::size_t kRscTraceSize = 4 + 12 + kRscNameSize;
inline constexpr std::size_t kRscVdevMinSize = 4 + virtio::kVdevHeaderSize;  // without vrings and config

/// Limits of amp's implementation (the format allows more; more is refused with kNotSupported).
inline constexpr std::uint32_t kMaxEntries = 32;      ///< Entries per table.
inline constexpr std::uint32_t kMaxVrings = 8;        ///< Vrings per vdev (Linux itself accepts 2).
inline constexpr std::uint32_t kMaxVringNum = virtio::kMaxQueueSize;  ///< Largest vring size (split-ring limit).

/// Offsets within carveout/devmem and trace bodies (after the type word).
namespace rsc {
inline constexpr std::size_t kCarveoutDa = 0;
inline constexpr std::size_t kCarveoutPa = 4;
inline constexpr std::size_t kCarveoutLen = 8;
inline constexpr std::size_t kCarveoutFlags = 12;
inline constexpr std::size_t kCarveoutName = 20;
inline constexpr std::size_t kTraceDa = 0;
inline constexpr std::size_t kTraceLen = 4;
inline constexpr std::size_t kTraceName = 12;
}  // namespace rsc

/// Why a table (or an entry) was refused. to_status() gives its Status: kMalformed for a broken table,
/// kNotSupported for a table amp cannot handle (another version, an unknown type, above amp's limits),
/// kMisaligned for a table not 4-byte aligned in memory, kBroken when an entry changed after parse, and for
/// kHandler the Status the visitor returned.
enum class RscError : std::uint8_t {
  kNone,               ///< No error.
  kTableTooSmall,      ///< The table is smaller than its 16-byte header.
  kTableMisaligned,    ///< The table's memory is not 4-byte aligned.
  kBadVersion,         ///< ver is not 1.
  kOffsetsOutside,     ///< num is so large that the offset array passes the table's end.
  kTooManyEntries,     ///< num > kMaxEntries.
  kOffsetMisaligned,   ///< An entry offset is not a multiple of 4.
  kOffsetInHeader,     ///< An entry offset points into the header or the offset array.
  kOffsetOutside,      ///< An entry offset leaves no room for the type word inside the table.
  kUnknownType,        ///< A type that is neither 0..3 nor vendor-specific (128..511).
  kEntryTruncated,     ///< The entry's fixed body (for a vdev: its header) passes the table's end.
  kVringsTruncated,    ///< A vdev's vrings pass the table's end.
  kConfigTruncated,    ///< A vdev's config space passes the table's end.
  kNameNotTerminated,  ///< A name has no NUL within its 32 bytes.
  kZeroVrings,         ///< A vdev declares no vrings.
  kTooManyVrings,      ///< A vdev declares more than kMaxVrings vrings.
  kBadVringNum,        ///< A vring's num is not a power of two in [1, kMaxVringNum].
  kBadVringAlign,      ///< A vring's align is not a power of two >= 4.
  kOverlap,            ///< Two entries overlap (the reported one reaches into or starts inside the other).
  kChanged,            ///< An entry's body changed after parse so that it no longer fits where it was.
  kHandler,            ///< A visitor's handler returned an error (see RscFailure::status).
};

/// A short, static, one-line description of `e` ("vring num is not a power of two"). Never null.
const char* to_string(RscError e) noexcept;

/// The Status class of `e` (see RscError). kNone gives kOk; kHandler gives kInternal (the real Status is in
/// RscFailure::status).
Status to_status(RscError e) noexcept;

/// An RscError with where it happened.
struct RscFailure {
  static constexpr std::uint32_t kNoEntry = 0xFFFFFFFF;  ///< The failure concerns the header.
  RscError error = RscError::kNone;
  std::uint32_t entry = kNoEntry;  ///< Index in the offset array of the offending entry.
  Status status = Status::kOk;     ///< to_status(error), or for kHandler what the handler returned.
};

/// A fixed name field: up to 31 characters and a NUL.
struct RscName {
  std::array<char, kRscNameSize> bytes{};
  /// The characters before the first NUL.
  std::string_view view() const noexcept;
};

/// A carveout (or devmem: same layout): memory the remote needs, at device address da and physical pa.
struct Carveout {
  std::uint32_t da = 0;  ///< kRscAddrAny: the host chooses.
  std::uint32_t pa = 0;  ///< kRscAddrAny: the host chooses.
  std::uint32_t len = 0;
  std::uint32_t flags = 0;
  RscName name;
};
using Devmem = Carveout;

/// A trace buffer the remote writes its log into.
struct Trace {
  std::uint32_t da = 0;
  std::uint32_t len = 0;
  RscName name;
};

/// A virtio device. vrings[i].da is kAnyAddress where the table holds kRscAddrAny (as RscVdevTransport
/// reports it); the vrings' `pa` words (reserved in Linux) are not reported.
struct Vdev {
  std::uint32_t id = 0;
  std::uint32_t notify_id = 0;
  std::uint32_t dfeatures = 0;
  std::uint32_t gfeatures = 0;
  std::uint32_t config_len = 0;
  std::uint8_t status = 0;
  std::uint32_t num_vrings = 0;  ///< 1..kMaxVrings; vrings[num_vrings..] are zero.
  std::array<virtio::QueueInfo, kMaxVrings> vrings{};
  std::span<const virtio::QueueInfo> rings() const noexcept { return {vrings.data(), num_vrings}; }
};

/// What parse recorded about one entry.
struct RscEntry {
  std::uint32_t offset = 0;  ///< From the table's start, where the type word is.
  std::uint32_t type = 0;
  std::size_t size = 0;  ///< Bytes from `offset` the entry occupies, type word included.
};

/// Receives the entries of a table, in offset-array order. `index` is the entry's index in the offset array
/// (what the write-back functions take). A handler that returns an error stops the walk. Handlers not
/// overridden accept the entry and do nothing.
class ResourceVisitor {
 public:
  // Inline on purpose: a key function in the core (built with -fno-rtti) would leave RTTI-enabled users
  // without the class's typeinfo.
  virtual Status on_carveout(std::uint32_t /*index*/, const Carveout& /*c*/) noexcept { return Status::kOk; }
  virtual Status on_devmem(std::uint32_t /*index*/, const Devmem& /*d*/) noexcept { return Status::kOk; }
  virtual Status on_trace(std::uint32_t /*index*/, const Trace& /*t*/) noexcept { return Status::kOk; }
  /// `body`: the entry without its type word, exactly as long as it declares (header, vrings, config); it
  /// can be handed to virtio::RscVdevTransport::open.
  virtual Status on_vdev(std::uint32_t /*index*/, const Vdev& /*v*/, metal::IoRegion /*body*/) noexcept {
    return Status::kOk;
  }
  /// `body`: the entry without its type word, up to the next entry (by offset) or the table's end.
  virtual Status on_vendor(std::uint32_t /*index*/, std::uint32_t /*type*/,
                           metal::IoRegion /*body*/) noexcept {
    return Status::kOk;
  }

 protected:
  ~ResourceVisitor() = default;
};

class ResourceTable {
 public:
  /// An empty table (no entries).
  ResourceTable() = default;

  /// Validates the table that fills `table` (see the top of this file).
  [[nodiscard]] static Expected<ResourceTable, RscFailure> parse(const metal::IoRegion& table) noexcept;

  std::uint32_t entry_count() const noexcept { return num_; }
  /// Entry `index` as parse found it; kNotFound past the end.
  [[nodiscard]] Result<RscEntry> entry(std::uint32_t index) const noexcept;
  /// The table's memory.
  const metal::IoRegion& region() const noexcept { return table_; }

  /// Re-reads each entry's body, checks it again (kChanged when it no longer fits its recorded extent) and
  /// hands it to `visitor`. Stops at the first failure.
  [[nodiscard]] Expected<void, RscFailure> for_each(ResourceVisitor& visitor) const noexcept;

  // --- Write-back, for the host after it allocated memory. Each returns kNotFound for an index past the
  // end (or a vring the entry does not have), kInvalidArgument when the entry has another type, kOutOfRange
  // for an address that does not fit the table's 32-bit fields (or is kRscAddrAny), kMalformed when the
  // entry changed after parse so that the field is no longer inside it. ---

  /// Sets carveout `index`'s da and pa.
  [[nodiscard]] Status set_carveout_address(std::uint32_t index, metal::DeviceAddress da,
                                            metal::DeviceAddress pa) const noexcept;
  /// Sets trace `index`'s da.
  [[nodiscard]] Status set_trace_address(std::uint32_t index, metal::DeviceAddress da) const noexcept;
  /// Sets the da of vring `vring` of vdev `index`.
  [[nodiscard]] Status set_vring_address(std::uint32_t index, std::uint32_t vring,
                                         metal::DeviceAddress da) const noexcept;
  /// Sets the notifyid of vring `vring` of vdev `index` (Linux assigns them).
  [[nodiscard]] Status set_vring_notify_id(std::uint32_t index, std::uint32_t vring,
                                           std::uint32_t notify_id) const noexcept;

 private:
  /// Word offset of vring `vring`'s field `field` of vdev `index`, after the checks the setters share.
  Result<std::size_t> vring_field(std::uint32_t index, std::uint32_t vring, std::size_t field) const noexcept;

  metal::IoRegion table_{};
  std::uint32_t num_ = 0;
  std::array<RscEntry, kMaxEntries> entries_{};
};

/// Writes a resource table into a caller's buffer, without heap: header, an offset array of exactly `num`
/// entries, then the entries in the order added (each padded to 4 bytes). Entries are checked as parse
/// would check them (kInvalidArgument otherwise: a name of 32 characters or more, no vrings or more than
/// kMaxVrings, a vring num or align parse refuses, a type outside the vendor range); kOutOfRange for a vring
/// da that does not fit 32 bits; kNoMemory when the buffer is too small or the table has kMaxEntries
/// entries. The first failure sticks: later adds and finish() return it. The buffer need not be aligned;
/// bytes are written little-endian.
class TableBuilder {
 public:
  explicit TableBuilder(std::span<std::byte> out) noexcept;

  Status add_carveout(std::string_view name, std::uint32_t da, std::uint32_t pa, std::uint32_t len,
                      std::uint32_t flags) noexcept;
  Status add_devmem(std::string_view name, std::uint32_t da, std::uint32_t pa, std::uint32_t len,
                    std::uint32_t flags) noexcept;
  Status add_trace(std::string_view name, std::uint32_t da, std::uint32_t len) noexcept;
  /// A vdev with notify id 0 and `config_len` zero bytes of config space.
  Status add_vdev(std::uint32_t id, std::uint32_t dfeatures, std::span<const virtio::QueueInfo> vrings,
                  std::uint32_t config_len) noexcept;
  Status add_vdev(const virtio::RscVdevTransport::Spec& spec) noexcept;
  Status add_vendor(std::uint32_t type, std::span<const std::byte> body) noexcept;

  /// Writes the version and the entry count; returns the table's size in bytes. May be called again after
  /// more adds.
  [[nodiscard]] Result<std::size_t> finish() noexcept;

  std::uint32_t entry_count() const noexcept { return num_; }

 private:
  /// Makes room for one more offset and an entry of `size` bytes (padded to 4); returns the entry's offset.
  Result<std::size_t> append(std::uint32_t type, std::uint64_t size) noexcept;
  Status add_memory(std::uint32_t type, std::string_view name, std::uint32_t da, std::uint32_t pa,
                    std::uint32_t len, std::uint32_t flags) noexcept;
  Status record(Status s) noexcept;
  void put32(std::size_t pos, std::uint32_t v) noexcept;
  std::uint32_t get32(std::size_t pos) const noexcept;

  std::span<std::byte> out_;
  std::size_t size_ = 0;  // bytes used: header, offsets, entries
  std::uint32_t num_ = 0;
  Status error_ = Status::kOk;
};

}  // namespace amp::rproc
