// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/io_region.hpp"

#include <cstring>
#include <limits>

namespace amp::metal {

namespace {
constexpr DeviceAddress kMaxAddress = std::numeric_limits<DeviceAddress>::max();
}  // namespace

std::atomic<const IoRegion::PagedOps*> IoRegion::paged_ops_{nullptr};

Result<IoRegion> IoRegion::subregion(std::size_t offset, std::size_t len) const noexcept {
  if (const Status s = check_range(offset, len); !ok(s)) return fail(s);
  IoRegion r = *this;
  r.base_ = base_ + offset;
  r.size_ = len;
  if (pages_ != nullptr) {
    r.page_origin_ = page_origin_ + offset;
  } else {
    // Past the top of the address space the range simply stops answering; offset_of checks that.
    r.da_ = (da_ > kMaxAddress - offset) ? kMaxAddress : da_ + offset;
  }
  return r;
}

Result<std::size_t> IoRegion::offset_of(DeviceAddress da, std::size_t len) const noexcept {
  if (pages_ == nullptr) {
    if (da < da_) return fail(Status::kOutOfRange);
    const DeviceAddress delta = da - da_;
    if (delta > size_) return fail(Status::kOutOfRange);
    const auto offset = static_cast<std::size_t>(delta);
    if (const Status s = check_range(offset, len); !ok(s)) return fail(s);
    // The device range itself must not wrap: da + len - 1 must be representable.
    if (len != 0 && da > kMaxAddress - (len - 1)) return fail(Status::kOverflow);
    return offset;
  }
  return paged_ops().offset_of(*this, da, len);
}

Result<DeviceAddress> IoRegion::device_address_of(std::size_t offset, std::size_t len) const noexcept {
  if (const Status s = check_range(offset, len); !ok(s)) return fail(s);
  if (pages_ == nullptr) {
    if (da_ > kMaxAddress - offset) return fail(Status::kOverflow);
    const DeviceAddress da = da_ + offset;
    if (len != 0 && da > kMaxAddress - (len - 1)) return fail(Status::kOverflow);
    return da;
  }
  return paged_ops().device_address_of(*this, offset, len);
}

Result<std::size_t> IoRegion::offset_of_pointer(const void* p, std::size_t len) const noexcept {
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  const auto base = reinterpret_cast<std::uintptr_t>(base_);
  if (base_ == nullptr || addr < base) return fail(Status::kOutOfRange);
  const std::uintptr_t offset = addr - base;
  if (const Status s = check_range(offset, len); !ok(s)) return fail(s);
  return static_cast<std::size_t>(offset);
}

Result<std::byte*> IoRegion::pointer_at(std::size_t offset, std::size_t len) const noexcept {
  if (const Status s = check_range(offset, len); !ok(s)) return fail(s);
  return base_ + offset;
}

Result<std::byte*> IoRegion::pointer_of(DeviceAddress da, std::size_t len) const noexcept {
  auto off = offset_of(da, len);
  if (!off) return fail(off.error());
  return base_ + *off;
}

Result<DeviceAddress> IoRegion::device_address_of_pointer(const void* p, std::size_t len) const noexcept {
  auto off = offset_of_pointer(p, len);
  if (!off) return fail(off.error());
  return device_address_of(*off, len);
}

Result<std::span<std::byte>> IoRegion::span_at(std::size_t offset, std::size_t len) const noexcept {
  if (const Status s = check_range(offset, len); !ok(s)) return fail(s);
  return std::span<std::byte>(base_ + offset, len);
}

Status IoRegion::read(std::size_t offset, std::span<std::byte> out) const noexcept {
  AMP_RETURN_IF_ERROR(check_range(offset, out.size()));
  if (!out.empty()) std::memcpy(out.data(), base_ + offset, out.size());
  return Status::kOk;
}

Status IoRegion::write(std::size_t offset, std::span<const std::byte> in) const noexcept {
  AMP_RETURN_IF_ERROR(check_range(offset, in.size()));
  if (!in.empty()) std::memcpy(base_ + offset, in.data(), in.size());
  return Status::kOk;
}

Status IoRegion::fill(std::size_t offset, std::byte value, std::size_t len) const noexcept {
  AMP_RETURN_IF_ERROR(check_range(offset, len));
  if (len != 0) std::memset(base_ + offset, static_cast<int>(value), len);
  return Status::kOk;
}

}  // namespace amp::metal
