// SPDX-License-Identifier: BSD-3-Clause
// Handling a firmware's resource table, the host's part: place what the firmware left to the host (carveouts
// and vrings at kRscAddrAny) in a pool of memory both sides can reach, check that fixed addresses lie in the
// remote's memory, assign vring notify ids, collect trace buffers, and hand vendor entries to the user. What
// it decides is written back into the table, where the remote reads it.
//
// The remote's memory is a list of IoRegions in the remote's device-address space (the host's mappings of
// it); the pool is one of them (or a part of one).
//
// Thread-safety: a DeviceMemoryPool and a ResourceAssigner belong to one thread at a time (the one bringing
// the remote up).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "amp/metal/function.hpp"
#include "amp/metal/io_region.hpp"
#include "amp/rproc/resource_table.hpp"

namespace amp::rproc {

/// Hands out aligned pieces of one region, front to back (resources live as long as the remote runs; a new
/// run starts a new pool).
class DeviceMemoryPool {
 public:
  explicit DeviceMemoryPool(metal::IoRegion memory) noexcept : memory_(memory) {}
  /// `len` bytes at a device address aligned to `align` (a power of two). kNoMemory when they do not fit,
  /// kInvalidArgument for a bad alignment or a zero length.
  [[nodiscard]] Result<metal::DeviceAddress> allocate(std::size_t len, std::size_t align) noexcept;
  std::size_t used() const noexcept { return next_; }
  const metal::IoRegion& memory() const noexcept { return memory_; }

 private:
  metal::IoRegion memory_;
  std::size_t next_ = 0;
};

/// A vdev as set up: its entry's index and where its vrings ended up.
struct AssignedVdev {
  std::uint32_t index = 0;  ///< Entry index in the table.
  std::uint32_t id = 0;     ///< virtio device id.
  std::uint32_t vring_count = 0;
  std::array<virtio::QueueInfo, kMaxVrings> vrings{};
  /// Which vdev of the table it is (0 = the first vdev entry), as virtio::find_vdev counts.
  std::uint32_t ordinal = 0;
  /// The entry's body (for virtio::RscVdevTransport::open).
  metal::IoRegion body{};
};

/// A trace buffer the remote writes text into.
struct TraceBuffer {
  std::uint32_t index = 0;
  metal::DeviceAddress da = 0;
  std::uint32_t len = 0;
  RscName name;
};

class ResourceAssigner final : public ResourceVisitor {
 public:
  /// Called for each vendor entry (type 128..511). Without one, vendor entries are accepted untouched.
  using VendorHandler =
      metal::InplaceFunction<Status(std::uint32_t index, std::uint32_t type, metal::IoRegion body),
                             4 * sizeof(void*)>;

  static constexpr std::size_t kMaxVdevs = 4;
  static constexpr std::size_t kMaxTraces = 4;
  /// Alignment of carveouts the host places.
  static constexpr std::size_t kCarveoutAlign = 4096;

  ResourceAssigner(const ResourceTable& table, std::span<const metal::IoRegion> remote_memory,
                   DeviceMemoryPool& pool) noexcept
      : table_(table), memory_(remote_memory), pool_(pool) {}

  void set_vendor_handler(VendorHandler handler) noexcept { vendor_ = static_cast<VendorHandler&&>(handler); }
  /// Notify ids are handed out from here up, one per vring (0 by default, like the kernel).
  void set_first_notify_id(std::uint32_t id) noexcept { next_notify_id_ = id; }

  /// Walks the table and handles every entry. A failure names the entry (see RscFailure): kOutOfRange for a
  /// fixed address outside the remote's memory, kNoMemory when the pool is exhausted, kNoMemory too for more
  /// than kMaxVdevs vdevs or kMaxTraces traces, or what the vendor handler returned.
  [[nodiscard]] Expected<void, RscFailure> run() noexcept;

  std::span<const AssignedVdev> vdevs() const noexcept { return {vdevs_.data(), vdev_count_}; }
  std::span<const TraceBuffer> traces() const noexcept { return {traces_.data(), trace_count_}; }

  Status on_carveout(std::uint32_t index, const Carveout& c) noexcept override;
  Status on_devmem(std::uint32_t index, const Devmem& d) noexcept override;
  Status on_trace(std::uint32_t index, const Trace& t) noexcept override;
  Status on_vdev(std::uint32_t index, const Vdev& v, metal::IoRegion body) noexcept override;
  Status on_vendor(std::uint32_t index, std::uint32_t type, metal::IoRegion body) noexcept override;

 private:
  /// Whether [da, da + len) lies inside one of the remote's regions.
  bool in_remote_memory(metal::DeviceAddress da, std::size_t len) const noexcept;

  const ResourceTable& table_;
  std::span<const metal::IoRegion> memory_;
  DeviceMemoryPool& pool_;
  VendorHandler vendor_;
  std::uint32_t next_notify_id_ = 0;
  std::array<AssignedVdev, kMaxVdevs> vdevs_{};
  std::size_t vdev_count_ = 0;
  std::array<TraceBuffer, kMaxTraces> traces_{};
  std::size_t trace_count_ = 0;
};

/// Copies what the remote wrote into a trace buffer (the bytes up to the first NUL, or the whole buffer)
/// into `out`, and returns how many bytes that is. kTooLarge (and nothing copied) when `out` is too small;
/// kOutOfRange when the buffer is not in the remote's memory.
[[nodiscard]] Result<std::size_t> read_trace(std::span<const metal::IoRegion> remote_memory,
                                             const TraceBuffer& trace, std::span<char> out) noexcept;

}  // namespace amp::rproc
