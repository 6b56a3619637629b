// SPDX-License-Identifier: BSD-3-Clause
#include "amp/rproc/linux/vdev_host.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <string>

#include "amp/metal/log.hpp"
#include "amp/metal/platform.hpp"
#include "amp/rpmsg/wire.hpp"
#include "amp/virtio/ring.hpp"

namespace amp::rproc {

using metal::hex;
using metal::sys_fail;
using metal::SysResult;

namespace {

constexpr std::size_t kBufferAlign = 0x1000;

/// The region of `memory` that holds all of [da, da + len), as a subregion of exactly that range.
std::optional<metal::IoRegion> find_range(MemoryMap memory, metal::DeviceAddress da, std::size_t len,
                                          const metal::IoRegion** whole = nullptr) {
  for (const metal::IoRegion& r : memory) {
    if (auto off = r.offset_of(da, len)) {
      if (whole != nullptr) *whole = &r;
      if (auto sub = r.subregion(*off, len)) return *sub;
    }
  }
  return std::nullopt;
}

/// For a remote that polls: nothing to do.
class NoKick final : public rpmsg::Notifier {
 public:
  Status notify(std::uint32_t) noexcept override { return Status::kOk; }
};
NoKick g_no_kick;

}  // namespace

std::string describe(const RscFailure& f) {
  std::string s = to_string(f.error);
  if (f.entry != RscFailure::kNoEntry) s += " (entry " + std::to_string(f.entry) + ")";
  if (f.error == RscError::kHandler) s += std::string(": ") + amp::to_string(f.status);
  return s;
}

SysResult<RpmsgPlan> plan_rpmsg(const ResourceTable& table, MemoryMap memory, DeviceMemoryPool& pool,
                                std::uint32_t buffer_size) {
  ResourceAssigner assigner(table, memory, pool);
  if (auto r = assigner.run(); !r)
    return sys_fail(r.error().status, "resource table: " + describe(r.error()));
  RpmsgPlan plan;
  bool found = false;
  for (const AssignedVdev& v : assigner.vdevs()) {
    if (v.id == rpmsg::kVirtioIdRpmsg && v.vring_count >= 2) {
      plan.vdev = v;
      found = true;
      break;
    }
  }
  if (!found) return sys_fail(Status::kNotFound, "resource table: no rpmsg vdev with two vrings");
  const std::uint32_t num = std::max(plan.vdev.vrings[0].num, plan.vdev.vrings[1].num);
  plan.buffers_size = 2 * std::size_t{num} * buffer_size;
  // A firmware that declares its buffer sizes (VIRTIO_RPMSG_F_BUFSZ) gets buffers of those: the driver
  // takes them at start, so the pool is sized for them (vring 0 holds the host's receive buffers).
  if (auto vdev = virtio::RscVdev::open(plan.vdev.body);
      vdev && (vdev->device_features() & (1U << rpmsg::kFeatureBufferSizes)) != 0) {
    std::byte raw[rpmsg::kBufferSizesConfigSize];
    auto sizes = ok(vdev->read_config(0, raw)) ? rpmsg::decode_buffer_sizes(raw)
                                               : Result<rpmsg::BufferSizes>(fail(Status::kNotFound));
    if (!sizes && sizes.error() == Status::kMalformed) {
      const rpmsg::BufferSizes bad = rpmsg::buffer_size_fields(raw);
      return sys_fail(Status::kMalformed, "resource table: the rpmsg vdev (entry " +
                                              std::to_string(plan.vdev.index) + ") declares buffers of " +
                                              std::to_string(bad.tx) + " and " + std::to_string(bad.rx) +
                                              " bytes: each must be a multiple of 8 in [24, 65544]");
    }
    if (sizes) {
      plan.declared = *sizes;
      plan.buffers_size =
          std::size_t{plan.vdev.vrings[0].num} * sizes->tx + std::size_t{plan.vdev.vrings[1].num} * sizes->rx;
    }
  }
  auto buffers = pool.allocate(plan.buffers_size, kBufferAlign);
  if (!buffers) {
    return sys_fail(Status::kNoMemory, "the host's pool (" + std::to_string(pool.memory().size()) +
                                           " bytes, " + std::to_string(pool.used()) +
                                           " used) has no room for " + std::to_string(plan.buffers_size) +
                                           " bytes of rpmsg buffers");
  }
  plan.buffers = *buffers;
  return plan;
}

Status RegisterKick::notify(std::uint32_t notify_id) noexcept {
  return registers_.store<std::uint32_t>(offset_, value_.value_or(notify_id), std::memory_order_release);
}

SysResult<std::unique_ptr<VdevHost>> VdevHost::start(VdevHostConfig config) {
  std::unique_ptr<VdevHost> host(new VdevHost());
  host->config_ = std::move(config);
  if (auto s = host->run(); !s) return Unexpected<metal::SysError>(std::move(s).error());
  return host;
}

SysResult<void> VdevHost::run() {
  const VdevHostConfig& c = config_;
  const MemoryMap memory(c.memory);
  auto table_region = find_range(memory, c.table_da, c.table_size);
  if (!table_region) {
    return sys_fail(Status::kOutOfRange, "the resource table (" + std::to_string(c.table_size) +
                                             " bytes at " + hex(c.table_da) +
                                             ") is not in the remote's memory");
  }
  auto table = ResourceTable::parse(*table_region);
  if (!table) {
    return sys_fail(table.error().status,
                    "the resource table at " + hex(c.table_da) + " is bad: " + describe(table.error()));
  }
  const metal::IoRegion* shm = nullptr;  // the region with the pool: the rings and buffers must be there
  auto pool_region = find_range(memory, c.pool_da, c.pool_size, &shm);
  if (!pool_region || shm == nullptr) {
    return sys_fail(Status::kOutOfRange, "the host's pool (" + std::to_string(c.pool_size) + " bytes at " +
                                             hex(c.pool_da) + ") is not in the remote's memory");
  }
  // What the host hands out must not land on the table it is reading.
  if (c.pool_da < c.table_da + c.table_size && c.table_da < c.pool_da + c.pool_size) {
    return sys_fail(Status::kInvalidArgument, "the host's pool (" + std::to_string(c.pool_size) +
                                                  " bytes at " + hex(c.pool_da) +
                                                  ") overlaps the resource table at " + hex(c.table_da));
  }
  DeviceMemoryPool pool(*pool_region);
  auto plan = plan_rpmsg(*table, memory, pool, c.buffer_size);
  if (!plan) return Unexpected<metal::SysError>(std::move(plan).error());
  plan_ = *plan;
  std::uint32_t max_ring = 0;
  for (std::uint32_t q = 0; q < 2; ++q) {
    const virtio::QueueInfo& info = plan_.vdev.vrings[q];
    auto layout = virtio::RingLayout::compute(info.num, info.align);
    if (!layout || !shm->offset_of(info.da, layout->size)) {
      return sys_fail(Status::kOutOfRange, "vring " + std::to_string(q) + " at " + hex(info.da) +
                                               " is not in the memory that holds the host's pool");
    }
    max_ring = std::max(max_ring, info.num);
  }
  auto transport = virtio::RscVdevTransport::open(plan_.vdev.body);
  if (!transport) return sys_fail(Status::kMalformed, "the vdev entry is malformed");
  transport_ = *transport;
  transport_open_ = true;
  storage_ = rpmsg::RuntimeStorage(max_ring);

  rpmsg::DeviceConfig dc;
  dc.role = rpmsg::Role::kDriver;
  dc.shm = *shm;
  dc.transport = &transport_;
  dc.notifier = c.kick != nullptr ? c.kick : &g_no_kick;
  dc.notify_peer = c.kick != nullptr;
  dc.wait_mode = c.irq_fd >= 0 ? rpmsg::WaitMode::kBlock : rpmsg::WaitMode::kSpin;
  dc.buffer_pool = plan_.buffers;
  dc.buffer_pool_size = plan_.buffers_size;
  dc.expected_buffer_sizes = plan_.declared;  // read once for the pool: the driver must find the same
  dc.buffer_size = c.buffer_size;
  dc.event_idx = c.event_idx;
  dc.start_timeout_ns = static_cast<std::uint64_t>(std::chrono::nanoseconds(c.timeout).count());
  if (c.irq_fd >= 0) {
    auto loop = metal::EventLoop::create();
    if (!loop) return Unexpected<metal::SysError>(std::move(loop).error());
    loop_ = std::move(*loop);
  }
  rescheduler_.bind(loop_.get(), [this] { (void)device_.process(); });  // the polling thread needs none
  dc.reschedule = &rescheduler_;
  if (const Status s = storage_.start(device_, dc); !ok(s)) {
    return sys_fail(s, std::string("rpmsg start (driver role): ") + amp::to_string(s));
  }
  if (c.irq_fd >= 0) {
    auto id = c.irq_source == IrqSource::kSocket
                  ? loop_->add_fd(c.irq_fd, EPOLLIN, [this](std::uint32_t) { on_doorbell(); })
                  : loop_->add_uio(c.irq_fd, [this](std::uint32_t) { (void)device_.process(); });
    if (!id) return Unexpected<metal::SysError>(std::move(id).error());
    irq_ = *id;
    if (const Status s = loop_->start_thread(); !ok(s)) return sys_fail(s, "starting the vdev host's thread");
  } else {
    poller_ = std::thread([this] {
      while (!stopping_.load(std::memory_order_acquire)) {
        const Status s = device_.process();
        if (s == Status::kBroken || s == Status::kClosed) break;
        metal::cpu_relax();
      }
    });
  }
  (void)device_.process();  // what the remote sent before we listened
  AMP_LOG_INFO("rproc: rpmsg vdev up: vrings at %s and %s, %zu bytes of buffers at %s",
               hex(plan_.vdev.vrings[0].da).c_str(), hex(plan_.vdev.vrings[1].da).c_str(), plan_.buffers_size,
               hex(plan_.buffers).c_str());
  return {};
}

void VdevHost::on_doorbell() {
  // Each byte is one notification; how many came does not matter, only that the rings changed.
  constexpr std::size_t kMaxDrain = 64 * 1024;  // then the loop serves its other sources first
  std::array<std::byte, 512> bytes;
  for (std::size_t drained = 0; drained < kMaxDrain;) {
    const ssize_t n = ::recv(config_.irq_fd, bytes.data(), bytes.size(), MSG_DONTWAIT);
    if (n > 0) {
      drained += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    // The remote's end is gone (or the socket broke): no notification can come any more.
    AMP_LOG_WARNING("rproc: the doorbell socket %s; its notifications stop",
                    n == 0 ? "was closed by the remote" : std::strerror(errno));
    (void)loop_->disable(irq_);  // from its own handler: returns at once
    break;
  }
  (void)device_.process();
}

void VdevHost::close() {
  if (closed_) return;
  closed_ = true;
  stopping_.store(true, std::memory_order_release);
  device_.stop();
  if (loop_) {
    loop_->stop();
    loop_->join();
  }
  if (poller_.joinable()) poller_.join();
  if (transport_open_) transport_.set_status(0);  // a virtio reset: the host has left
}

VdevHost::~VdevHost() {
  close();
}

}  // namespace amp::rproc
