// SPDX-License-Identifier: BSD-3-Clause
// The split virtqueue ("vring") as it lies in shared memory: constants and layout.
//
// Byte-compatible with the Linux kernel and OpenAMP (virtio 1.x split ring, legacy layout with an explicit
// alignment for the used ring). All fields are little-endian; amp supports little-endian machines only.
//
//   offset 0:                      descriptor table  num x {le64 addr; le32 len; le16 flags; le16 next}
//   offset 16*num:                 available ring    {le16 flags; le16 idx; le16 ring[num]; le16 used_event}
//   offset align_up(.., align):    used ring         {le16 flags; le16 idx; {le32 id; le32 len}[num];
//                                                      le16 avail_event}
//
// Thread-safety: constants and pure functions only.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

#include "amp/metal/result.hpp"

namespace amp::virtio {

static_assert(std::endian::native == std::endian::little, "amp's shared-memory formats assume little-endian");

// Descriptor flags.
inline constexpr std::uint16_t kDescFlagNext = 1;      ///< `next` continues the chain.
inline constexpr std::uint16_t kDescFlagWrite = 2;     ///< The device writes this buffer.
inline constexpr std::uint16_t kDescFlagIndirect = 4;  ///< The buffer holds a descriptor table.

// Ring flags (notification suppression without VIRTIO_RING_F_EVENT_IDX).
inline constexpr std::uint16_t kAvailFlagNoInterrupt = 1;  ///< Driver -> device: don't interrupt me.
inline constexpr std::uint16_t kUsedFlagNoNotify = 1;      ///< Device -> driver: don't kick me.

// Feature bits (bit numbers).
inline constexpr unsigned kFeatureIndirectDesc = 28;
inline constexpr unsigned kFeatureEventIdx = 29;
inline constexpr unsigned kFeatureVersion1 = 32;

inline constexpr std::size_t kDescSize = 16;
inline constexpr std::size_t kUsedElemSize = 8;
/// The largest queue size virtio allows.
inline constexpr std::uint32_t kMaxQueueSize = 32768;

/// Where each part of a ring of `num` entries lies, relative to the ring's start.
struct RingLayout {
  std::uint32_t num = 0;
  std::uint32_t align = 0;
  std::size_t desc = 0;   ///< descriptor table
  std::size_t avail = 0;  ///< available ring
  std::size_t used = 0;   ///< used ring
  std::size_t size = 0;   ///< total bytes

  // Field offsets, all relative to the ring's start.
  constexpr std::size_t desc_entry(std::uint32_t i) const noexcept { return desc + kDescSize * i; }
  constexpr std::size_t avail_flags() const noexcept { return avail; }
  constexpr std::size_t avail_idx() const noexcept { return avail + 2; }
  constexpr std::size_t avail_entry(std::uint32_t i) const noexcept { return avail + 4 + 2 * std::size_t{i}; }
  constexpr std::size_t used_event() const noexcept { return avail + 4 + 2 * std::size_t{num}; }
  constexpr std::size_t used_flags() const noexcept { return used; }
  constexpr std::size_t used_idx() const noexcept { return used + 2; }
  constexpr std::size_t used_entry(std::uint32_t i) const noexcept {
    return used + 4 + kUsedElemSize * std::size_t{i};
  }
  constexpr std::size_t avail_event() const noexcept { return used + 4 + kUsedElemSize * std::size_t{num}; }

  /// The layout for `num` entries (a power of two in [1, 32768]) with the used ring aligned to `align` (a
  /// power of two, at least 4). kInvalidArgument otherwise.
  static Result<RingLayout> compute(std::uint32_t num, std::uint32_t align) noexcept {
    // x & (x - 1) clears the lowest bit: zero for a power of two (std::has_single_bit is a libgcc popcount
    // call on cores without a popcount instruction).
    if (num == 0 || num > kMaxQueueSize || (num & (num - 1)) != 0) return fail(Status::kInvalidArgument);
    if (align < 4 || (align & (align - 1)) != 0) return fail(Status::kInvalidArgument);
    RingLayout l;
    l.num = num;
    l.align = align;
    l.desc = 0;
    l.avail = kDescSize * num;
    const std::size_t avail_end = l.avail + 6 + 2 * std::size_t{num};
    l.used = (avail_end + align - 1) & ~(std::size_t{align} - 1);
    l.size = l.used + 6 + kUsedElemSize * std::size_t{num};
    return l;
  }
};

/// True when a peer that asked to be told at `event` must be notified after the index moved from `old_idx`
/// to `new_idx` (the virtio spec's vring_need_event, with 16-bit wrap-around).
constexpr bool need_event(std::uint16_t event, std::uint16_t new_idx, std::uint16_t old_idx) noexcept {
  return static_cast<std::uint16_t>(new_idx - event - 1) < static_cast<std::uint16_t>(new_idx - old_idx);
}

}  // namespace amp::virtio
