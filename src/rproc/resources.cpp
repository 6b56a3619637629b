// SPDX-License-Identifier: BSD-3-Clause
#include "amp/rproc/resources.hpp"

#include <cstring>

#include "amp/metal/log.hpp"
#include "amp/virtio/ring.hpp"

namespace amp::rproc {

Result<metal::DeviceAddress> DeviceMemoryPool::allocate(std::size_t len, std::size_t align) noexcept {
  if (len == 0 || align == 0 || (align & (align - 1)) != 0) return fail(Status::kInvalidArgument);
  // Align the device address (what the remote sees), not the host offset.
  auto da = memory_.device_address_of(next_, 0);
  if (!da) return fail(Status::kNoMemory);
  const std::uint64_t pad = (align - (*da & (align - 1))) & (align - 1);
  if (pad > memory_.size() - next_) return fail(Status::kNoMemory);
  const std::size_t start = next_ + static_cast<std::size_t>(pad);
  auto at = memory_.device_address_of(start, len);  // the whole piece inside, and contiguous
  if (!at) return fail(Status::kNoMemory);
  next_ = start + len;
  return *at;
}

bool ResourceAssigner::in_remote_memory(metal::DeviceAddress da, std::size_t len) const noexcept {
  for (const metal::IoRegion& r : memory_) {
    if (r.offset_of(da, len)) return true;
  }
  return false;
}

Expected<void, RscFailure> ResourceAssigner::run() noexcept {
  vdev_count_ = 0;
  trace_count_ = 0;
  return table_.for_each(*this);
}

Status ResourceAssigner::on_carveout(std::uint32_t index, const Carveout& c) noexcept {
  metal::DeviceAddress da = c.da;
  if (c.da == kRscAddrAny) {
    auto a = pool_.allocate(c.len, kCarveoutAlign);
    if (!a) {
      AMP_LOG_ERROR("rproc: no room for carveout '%s' (%u bytes)", c.name.bytes.data(),
                    static_cast<unsigned>(c.len));
      return a.error();
    }
    da = *a;
  } else if (!in_remote_memory(c.da, c.len)) {
    AMP_LOG_ERROR("rproc: carveout '%s' at 0x%x (%u bytes) is outside the remote's memory",
                  c.name.bytes.data(), static_cast<unsigned>(c.da), static_cast<unsigned>(c.len));
    return Status::kOutOfRange;
  }
  // The host and the remote share one address space here: pa is the device address.
  if (c.da == kRscAddrAny || c.pa == kRscAddrAny) return table_.set_carveout_address(index, da, da);
  return Status::kOk;
}

Status ResourceAssigner::on_devmem(std::uint32_t /*index*/, const Devmem& d) noexcept {
  if (!in_remote_memory(d.da, d.len)) {
    AMP_LOG_ERROR("rproc: devmem '%s' at 0x%x (%u bytes) is not mapped", d.name.bytes.data(),
                  static_cast<unsigned>(d.da), static_cast<unsigned>(d.len));
    return Status::kOutOfRange;
  }
  return Status::kOk;
}

Status ResourceAssigner::on_trace(std::uint32_t index, const Trace& t) noexcept {
  if (trace_count_ == traces_.size()) return Status::kNoMemory;
  if (t.len == 0 || t.da == kRscAddrAny || !in_remote_memory(t.da, t.len)) {
    AMP_LOG_ERROR("rproc: trace buffer '%s' at 0x%x (%u bytes) is outside the remote's memory",
                  t.name.bytes.data(), static_cast<unsigned>(t.da), static_cast<unsigned>(t.len));
    return Status::kOutOfRange;
  }
  traces_[trace_count_++] = TraceBuffer{index, t.da, t.len, t.name};
  return Status::kOk;
}

Status ResourceAssigner::on_vdev(std::uint32_t index, const Vdev& v, metal::IoRegion body) noexcept {
  if (vdev_count_ == vdevs_.size()) return Status::kNoMemory;
  AssignedVdev out;
  out.index = index;
  out.id = v.id;
  out.vring_count = v.num_vrings;
  out.ordinal = static_cast<std::uint32_t>(vdev_count_);  // every vdev entry comes through here, in order
  out.body = body;
  for (std::uint32_t i = 0; i < v.num_vrings; ++i) {
    virtio::QueueInfo q = v.vrings[i];
    auto layout = virtio::RingLayout::compute(q.num, q.align);  // validated by parse; checked again here
    if (!layout) return Status::kMalformed;
    if (q.da == metal::kAnyAddress) {
      auto a = pool_.allocate(layout->size, q.align);
      if (!a) {
        AMP_LOG_ERROR("rproc: no room for vring %u of vdev %u (%zu bytes)", static_cast<unsigned>(i),
                      static_cast<unsigned>(index), layout->size);
        return a.error();
      }
      q.da = *a;
      AMP_RETURN_IF_ERROR(table_.set_vring_address(index, i, q.da));
    } else if (!in_remote_memory(q.da, layout->size)) {
      AMP_LOG_ERROR("rproc: vring %u of vdev %u at 0x%llx is outside the remote's memory",
                    static_cast<unsigned>(i), static_cast<unsigned>(index),
                    static_cast<unsigned long long>(q.da));
      return Status::kOutOfRange;
    }
    q.notify_id = next_notify_id_++;
    AMP_RETURN_IF_ERROR(table_.set_vring_notify_id(index, i, q.notify_id));
    out.vrings[i] = q;
  }
  vdevs_[vdev_count_++] = out;
  return Status::kOk;
}

Status ResourceAssigner::on_vendor(std::uint32_t index, std::uint32_t type, metal::IoRegion body) noexcept {
  if (!vendor_) {
    AMP_LOG_INFO("rproc: vendor resource %u (type %u) left alone: no handler", static_cast<unsigned>(index),
                 static_cast<unsigned>(type));
    return Status::kOk;
  }
  return vendor_(index, type, body);
}

Result<std::size_t> read_trace(std::span<const metal::IoRegion> remote_memory, const TraceBuffer& trace,
                               std::span<char> out) noexcept {
  for (const metal::IoRegion& r : remote_memory) {
    auto off = r.offset_of(trace.da, trace.len);
    if (!off) continue;
    auto bytes = r.span_at(*off, trace.len);
    if (!bytes) return fail(bytes.error());
    // The remote may be writing while we read: copy first, then look for the end in our copy.
    std::size_t n = 0;
    while (n < bytes->size() && bytes->data()[n] != std::byte{0}) ++n;
    if (n > out.size()) return fail(Status::kTooLarge);
    if (n != 0) std::memcpy(out.data(), bytes->data(), n);
    // Re-check in the copy: the remote may have moved the NUL meanwhile; stop at the first NUL copied.
    const void* nul = std::memchr(out.data(), 0, n);
    return nul != nullptr ? static_cast<std::size_t>(static_cast<const char*>(nul) - out.data()) : n;
  }
  return fail(Status::kOutOfRange);
}

}  // namespace amp::rproc
