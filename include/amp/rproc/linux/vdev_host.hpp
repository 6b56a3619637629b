// SPDX-License-Identifier: BSD-3-Clause
// The host's side of a remote's rpmsg vdev, run in Linux userspace over the remote's own memory: for a remote
// the kernel's remoteproc loaded and started (SysfsDriver), or one a bootloader started, amp finds the
// resource table where the firmware put it, checks it, places what the firmware left to the host (vrings at
// ANY) in a pool, assigns notify ids, writes that back, and runs the virtio driver role of rpmsg over it. The
// remote's memory is given as IoRegions at the remote's device addresses, typically UIO maps
// (metal::shm::open_uio); its interrupts arrive through a UIO device (the UIO read/re-arm protocol) or a
// doorbell socket (one byte per notification, as an emulator's serial line carries them), and it is kicked
// through a Notifier, such as RegisterKick for a mailbox register.
//
//   auto uio = metal::UioDevice::find_by_name("rproc-mem");             // the remote's memory, as UIO maps
//   auto mem = metal::shm::open_uio(*uio, 0);
//   auto irq = uio->open_irq();
//   RegisterKick kick(mailbox_region, 0x10);                            // what interrupts the remote
//   auto host = VdevHost::start({.memory = {mem->region()}, .table_da = rsc.da, .table_size = rsc.size,
//                                .pool_da = 0x3ed10000, .pool_size = 0xf0000, .kick = &kick,
//                                .irq_fd = irq->get()});
//   host.value()->device().set_name_service_handler(...);
//
// Every value read from the remote's memory is checked before use (the table by ResourceTable::parse, the
// rings by the virtqueues); the remote can make bring-up fail, never make amp touch memory outside the
// regions it was given.
//
// Thread-safety: device() follows rpmsg::Device's rules; receive callbacks run on the VdevHost's thread.
// close() and the destructor belong to the owner.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "amp/metal/io_region.hpp"
#include "amp/metal/linux/event_loop.hpp"
#include "amp/metal/linux/sys_error.hpp"
#include "amp/rpmsg/device.hpp"
#include "amp/rpmsg/linux/process_on_loop.hpp"
#include "amp/rpmsg/linux/runtime_storage.hpp"
#include "amp/rproc/elf.hpp"
#include "amp/rproc/resource_table.hpp"
#include "amp/rproc/resources.hpp"
#include "amp/virtio/rsc_vdev.hpp"

namespace amp::rproc {

/// Where the host put an rpmsg vdev's vrings and buffers.
struct RpmsgPlan {
  AssignedVdev vdev;                 ///< the first rpmsg vdev with two vrings (its ordinal and body included)
  metal::DeviceAddress buffers = 0;  ///< rx_count + tx_count buffers of buffer_size bytes
  std::size_t buffers_size = 0;
  /// The buffer sizes the vdev declares (VIRTIO_RPMSG_F_BUFSZ), as read for the pool; {0, 0} when none.
  rpmsg::BufferSizes declared{0, 0};
};

/// The host's part of `table` for rpmsg: runs a ResourceAssigner (vrings and carveouts at ANY placed from
/// `pool`, fixed addresses checked against `memory`, notify ids, written back), then takes the rpmsg buffers
/// (two per entry of the larger vring) from `pool`. Errors name the entry and say what is wrong.
metal::SysResult<RpmsgPlan> plan_rpmsg(const ResourceTable& table, MemoryMap memory, DeviceMemoryPool& pool,
                                       std::uint32_t buffer_size);

/// "vring num is not a power of two (entry 2)": an RscFailure for people.
std::string describe(const RscFailure& failure);

/// Kicks the remote by storing a 32-bit word into a register (a mailbox's doorbell) in one of its maps: the
/// given value, or the vring's notify id when there is none.
class RegisterKick final : public rpmsg::Notifier {
 public:
  RegisterKick(metal::IoRegion registers, std::size_t offset,
               std::optional<std::uint32_t> value = std::nullopt)
      : registers_(registers), offset_(offset), value_(value) {}
  [[nodiscard]] Status notify(std::uint32_t notify_id) noexcept override;

 private:
  metal::IoRegion registers_;
  std::size_t offset_;
  std::optional<std::uint32_t> value_;
};

/// What VdevHostConfig::irq_fd is.
enum class IrqSource : std::uint8_t {
  /// A UIO device (UioDevice::open_irq()): read the interrupt count, write 1 to unmask it again.
  kUio,
  /// A stream socket on which each byte (any value) is one notification from the remote: a doorbell. The
  /// bytes there are read and discarded without waiting (64 KiB at most per wake-up), then the rings are
  /// processed. Its end (the remote gone) or an error disables the source, so that a closed socket does not
  /// keep the thread busy.
  kSocket,
};

struct VdevHostConfig {
  /// The remote's memory, at its device addresses. The vrings and the buffers must lie in one region.
  std::vector<metal::IoRegion> memory{};
  /// The loaded resource table: the firmware's `.resource_table` (ElfResourceTable::da and its size).
  metal::DeviceAddress table_da = 0;
  std::size_t table_size = 0;
  /// Memory the host may hand out: vrings the firmware left at ANY, then the rpmsg buffers.
  metal::DeviceAddress pool_da = 0;
  std::size_t pool_size = 0;
  std::uint32_t buffer_size = rpmsg::kDefaultBufferSize;
  bool event_idx = true;
  /// Interrupts the remote; null when the remote polls the rings.
  rpmsg::Notifier* kick = nullptr;
  /// The remote's interrupts (borrowed: keep it open until close()), of the kind irq_source says; -1 to poll
  /// the rings instead (a thread of its own, no syscalls).
  int irq_fd = -1;
  IrqSource irq_source = IrqSource::kUio;
  /// For the virtio handshake.
  std::chrono::milliseconds timeout{10000};
};

class VdevHost {
 public:
  static metal::SysResult<std::unique_ptr<VdevHost>> start(VdevHostConfig config);
  ~VdevHost();
  VdevHost(const VdevHost&) = delete;
  VdevHost& operator=(const VdevHost&) = delete;

  rpmsg::Device& device() noexcept { return device_; }
  /// Where the vrings and buffers are.
  const RpmsgPlan& plan() const noexcept { return plan_; }
  /// Stops rpmsg (endpoints get their unbind), stops the thread, and resets the vdev (status 0) so that the
  /// remote knows the host left. Idempotent.
  void close();

 private:
  VdevHost() = default;
  metal::SysResult<void> run();
  void on_doorbell();

  VdevHostConfig config_;
  RpmsgPlan plan_;
  virtio::RscVdevTransport transport_;
  bool transport_open_ = false;
  rpmsg::RuntimeStorage storage_;  // before device_: outlives it
  rpmsg::ProcessOnLoop rescheduler_;
  rpmsg::Device device_;
  std::unique_ptr<metal::EventLoop> loop_;
  metal::SourceId irq_{};
  std::thread poller_;
  std::atomic<bool> stopping_{false};
  bool closed_ = false;
};

}  // namespace amp::rproc
