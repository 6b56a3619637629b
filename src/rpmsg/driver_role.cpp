// SPDX-License-Identifier: BSD-3-Clause
// rpmsg::Device in the virtio driver role (the host side, like Linux's virtio_rpmsg_bus): it owns the
// buffers, fills queue 0 with empty receive buffers and sends on queue 1. Referenced only from
// start_driver_role (see role.hpp).
#include <new>

#include "amp/metal/log.hpp"
#include "role.hpp"

namespace amp::rpmsg {

using virtio::Buffer;

struct Device::DriverRole {
  /// The device offers VIRTIO_RPMSG_F_BUFSZ: its declaration, read once from the config space, sets this
  /// side's buffer sizes and the bit is acknowledged; bytes that are no declaration leave the bit out.
  static Status take_buffer_sizes(Device& d, virtio::Transport& t, std::uint64_t& wanted) noexcept {
    std::byte raw[kBufferSizesConfigSize];
    Status s = t.read_config(0, raw);
    auto sizes = ok(s) ? decode_buffer_sizes(raw) : Result<BufferSizes>(fail(Status::kNotFound));
    if (!sizes && sizes.error() == Status::kNotFound) {
      AMP_LOG_WARNING(
          "rpmsg: the device offers feature bit 1 without a buffer-size declaration in its config "
          "space (another meaning of the bit, such as NuttX's name-service acknowledgement): not "
          "acknowledged, %u-byte buffers",
          static_cast<unsigned>(d.tx_size_));
      return Status::kOk;
    }
    if (!sizes) {
      const BufferSizes bad = buffer_size_fields(raw);
      AMP_LOG_ERROR(
          "rpmsg: the device declares buffers of %u bytes (its tx) and %u bytes (its rx): each must "
          "be a multiple of %u in [%u, %u]",
          static_cast<unsigned>(bad.tx), static_cast<unsigned>(bad.rx),
          static_cast<unsigned>(kBufferSizeAlign), static_cast<unsigned>(kHeaderSize + kBufferSizeAlign),
          static_cast<unsigned>(kMaxBufferSize - kMaxBufferSize % kBufferSizeAlign));
      return Status::kMalformed;  // start() marks the vdev FAILED
    }
    const BufferSizes& expected = d.config_.expected_buffer_sizes;
    if ((expected.tx != 0 || expected.rx != 0) && (expected.tx != sizes->tx || expected.rx != sizes->rx)) {
      AMP_LOG_ERROR("rpmsg: the device changed its buffer-size declaration from %u/%u to %u/%u bytes",
                    static_cast<unsigned>(expected.tx), static_cast<unsigned>(expected.rx),
                    static_cast<unsigned>(sizes->tx), static_cast<unsigned>(sizes->rx));
      return Status::kMalformed;
    }
    d.rx_size_ = sizes->tx;  // the device sends in our receive buffers
    d.tx_size_ = sizes->rx;
    wanted |= detail::kFeatureBufferSizesBit;
    return Status::kOk;
  }

  /// start_steps(), and on any failure after the handshake began the vdev marked FAILED, so that the device
  /// side stops waiting for a DRIVER_OK that will not come.
  static Status start(Device& d, std::span<virtio::DriverQueue::Slot> slots,
                      std::span<std::uint64_t> in_flight) noexcept {
    const Status s = start_steps(d, slots, in_flight);
    if (!ok(s)) {
      virtio::Transport& t = *d.config_.transport;
      t.set_status(static_cast<std::uint8_t>(t.status() | virtio::kStatusFailed));
    }
    return s;
  }

  static Status start_steps(Device& d, std::span<virtio::DriverQueue::Slot> slots,
                            std::span<std::uint64_t>) noexcept {
    new (&d.queues_.driver) DriverQueues();  // this role's queues from now on (the union's other member ends)
    virtio::Transport& t = *d.config_.transport;
    t.set_status(0);
    t.set_status(virtio::kStatusAcknowledge);
    t.set_status(virtio::kStatusAcknowledge | virtio::kStatusDriver);
    const std::uint64_t offered = t.device_features();
    std::uint64_t wanted = detail::kFeatureNsBit | (d.config_.event_idx ? detail::kFeatureEventIdxBit : 0);
    if ((offered & detail::kFeatureBufferSizesBit) != 0 && d.config_.accept_buffer_sizes) {
      AMP_RETURN_IF_ERROR(take_buffer_sizes(d, t, wanted));
    }
    const std::uint64_t agreed = offered & wanted;
    t.set_driver_features(agreed);
    d.features_ = agreed;
    d.ns_ = (agreed & detail::kFeatureNsBit) != 0;
    d.event_idx_ = (agreed & detail::kFeatureEventIdxBit) != 0;
    t.set_status(virtio::kStatusAcknowledge | virtio::kStatusDriver | virtio::kStatusFeaturesOk);

    virtio::QueueConfig rx;
    virtio::QueueConfig tx;
    AMP_RETURN_IF_ERROR(d.setup_queue(0, rx, d.notify_rx_));
    AMP_RETURN_IF_ERROR(d.setup_queue(1, tx, d.notify_tx_));
    if (slots.size() < std::size_t{rx.num} + tx.num) return Status::kNoMemory;
    d.rx_count_ = d.config_.rx_buffers != 0 ? d.config_.rx_buffers : rx.num;
    d.tx_count_ = d.config_.tx_buffers != 0 ? d.config_.tx_buffers : tx.num;
    if (d.rx_count_ > rx.num || d.tx_count_ > tx.num) return Status::kInvalidArgument;
    if (d.tx_free_.size() < d.tx_count_) return Status::kNoMemory;

    // The buffer pool: inside the shared memory, clear of both rings.
    const metal::IoRegion& shm = d.config_.shm;
    const std::uint64_t pool_bytes =
        std::uint64_t{d.rx_count_} * d.rx_size_ + std::uint64_t{d.tx_count_} * d.tx_size_;
    if (pool_bytes > d.config_.buffer_pool_size) {
      AMP_LOG_ERROR("rpmsg: %u buffers of %u bytes and %u of %u bytes do not fit the %zu-byte pool",
                    static_cast<unsigned>(d.rx_count_), static_cast<unsigned>(d.rx_size_),
                    static_cast<unsigned>(d.tx_count_), static_cast<unsigned>(d.tx_size_),
                    d.config_.buffer_pool_size);
      return Status::kNoMemory;
    }
    auto pool = shm.offset_of(d.config_.buffer_pool, static_cast<std::size_t>(pool_bytes));
    if (!pool) return Status::kOutOfRange;
    for (const virtio::QueueConfig* q : {&rx, &tx}) {
      const std::size_t ring_off = *shm.offset_of_pointer(q->ring.bytes().data(), 0);
      if (ring_off < *pool + pool_bytes && *pool < ring_off + q->ring.size()) {
        AMP_LOG_ERROR("rpmsg: the buffer pool overlaps a vring");
        return Status::kInvalidArgument;
      }
    }
    d.rx_base_ = d.config_.buffer_pool;
    d.tx_base_ = d.config_.buffer_pool + std::uint64_t{d.rx_count_} * d.rx_size_;
    d.tx_never_used_ = 0;
    d.payload_size_ = d.tx_size_ - static_cast<std::uint32_t>(kHeaderSize);

    AMP_RETURN_IF_ERROR(d.queues_.driver.rx.init(rx, slots.first(rx.num)));
    AMP_RETURN_IF_ERROR(d.queues_.driver.tx.init(tx, slots.subspan(rx.num, tx.num)));
    for (std::uint32_t i = 0; i < d.rx_count_; ++i) {
      const Buffer b{d.rx_base_ + std::uint64_t{i} * d.rx_size_, d.rx_size_, true};
      auto p = shm.pointer_of(b.addr, b.len);
      if (!p) return Status::kOutOfRange;
      if (auto h = d.queues_.driver.rx.add(std::span(&b, 1), reinterpret_cast<std::uintptr_t>(*p)); !h)
        return h.error();
    }
    // Transmit completions interrupt us only while a sender waits for a buffer.
    d.queues_.driver.tx.disable_interrupts();
    t.set_status(virtio::kStatusAcknowledge | virtio::kStatusDriver | virtio::kStatusFeaturesOk |
                 virtio::kStatusDriverOk);
    return Status::kOk;
  }

  static Status drain(Device& d, bool rearm, std::uint32_t budget, bool& more) noexcept {
    virtio::DriverQueue& q = d.queues_.driver.rx;
    q.disable_interrupts();
    for (std::uint32_t taken = 0;; ++taken) {
      // A ring's worth taken and more waiting, or a stop() waiting for the lock: leave now. The peer's
      // interrupts stay off; the next call looks, then re-arms them.
      if (d.stop_requested_.load(std::memory_order_relaxed) || (taken >= budget && q.has_used())) {
        more = true;
        return Status::kOk;
      }
      virtio::DriverQueue::Used u;
      auto r = q.pop_used(u);
      if (!r) return r.error();
      if (!*r) {
        if (!rearm || !q.enable_interrupts()) return Status::kOk;
        q.disable_interrupts();  // more arrived meanwhile
        continue;
      }
      // The token is the buffer's host pointer (see push_rx): ours, so trusted, and no translation.
      const Buffer b = q.head_buffer(u.head);
      d.deliver(reinterpret_cast<std::byte*>(u.token), b.len, u.len, u.head);
      if (d.stopped_) return Status::kClosed;
    }
  }

  static bool take_tx(Device& d, TxSlot& slot, Status& error) noexcept {
    if (d.tx_never_used_ < d.tx_count_) {
      // A buffer of our own pool, known by address only: the pool was checked at start, so this cannot fail.
      slot.da = d.tx_base_ + std::uint64_t{d.tx_never_used_++} * d.tx_size_;
      auto p = d.config_.shm.pointer_of(slot.da, d.tx_size_);
      if (!p) {
        error = Status::kInternal;
        return false;
      }
      slot.data = *p;
      slot.len = d.tx_size_;
      return true;
    }
    // Reclaim everything the device has returned at once: one look at its index for the whole batch.
    for (;;) {
      virtio::DriverQueue::Used u;
      auto r = d.queues_.driver.tx.pop_used(u);
      if (!r) {
        error = r.error();
        return false;
      }
      if (!*r) break;
      if (d.tx_free_count_ == d.tx_free_.size()) {
        error = Status::kInternal;
        return false;
      }
      // The token is the buffer's host pointer, which we gave with it: no translation back.
      d.push_free_tx(TxSlot{0, d.tx_size_, reinterpret_cast<std::byte*>(u.token),
                            d.queues_.driver.tx.head_buffer(u.head).addr});
    }
    if (d.tx_free_count_ == 0) return false;
    slot = d.pop_free_tx();
    return true;
  }

  static Status push_tx(Device& d, const TxSlot& slot, std::uint32_t total, bool now) noexcept {
    const Buffer b{slot.da, total, false};  // add() checks it against the shared memory
    auto head = d.queues_.driver.tx.add(std::span(&b, 1), reinterpret_cast<std::uintptr_t>(slot.data), now);
    return head ? Status::kOk : head.error();
  }

  static void push_rx(Device& d, std::uint16_t, std::byte* buf, std::uint32_t len, bool now) noexcept {
    auto da = d.config_.shm.device_address_of_pointer(buf, len);
    if (!da) return;
    const Buffer b{*da, len, true};
    (void)d.queues_.driver.rx.add(std::span(&b, 1), reinterpret_cast<std::uintptr_t>(buf),
                                  now);  // a fault sticks
  }

  static void publish_tx(Device& d) noexcept { d.queues_.driver.tx.publish(); }
  static void publish_rx(Device& d) noexcept { d.queues_.driver.rx.publish(); }
  static bool tx_kick_needed(Device& d) noexcept { return d.queues_.driver.tx.kick_needed(); }
  static bool rx_kick_needed(Device& d) noexcept { return d.queues_.driver.rx.kick_needed(); }

  static bool set_tx_waiting(Device& d, bool waiting) noexcept {
    if (waiting) return d.queues_.driver.tx.enable_interrupts();
    d.queues_.driver.tx.disable_interrupts();
    return false;
  }

  static constexpr RoleOps kOps{Role::kDriver,  start,          drain,         take_tx,
                                push_tx,        push_rx,        publish_tx,    publish_rx,
                                tx_kick_needed, rx_kick_needed, set_tx_waiting};
};

Status Device::start_driver_role(const DeviceConfig& config, std::span<virtio::DriverQueue::Slot> slots,
                                 std::span<TxSlot> tx_free) noexcept {
  return start_role(config, DriverRole::kOps, slots, tx_free, {});
}

}  // namespace amp::rpmsg
