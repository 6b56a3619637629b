// SPDX-License-Identifier: BSD-3-Clause
// IoRegion's paged regions: made by paged(), which also installs their translations, so that only an image
// that makes one links them (a firmware's shared memory is one contiguous range).
#include <limits>

#include "amp/metal/io_region.hpp"

namespace amp::metal {

namespace {
constexpr DeviceAddress kMaxAddress = std::numeric_limits<DeviceAddress>::max();
}  // namespace

struct IoRegion::Paged {
  static Result<std::size_t> offset_of(const IoRegion& r, DeviceAddress da, std::size_t len) noexcept {
    // Find the page that holds `da` among the pages this (sub)region covers, then require that every
    // further page the range touches follows it contiguously in device addresses.
    const std::uint64_t page_size = std::uint64_t{1} << r.page_shift_;
    const std::size_t first_page = r.page_origin_ >> r.page_shift_;
    const std::size_t end_pos = r.page_origin_ + r.size_;  // cannot overflow: both are inside one mapping
    // Up to and including the page of the end position: an empty range may sit there.
    const std::size_t last_page_excl = (end_pos >> r.page_shift_) + 1;
    for (std::size_t i = first_page; i < last_page_excl && i < r.page_count_; ++i) {
      const DeviceAddress page_da = r.pages_[i];
      if (da < page_da || da - page_da >= page_size) continue;
      const std::size_t pos = (i << r.page_shift_) + static_cast<std::size_t>(da - page_da);
      if (pos < r.page_origin_ || pos > end_pos) continue;
      const std::size_t offset = pos - r.page_origin_;
      if (const Status s = r.check_range(offset, len); !ok(s)) continue;
      // Walk the pages the range spans and check contiguity.
      bool contiguous = true;
      const std::size_t last_pos = len == 0 ? pos : pos + len - 1;
      for (std::size_t j = i + 1; j <= (last_pos >> r.page_shift_); ++j) {
        if (r.pages_[j] != r.pages_[j - 1] + page_size) {
          contiguous = false;
          break;
        }
      }
      // Pages may alias: another page holding `da` may still start a contiguous run.
      if (contiguous) return offset;
    }
    // The end of the region (len 0) is a valid position even though no page holds it.
    if (len == 0) {
      auto end_da = r.device_address_of(r.size_, 0);
      if (end_da && da == *end_da) return r.size_;
    }
    return fail(Status::kOutOfRange);
  }

  // After device_address_of's check_range.
  static Result<DeviceAddress> device_address_of(const IoRegion& r, std::size_t offset,
                                                 std::size_t len) noexcept {
    const std::uint64_t page_size = std::uint64_t{1} << r.page_shift_;
    const std::size_t pos = r.page_origin_ + offset;
    const std::size_t page = pos >> r.page_shift_;
    if (page >= r.page_count_) {
      // Only the one-past-the-end position (len 0) can land past the last page.
      if (len != 0 || page == 0) return fail(Status::kOutOfRange);
      const DeviceAddress prev = r.pages_[page - 1];
      if (pos - ((page - 1) << r.page_shift_) != page_size || prev > kMaxAddress - page_size) {
        return fail(Status::kOutOfRange);
      }
      return prev + page_size;
    }
    const std::size_t last_pos = len == 0 ? pos : pos + len - 1;
    for (std::size_t j = page + 1; j <= (last_pos >> r.page_shift_); ++j) {
      if (r.pages_[j] != r.pages_[j - 1] + page_size) return fail(Status::kOutOfRange);
    }
    return r.pages_[page] + (pos & (page_size - 1));
  }

  static constexpr PagedOps kOps{offset_of, device_address_of};
};

Result<IoRegion> IoRegion::paged(std::span<std::byte> mem, std::span<const DeviceAddress> pages,
                                 unsigned page_shift) noexcept {
  if (page_shift == 0 || page_shift >= 64) return fail(Status::kInvalidArgument);
  const std::uint64_t page_size = std::uint64_t{1} << page_shift;
  const std::uint64_t needed = (std::uint64_t{mem.size()} + page_size - 1) >> page_shift;
  if (mem.size() != 0 && pages.size() < needed) return fail(Status::kInvalidArgument);
  for (std::size_t i = 0; i < needed; ++i) {
    if (pages[i] > kMaxAddress - (page_size - 1)) return fail(Status::kInvalidArgument);
  }
  paged_ops_.store(&Paged::kOps, std::memory_order_release);
  IoRegion r;
  r.base_ = mem.data();
  r.size_ = mem.size();
  r.pages_ = pages.data();
  r.page_count_ = static_cast<std::size_t>(needed);
  r.page_shift_ = page_shift;
  return r;
}

}  // namespace amp::metal
