// SPDX-License-Identifier: BSD-3-Clause
// RuntimeStorage: the storage a Device needs (see DeviceStorage), sized at run time for rings whose size
// comes from a resource table. For Linux code; bare metal uses the fixed DeviceStorage<MaxRing>.
//
// Thread-safety: a value; it must outlive the Device started on it (declare it before the Device).
#pragma once

#include <cstdint>
#include <vector>

#include "amp/rpmsg/device.hpp"

namespace amp::rpmsg {

class RuntimeStorage {
 public:
  RuntimeStorage() = default;
  /// Room for two rings of up to `max_ring` entries, in either role.
  explicit RuntimeStorage(std::uint32_t max_ring)
      : slots_(2 * std::size_t{max_ring}),
        tx_free_(max_ring),
        in_flight_(2 * virtio::DeviceQueue::in_flight_words(max_ring)) {}

  /// device.start(config) over this storage.
  [[nodiscard]] Status start(Device& device, const DeviceConfig& config) noexcept {
    return device.start(config, slots_, tx_free_, in_flight_);
  }

 private:
  std::vector<virtio::DriverQueue::Slot> slots_;
  std::vector<TxSlot> tx_free_;
  std::vector<std::uint64_t> in_flight_;
};

}  // namespace amp::rpmsg
