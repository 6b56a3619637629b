// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/io_region.hpp"

#include <cstring>
#include <limits>

namespace amp::metal {

namespace {
constexpr DeviceAddress kMaxAddress = std::numeric_limits<DeviceAddress>::max();
}  // namespace

Result<IoRegion> IoRegion::paged(std::span<std::byte> mem, std::span<const DeviceAddress> pages,
                                 unsigned page_shift) noexcept {
  if (page_shift == 0 || page_shift >= 64) return fail(Status::kInvalidArgument);
  const std::uint64_t page_size = std::uint64_t{1} << page_shift;
  const std::uint64_t needed = (std::uint64_t{mem.size()} + page_size - 1) >> page_shift;
  if (mem.size() != 0 && pages.size() < needed) return fail(Status::kInvalidArgument);
  for (std::size_t i = 0; i < needed; ++i) {
    if (pages[i] > kMaxAddress - (page_size - 1)) return fail(Status::kInvalidArgument);
  }
  IoRegion r;
  r.base_ = mem.data();
  r.size_ = mem.size();
  r.pages_ = pages.data();
  r.page_count_ = static_cast<std::size_t>(needed);
  r.page_shift_ = page_shift;
  return r;
}

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
  // Paged: find the page that holds `da` among the pages this (sub)region covers, then require that every
  // further page the range touches follows it contiguously in device addresses.
  const std::uint64_t page_size = std::uint64_t{1} << page_shift_;
  const std::size_t first_page = page_origin_ >> page_shift_;
  const std::size_t end_pos = page_origin_ + size_;  // cannot overflow: both are inside one mapping
  // Up to and including the page of the end position: an empty range may sit there.
  const std::size_t last_page_excl = (end_pos >> page_shift_) + 1;
  for (std::size_t i = first_page; i < last_page_excl && i < page_count_; ++i) {
    const DeviceAddress page_da = pages_[i];
    if (da < page_da || da - page_da >= page_size) continue;
    const std::size_t pos = (i << page_shift_) + static_cast<std::size_t>(da - page_da);
    if (pos < page_origin_ || pos > end_pos) continue;
    const std::size_t offset = pos - page_origin_;
    if (const Status s = check_range(offset, len); !ok(s)) continue;
    // Walk the pages the range spans and check contiguity.
    bool contiguous = true;
    const std::size_t last_pos = len == 0 ? pos : pos + len - 1;
    for (std::size_t j = i + 1; j <= (last_pos >> page_shift_); ++j) {
      if (pages_[j] != pages_[j - 1] + page_size) {
        contiguous = false;
        break;
      }
    }
    // Pages may alias: another page holding `da` may still start a contiguous run.
    if (contiguous) return offset;
  }
  // The end of the region (len 0) is a valid position even though no page holds it.
  if (len == 0) {
    auto end_da = device_address_of(size_, 0);
    if (end_da && da == *end_da) return size_;
  }
  return fail(Status::kOutOfRange);
}

Result<DeviceAddress> IoRegion::device_address_of(std::size_t offset, std::size_t len) const noexcept {
  if (const Status s = check_range(offset, len); !ok(s)) return fail(s);
  if (pages_ == nullptr) {
    if (da_ > kMaxAddress - offset) return fail(Status::kOverflow);
    const DeviceAddress da = da_ + offset;
    if (len != 0 && da > kMaxAddress - (len - 1)) return fail(Status::kOverflow);
    return da;
  }
  const std::uint64_t page_size = std::uint64_t{1} << page_shift_;
  const std::size_t pos = page_origin_ + offset;
  const std::size_t page = pos >> page_shift_;
  if (page >= page_count_) {
    // Only the one-past-the-end position (len 0) can land past the last page.
    if (len != 0 || page == 0) return fail(Status::kOutOfRange);
    const DeviceAddress prev = pages_[page - 1];
    if (pos - ((page - 1) << page_shift_) != page_size || prev > kMaxAddress - page_size) {
      return fail(Status::kOutOfRange);
    }
    return prev + page_size;
  }
  const std::size_t last_pos = len == 0 ? pos : pos + len - 1;
  for (std::size_t j = page + 1; j <= (last_pos >> page_shift_); ++j) {
    if (pages_[j] != pages_[j - 1] + page_size) return fail(Status::kOutOfRange);
  }
  return pages_[page] + (pos & (page_size - 1));
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
