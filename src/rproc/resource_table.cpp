// SPDX-License-Identifier: BSD-3-Clause
// Resource tables: see include/amp/rproc/resource_table.hpp.
#include "amp/rproc/resource_table.hpp"

#include <bit>
#include <cstring>

namespace amp::rproc {

static_assert(std::endian::native == std::endian::little, "resource tables are read as native words");

namespace {

using metal::IoRegion;
namespace vd = virtio::vdev;

constexpr std::size_t kVringSize = virtio::kVdevVringSize;

Expected<void, RscFailure> failure(RscError e, std::uint32_t entry) {
  return unexpected(RscFailure{e, entry, to_status(e)});
}

/// A word the caller has bounds-checked already; a failure (impossible then) reads as 0.
std::uint32_t word(const IoRegion& t, std::size_t pos) {
  return t.load<std::uint32_t>(pos, std::memory_order_relaxed).value_or(0U);
}

bool power_of_two(std::uint32_t v) {
  return v != 0 && (v & (v - 1)) == 0;
}

/// Copies the name at `pos` (inside the table) and checks its NUL.
RscError read_name(const IoRegion& t, std::size_t pos, RscName& name) {
  if (!ok(t.read(pos, std::as_writable_bytes(std::span(name.bytes))))) return RscError::kEntryTruncated;
  if (std::memchr(name.bytes.data(), 0, name.bytes.size()) == nullptr) return RscError::kNameNotTerminated;
  return RscError::kNone;
}

/// One decoded entry. `size` is what the entry declares, type word included (vendor: the type word only).
struct Decoded {
  std::size_t size = 0;
  Carveout memory;
  Trace trace;
  Vdev vdev;
};

/// Reads and checks the entry of `type` at `off` (whose type word is inside the table), reading each field
/// once. Everything is checked against the table's end; overlaps are the caller's business.
RscError decode(const IoRegion& t, std::size_t off, std::uint32_t type, Decoded& d) {
  const std::size_t avail = t.size() - off;  // >= 4: checked by the caller
  const std::size_t body = off + 4;
  switch (type) {
    case kRscCarveout:
    case kRscDevmem: {
      if (avail < kRscCarveoutSize) return RscError::kEntryTruncated;
      Carveout& c = d.memory;
      c.da = word(t, body + rsc::kCarveoutDa);
      c.pa = word(t, body + rsc::kCarveoutPa);
      c.len = word(t, body + rsc::kCarveoutLen);
      c.flags = word(t, body + rsc::kCarveoutFlags);
      d.size = kRscCarveoutSize;
      return read_name(t, body + rsc::kCarveoutName, c.name);
    }
    case kRscTrace: {
      if (avail < kRscTraceSize) return RscError::kEntryTruncated;
      d.trace.da = word(t, body + rsc::kTraceDa);
      d.trace.len = word(t, body + rsc::kTraceLen);
      d.size = kRscTraceSize;
      return read_name(t, body + rsc::kTraceName, d.trace.name);
    }
    case kRscVdev: {
      if (avail < kRscVdevMinSize) return RscError::kEntryTruncated;
      Vdev& v = d.vdev;
      v = Vdev{};
      auto num = t.load<std::uint8_t>(body + vd::kNumVrings, std::memory_order_acquire);
      if (!num) return RscError::kEntryTruncated;
      const std::uint32_t n = *num;  // our copy bounds everything below
      if (n == 0) return RscError::kZeroVrings;
      if (n > kMaxVrings) return RscError::kTooManyVrings;
      const std::uint64_t vrings_end = kRscVdevMinSize + std::uint64_t{kVringSize} * n;
      if (vrings_end > avail) return RscError::kVringsTruncated;
      v.id = word(t, body + vd::kId);
      v.notify_id = word(t, body + vd::kNotifyId);
      v.dfeatures = word(t, body + vd::kDeviceFeatures);
      v.gfeatures = word(t, body + vd::kDriverFeatures);
      v.config_len = word(t, body + vd::kConfigLen);
      v.status = t.load<std::uint8_t>(body + vd::kStatus, std::memory_order_relaxed).value_or(0);
      const std::uint64_t end = vrings_end + v.config_len;
      if (end > avail) return RscError::kConfigTruncated;
      v.num_vrings = n;
      for (std::uint32_t i = 0; i < n; ++i) {
        const std::size_t r = body + vd::kVrings + kVringSize * i;
        const std::uint32_t da = word(t, r + vd::kVringDa);
        virtio::QueueInfo& q = v.vrings[i];
        q.da = da == kRscAddrAny ? metal::kAnyAddress : metal::DeviceAddress{da};
        q.align = word(t, r + vd::kVringAlign);
        q.num = word(t, r + vd::kVringNum);
        q.notify_id = word(t, r + vd::kVringNotifyId);
        if (!power_of_two(q.num) || q.num > kMaxVringNum) return RscError::kBadVringNum;
        if (!power_of_two(q.align) || q.align < 4) return RscError::kBadVringAlign;
      }
      d.size = static_cast<std::size_t>(end);  // <= avail
      return RscError::kNone;
    }
    default:
      if (type < kRscVendorStart || type >= kRscVendorEnd) return RscError::kUnknownType;
      d.size = 4;
      return RscError::kNone;
  }
}

bool is_vendor(std::uint32_t type) {
  return type >= kRscVendorStart && type < kRscVendorEnd;
}

}  // namespace

const char* to_string(RscError e) noexcept {
  switch (e) {
    case RscError::kNone:
      return "no error";
    case RscError::kTableTooSmall:
      return "resource table is smaller than its header";
    case RscError::kTableMisaligned:
      return "resource table is not 4-byte aligned in memory";
    case RscError::kBadVersion:
      return "resource table version is not 1";
    case RscError::kOffsetsOutside:
      return "entry count puts the offset array past the table's end";
    case RscError::kTooManyEntries:
      return "resource table has more entries than amp supports";
    case RscError::kOffsetMisaligned:
      return "entry offset is not a multiple of 4";
    case RscError::kOffsetInHeader:
      return "entry offset points into the header or the offset array";
    case RscError::kOffsetOutside:
      return "entry offset lies outside the table";
    case RscError::kUnknownType:
      return "unknown resource type";
    case RscError::kEntryTruncated:
      return "entry passes the table's end";
    case RscError::kVringsTruncated:
      return "vdev vrings pass the table's end";
    case RscError::kConfigTruncated:
      return "vdev config space passes the table's end";
    case RscError::kNameNotTerminated:
      return "name is not NUL-terminated within 32 bytes";
    case RscError::kZeroVrings:
      return "vdev has no vrings";
    case RscError::kTooManyVrings:
      return "vdev has more vrings than amp supports";
    case RscError::kBadVringNum:
      return "vring num is not a power of two up to 32768";
    case RscError::kBadVringAlign:
      return "vring align is not a power of two of at least 4";
    case RscError::kOverlap:
      return "entries overlap";
    case RscError::kChanged:
      return "entry changed after the table was parsed";
    case RscError::kHandler:
      return "resource handler failed";
  }
  return "unknown resource table error";
}

Status to_status(RscError e) noexcept {
  switch (e) {
    case RscError::kNone:
      return Status::kOk;
    case RscError::kTableMisaligned:
      return Status::kMisaligned;
    case RscError::kBadVersion:
    case RscError::kTooManyEntries:
    case RscError::kUnknownType:
    case RscError::kTooManyVrings:
      return Status::kNotSupported;
    case RscError::kChanged:
      return Status::kBroken;
    case RscError::kHandler:
      return Status::kInternal;
    case RscError::kTableTooSmall:
    case RscError::kOffsetsOutside:
    case RscError::kOffsetMisaligned:
    case RscError::kOffsetInHeader:
    case RscError::kOffsetOutside:
    case RscError::kEntryTruncated:
    case RscError::kVringsTruncated:
    case RscError::kConfigTruncated:
    case RscError::kNameNotTerminated:
    case RscError::kZeroVrings:
    case RscError::kBadVringNum:
    case RscError::kBadVringAlign:
    case RscError::kOverlap:
      return Status::kMalformed;
  }
  return Status::kMalformed;
}

std::string_view RscName::view() const noexcept {
  const void* nul = std::memchr(bytes.data(), 0, bytes.size());
  const std::size_t len =
      nul == nullptr ? bytes.size() : static_cast<std::size_t>(static_cast<const char*>(nul) - bytes.data());
  return {bytes.data(), len};
}

Expected<ResourceTable, RscFailure> ResourceTable::parse(const IoRegion& table) noexcept {
  constexpr std::uint32_t kHdr = RscFailure::kNoEntry;
  const std::size_t size = table.size();
  if (size < kRscHeaderSize)
    return unexpected(RscFailure{RscError::kTableTooSmall, kHdr, Status::kMalformed});
  auto ver = table.load<std::uint32_t>(0, std::memory_order_acquire);
  if (!ver) return unexpected(RscFailure{RscError::kTableMisaligned, kHdr, Status::kMisaligned});
  if (*ver != virtio::kRscTableVersion) {
    return unexpected(RscFailure{RscError::kBadVersion, kHdr, Status::kNotSupported});
  }
  const std::uint32_t num = word(table, 4);
  const std::uint64_t offsets_end = kRscHeaderSize + 4ULL * num;
  if (offsets_end > size) return unexpected(RscFailure{RscError::kOffsetsOutside, kHdr, Status::kMalformed});
  if (num > kMaxEntries)
    return unexpected(RscFailure{RscError::kTooManyEntries, kHdr, Status::kNotSupported});

  ResourceTable rt;
  rt.table_ = table;
  rt.num_ = num;
  Decoded d;
  for (std::uint32_t i = 0; i < num; ++i) {
    const std::uint32_t off = word(table, kRscHeaderSize + 4 * std::size_t{i});
    RscError e = RscError::kNone;
    if (off % 4 != 0) {
      e = RscError::kOffsetMisaligned;
    } else if (off < offsets_end) {
      e = RscError::kOffsetInHeader;
    } else if (std::uint64_t{off} + 4 > size) {
      e = RscError::kOffsetOutside;
    }
    if (e != RscError::kNone) return unexpected(RscFailure{e, i, to_status(e)});
    const std::uint32_t type = word(table, off);
    if (e = decode(table, off, type, d); e != RscError::kNone)
      return unexpected(RscFailure{e, i, to_status(e)});
    rt.entries_[i] = RscEntry{off, type, d.size};
  }

  // A vendor entry reaches up to the next entry (by offset) or the table's end.
  for (std::uint32_t i = 0; i < num; ++i) {
    RscEntry& v = rt.entries_[i];
    if (!is_vendor(v.type)) continue;
    std::size_t next = size;
    for (std::uint32_t j = 0; j < num; ++j) {
      const std::size_t o = rt.entries_[j].offset;
      if (o > v.offset && o < next) next = o;
    }
    v.size = next - v.offset;
  }
  // No two entries may share a byte. Of an overlapping pair, the one at the lower offset is reported (on
  // equal offsets, the one listed later).
  for (std::uint32_t i = 0; i < num; ++i) {
    const RscEntry& a = rt.entries_[i];
    for (std::uint32_t j = i + 1; j < num; ++j) {
      const RscEntry& b = rt.entries_[j];
      if (a.offset < b.offset + b.size && b.offset < a.offset + a.size) {
        return unexpected(RscFailure{RscError::kOverlap, a.offset < b.offset ? i : j, Status::kMalformed});
      }
    }
  }
  return rt;
}

Result<RscEntry> ResourceTable::entry(std::uint32_t index) const noexcept {
  if (index >= num_) return fail(Status::kNotFound);
  return entries_[index];
}

Expected<void, RscFailure> ResourceTable::for_each(ResourceVisitor& visitor) const noexcept {
  Decoded d;
  for (std::uint32_t i = 0; i < num_; ++i) {
    const RscEntry& e = entries_[i];
    if (const RscError err = decode(table_, e.offset, e.type, d); err != RscError::kNone) {
      return failure(err, i);
    }
    if (d.size > e.size) return failure(RscError::kChanged, i);
    const std::size_t body_len = (is_vendor(e.type) ? e.size : d.size) - 4;
    auto body = table_.subregion(e.offset + 4, body_len);
    if (!body) return failure(RscError::kChanged, i);  // cannot happen: parse checked the extent
    Status s = Status::kOk;
    switch (e.type) {
      case kRscCarveout:
        s = visitor.on_carveout(i, d.memory);
        break;
      case kRscDevmem:
        s = visitor.on_devmem(i, d.memory);
        break;
      case kRscTrace:
        s = visitor.on_trace(i, d.trace);
        break;
      case kRscVdev:
        s = visitor.on_vdev(i, d.vdev, *body);
        break;
      default:
        s = visitor.on_vendor(i, e.type, *body);
        break;
    }
    if (!ok(s)) return unexpected(RscFailure{RscError::kHandler, i, s});
  }
  return {};
}

Status ResourceTable::set_carveout_address(std::uint32_t index, metal::DeviceAddress da,
                                           metal::DeviceAddress pa) const noexcept {
  if (index >= num_) return Status::kNotFound;
  const RscEntry& e = entries_[index];
  if (e.type != kRscCarveout) return Status::kInvalidArgument;
  if (da >= kRscAddrAny || pa >= kRscAddrAny) return Status::kOutOfRange;
  const std::size_t body = std::size_t{e.offset} + 4;
  AMP_RETURN_IF_ERROR(table_.store<std::uint32_t>(body + rsc::kCarveoutDa, static_cast<std::uint32_t>(da),
                                                  std::memory_order_relaxed));
  return table_.store<std::uint32_t>(body + rsc::kCarveoutPa, static_cast<std::uint32_t>(pa),
                                     std::memory_order_release);
}

Status ResourceTable::set_trace_address(std::uint32_t index, metal::DeviceAddress da) const noexcept {
  if (index >= num_) return Status::kNotFound;
  const RscEntry& e = entries_[index];
  if (e.type != kRscTrace) return Status::kInvalidArgument;
  if (da >= kRscAddrAny) return Status::kOutOfRange;
  return table_.store<std::uint32_t>(std::size_t{e.offset} + 4 + rsc::kTraceDa,
                                     static_cast<std::uint32_t>(da), std::memory_order_release);
}

Result<std::size_t> ResourceTable::vring_field(std::uint32_t index, std::uint32_t vring,
                                               std::size_t field) const noexcept {
  if (index >= num_) return fail(Status::kNotFound);
  const RscEntry& e = entries_[index];
  if (e.type != kRscVdev) return fail(Status::kInvalidArgument);
  const std::size_t body = std::size_t{e.offset} + 4;
  // The peer may have changed the count since parse: read it once, and keep to the recorded extent.
  auto num = table_.load<std::uint8_t>(body + vd::kNumVrings, std::memory_order_acquire);
  if (!num) return fail(Status::kMalformed);
  if (vring >= *num || vring >= kMaxVrings) return fail(Status::kNotFound);
  const std::size_t rel = 4 + vd::kVrings + kVringSize * vring;  // vring < kMaxVrings: no overflow
  if (rel + kVringSize > e.size) return fail(Status::kMalformed);
  return std::size_t{e.offset} + rel + field;
}

Status ResourceTable::set_vring_address(std::uint32_t index, std::uint32_t vring,
                                        metal::DeviceAddress da) const noexcept {
  auto pos = vring_field(index, vring, vd::kVringDa);
  if (!pos) return pos.error();
  if (da >= kRscAddrAny) return Status::kOutOfRange;
  return table_.store<std::uint32_t>(*pos, static_cast<std::uint32_t>(da), std::memory_order_release);
}

Status ResourceTable::set_vring_notify_id(std::uint32_t index, std::uint32_t vring,
                                          std::uint32_t notify_id) const noexcept {
  auto pos = vring_field(index, vring, vd::kVringNotifyId);
  if (!pos) return pos.error();
  return table_.store<std::uint32_t>(*pos, notify_id, std::memory_order_release);
}

// --- TableBuilder ---

TableBuilder::TableBuilder(std::span<std::byte> out) noexcept : out_(out) {
  if (out_.size() < kRscHeaderSize) {
    error_ = Status::kNoMemory;
    return;
  }
  std::memset(out_.data(), 0, kRscHeaderSize);
  size_ = kRscHeaderSize;
}

void TableBuilder::put32(std::size_t pos, std::uint32_t v) noexcept {
  for (std::size_t i = 0; i < 4; ++i) out_[pos + i] = static_cast<std::byte>(v >> (8 * i));
}

std::uint32_t TableBuilder::get32(std::size_t pos) const noexcept {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i) v |= std::uint32_t{static_cast<std::uint8_t>(out_[pos + i])} << (8 * i);
  return v;
}

Status TableBuilder::record(Status s) noexcept {
  if (!ok(s) && ok(error_)) error_ = s;
  return s;
}

Result<std::size_t> TableBuilder::append(std::uint32_t type, std::uint64_t size) noexcept {
  if (num_ >= kMaxEntries) return fail(Status::kNoMemory);
  const std::uint64_t padded = (size + 3) & ~std::uint64_t{3};
  // One more offset word, then the entry; the offsets' table positions must fit a le32.
  const std::uint64_t needed = std::uint64_t{size_} + 4 + padded;
  if (needed > out_.size() || needed > 0xFFFFFFFFULL) return fail(Status::kNoMemory);
  // Shift the entries written so far by one word to make room for the new offset, and fix their offsets.
  const std::size_t offsets_end = kRscHeaderSize + 4 * std::size_t{num_};
  std::memmove(out_.data() + offsets_end + 4, out_.data() + offsets_end, size_ - offsets_end);
  for (std::uint32_t i = 0; i < num_; ++i) {
    const std::size_t slot = kRscHeaderSize + 4 * std::size_t{i};
    put32(slot, get32(slot) + 4);
  }
  const std::size_t at = size_ + 4;
  put32(offsets_end, static_cast<std::uint32_t>(at));
  std::memset(out_.data() + at, 0, static_cast<std::size_t>(padded));
  put32(at, type);
  size_ = static_cast<std::size_t>(needed);
  ++num_;
  return at;
}

Status TableBuilder::add_memory(std::uint32_t type, std::string_view name, std::uint32_t da, std::uint32_t pa,
                                std::uint32_t len, std::uint32_t flags) noexcept {
  if (!ok(error_)) return error_;
  if (name.size() >= kRscNameSize) return record(Status::kInvalidArgument);
  auto at = append(type, kRscCarveoutSize);
  if (!at) return record(at.error());
  const std::size_t body = *at + 4;
  put32(body + rsc::kCarveoutDa, da);
  put32(body + rsc::kCarveoutPa, pa);
  put32(body + rsc::kCarveoutLen, len);
  put32(body + rsc::kCarveoutFlags, flags);
  if (!name.empty()) std::memcpy(out_.data() + body + rsc::kCarveoutName, name.data(), name.size());
  return Status::kOk;
}

Status TableBuilder::add_carveout(std::string_view name, std::uint32_t da, std::uint32_t pa,
                                  std::uint32_t len, std::uint32_t flags) noexcept {
  return add_memory(kRscCarveout, name, da, pa, len, flags);
}

Status TableBuilder::add_devmem(std::string_view name, std::uint32_t da, std::uint32_t pa, std::uint32_t len,
                                std::uint32_t flags) noexcept {
  return add_memory(kRscDevmem, name, da, pa, len, flags);
}

Status TableBuilder::add_trace(std::string_view name, std::uint32_t da, std::uint32_t len) noexcept {
  if (!ok(error_)) return error_;
  if (name.size() >= kRscNameSize) return record(Status::kInvalidArgument);
  auto at = append(kRscTrace, kRscTraceSize);
  if (!at) return record(at.error());
  const std::size_t body = *at + 4;
  put32(body + rsc::kTraceDa, da);
  put32(body + rsc::kTraceLen, len);
  if (!name.empty()) std::memcpy(out_.data() + body + rsc::kTraceName, name.data(), name.size());
  return Status::kOk;
}

Status TableBuilder::add_vdev(std::uint32_t id, std::uint32_t dfeatures,
                              std::span<const virtio::QueueInfo> vrings, std::uint32_t config_len) noexcept {
  return add_vdev(virtio::RscVdevTransport::Spec{id, 0, dfeatures, config_len, vrings});
}

Status TableBuilder::add_vdev(const virtio::RscVdevTransport::Spec& spec) noexcept {
  if (!ok(error_)) return error_;
  if (spec.vrings.empty() || spec.vrings.size() > kMaxVrings || spec.config.size() > spec.config_len) {
    return record(Status::kInvalidArgument);
  }
  for (const virtio::QueueInfo& q : spec.vrings) {
    if (!power_of_two(q.num) || q.num > kMaxVringNum || !power_of_two(q.align) || q.align < 4) {
      return record(Status::kInvalidArgument);
    }
    if (q.da != metal::kAnyAddress && q.da >= kRscAddrAny) return record(Status::kOutOfRange);
  }
  const std::uint64_t size =
      kRscVdevMinSize + std::uint64_t{kVringSize} * spec.vrings.size() + spec.config_len;
  auto at = append(kRscVdev, size);
  if (!at) return record(at.error());
  const std::size_t body = *at + 4;
  put32(body + vd::kId, spec.id);
  put32(body + vd::kNotifyId, spec.notify_id);
  put32(body + vd::kDeviceFeatures, spec.device_features);
  put32(body + vd::kConfigLen, spec.config_len);
  out_[body + vd::kNumVrings] = static_cast<std::byte>(spec.vrings.size());
  for (std::size_t i = 0; i < spec.vrings.size(); ++i) {
    const virtio::QueueInfo& q = spec.vrings[i];
    const std::size_t r = body + vd::kVrings + kVringSize * i;
    put32(r + vd::kVringDa, q.da == metal::kAnyAddress ? kRscAddrAny : static_cast<std::uint32_t>(q.da));
    put32(r + vd::kVringAlign, q.align);
    put32(r + vd::kVringNum, q.num);
    put32(r + vd::kVringNotifyId, q.notify_id);
  }
  if (!spec.config.empty()) {
    std::memcpy(out_.data() + body + vd::kVrings + kVringSize * spec.vrings.size(), spec.config.data(),
                spec.config.size());
  }
  return Status::kOk;
}

Status TableBuilder::add_vendor(std::uint32_t type, std::span<const std::byte> body) noexcept {
  if (!ok(error_)) return error_;
  if (!is_vendor(type)) return record(Status::kInvalidArgument);
  auto at = append(type, std::uint64_t{4} + body.size());
  if (!at) return record(at.error());
  if (!body.empty()) std::memcpy(out_.data() + *at + 4, body.data(), body.size());
  return Status::kOk;
}

Result<std::size_t> TableBuilder::finish() noexcept {
  if (!ok(error_)) return fail(error_);
  put32(4, num_);
  put32(0, virtio::kRscTableVersion);
  return size_;
}

}  // namespace amp::rproc
