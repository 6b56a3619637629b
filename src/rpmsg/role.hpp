// SPDX-License-Identifier: BSD-3-Clause
// What differs between rpmsg::Device's two roles: the queues each uses and how it starts, receives, sends
// and gives buffers back. The common code (device.cpp) calls a role only through the table its start()
// installed (Device::ops_); each role's functions (driver_role.cpp, device_role.cpp) are referenced only from
// its table, and its table only from its start. So an image that starts one role links none of the other's
// code (-ffunction-sections, --gc-sections): a remote does not carry the driver's.
//
// Every function is called with the device's lock held (or on its single thread), like the code it came from.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "amp/metal/io_region.hpp"
#include "amp/metal/result.hpp"
#include "amp/rpmsg/device.hpp"
#include "amp/virtio/virtqueue.hpp"

namespace amp::rpmsg {

struct Device::RoleOps {
  Role role;
  /// Feature negotiation, the status handshake and the queues (and the buffers, driver role).
  Status (*start)(Device& d, std::span<virtio::DriverQueue::Slot> slots,
                  std::span<std::uint64_t> in_flight) noexcept;
  /// Takes up to `budget` buffers from the peer and delivers them; `more` when the budget ran out first.
  Status (*drain)(Device& d, bool rearm, std::uint32_t budget, bool& more) noexcept;
  /// A buffer to send in when none is on the free list: from the peer (device role) or the pool (driver
  /// role). false when there is none (with `error` set when that is an error).
  bool (*take_tx)(Device& d, TxSlot& slot, Status& error) noexcept;
  /// Hands a filled buffer (`total` bytes, header included) to the peer; visible to it at once when `now`.
  Status (*push_tx)(Device& d, const TxSlot& slot, std::uint32_t total, bool now) noexcept;
  /// Gives a receive buffer back to the peer; visible to it at once when `now`.
  void (*push_rx)(Device& d, std::uint16_t head, std::byte* buf, std::uint32_t len, bool now) noexcept;
  /// Makes what push_tx / push_rx held back visible.
  void (*publish_tx)(Device& d) noexcept;
  void (*publish_rx)(Device& d) noexcept;
  /// After publishing: whether the peer wants a notification for that queue.
  bool (*tx_kick_needed)(Device& d) noexcept;
  bool (*rx_kick_needed)(Device& d) noexcept;
  /// Asks the peer for a kick when sending buffers come back (or stops asking). True when, on asking, some
  /// had come back already.
  bool (*set_tx_waiting)(Device& d, bool waiting) noexcept;
};

namespace detail {
inline constexpr std::uint64_t kFeatureNsBit = std::uint64_t{1} << kFeatureNs;
inline constexpr std::uint64_t kFeatureEventIdxBit = std::uint64_t{1} << virtio::kFeatureEventIdx;
inline constexpr std::uint64_t kFeatureBufferSizesBit = std::uint64_t{1} << kFeatureBufferSizes;
}  // namespace detail

}  // namespace amp::rpmsg
