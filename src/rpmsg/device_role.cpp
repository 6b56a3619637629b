// SPDX-License-Identifier: BSD-3-Clause
// rpmsg::Device in the virtio device role (the remote side, like an OpenAMP remote): it sends in the driver's
// empty buffers from queue 0 and receives on queue 1. Referenced only from start_device_role (see role.hpp).
#include <new>

#include "amp/metal/log.hpp"
#include "amp/metal/time.hpp"
#include "role.hpp"

namespace amp::rpmsg {

using virtio::Buffer;

struct Device::DeviceRole {
  static Status start(Device& d, std::span<virtio::DriverQueue::Slot>,
                      std::span<std::uint64_t> in_flight) noexcept {
    new (&d.queues_.device) DeviceQueues();  // this role's queues from now on (the union's other member ends)
    virtio::Transport& t = *d.config_.transport;
    // Wait for the driver; sleeping, since this is a one-time handshake.
    const std::uint64_t deadline = metal::deadline_after(d.config_.start_timeout_ns);
    for (;;) {
      const std::uint8_t st = t.status();
      if ((st & virtio::kStatusFailed) != 0) return Status::kClosed;
      if ((st & virtio::kStatusDriverOk) != 0) break;
      if (d.stop_requested_.load(std::memory_order_relaxed))
        return Status::kClosed;  // the peer left meanwhile
      if (metal::monotonic_ns() >= deadline) return Status::kTimeout;
      Unlocked u(d);
      metal::sleep_ns(1'000'000);
    }
    const std::uint64_t agreed = t.driver_features() & t.device_features();
    d.features_ = agreed;
    d.ns_ = (agreed & detail::kFeatureNsBit) != 0;
    d.event_idx_ = (agreed & detail::kFeatureEventIdxBit) != 0;
    if ((agreed & detail::kFeatureBufferSizesBit) != 0) {
      // The sizes this device declared, as the driver read them (the config space is shared: read once).
      std::byte raw[kBufferSizesConfigSize];
      auto sizes =
          ok(t.read_config(0, raw)) ? decode_buffer_sizes(raw) : Result<BufferSizes>(fail(Status::kNotFound));
      if (!sizes) {
        AMP_LOG_ERROR("rpmsg: buffer sizes agreed, but the config space holds no valid declaration of them");
        return Status::kMalformed;
      }
      d.tx_size_ = sizes->tx;
      d.rx_size_ = sizes->rx;
    }

    virtio::QueueConfig tx;
    virtio::QueueConfig rx;
    AMP_RETURN_IF_ERROR(d.setup_queue(0, tx, d.notify_tx_));
    AMP_RETURN_IF_ERROR(d.setup_queue(1, rx, d.notify_rx_));
    if (d.tx_free_.size() < tx.num) return Status::kNoMemory;
    const std::size_t tx_words = virtio::DeviceQueue::in_flight_words(tx.num);
    if (in_flight.size() < tx_words + virtio::DeviceQueue::in_flight_words(rx.num)) return Status::kNoMemory;
    AMP_RETURN_IF_ERROR(d.queues_.device.tx.init(tx, in_flight.first(tx_words)));
    AMP_RETURN_IF_ERROR(d.queues_.device.rx.init(rx, in_flight.subspan(tx_words)));
    d.payload_size_ = d.tx_size_ - static_cast<std::uint32_t>(kHeaderSize);
    // The driver's empty buffers arrive without a kick unless a sender waits for one.
    d.queues_.device.tx.disable_notifications();
    return Status::kOk;
  }

  static Status drain(Device& d, bool rearm, std::uint32_t budget, bool& more) noexcept {
    virtio::DeviceQueue& q = d.queues_.device.rx;
    q.disable_notifications();
    for (std::uint32_t taken = 0;; ++taken) {
      if (d.stop_requested_.load(std::memory_order_relaxed)) {
        more = true;
        return Status::kOk;
      }
      if (taken >= budget) {
        auto waiting = q.has_available();
        if (!waiting) return waiting.error();
        if (*waiting) {
          more = true;
          return Status::kOk;
        }
      }
      std::uint16_t head = 0;
      Buffer b;
      auto r = q.pop_buffer(head, b);
      if (!r) return r.error();
      if (!*r) {
        if (!rearm || !q.enable_notifications()) return Status::kOk;
        q.disable_notifications();
        continue;
      }
      if (b.device_writable) {
        d.fault_ = virtio::Fault::kBadBuffer;
        AMP_LOG_ERROR("rpmsg: the driver sent a device-writable buffer as a message");
        return Status::kBroken;
      }
      d.deliver(b.data, b.len, b.len, head);  // checked and translated by the queue
      if (d.stopped_) return Status::kClosed;
    }
  }

  static bool take_tx(Device& d, TxSlot& slot, Status& error) noexcept {
    std::uint16_t head = 0;
    Buffer b;
    auto r = d.queues_.device.tx.pop_buffer(head, b);
    if (!r) {
      error = r.error();
      return false;
    }
    if (!*r) return false;
    if (!b.device_writable || b.len <= kHeaderSize) {
      d.fault_ = virtio::Fault::kBadBuffer;
      AMP_LOG_ERROR("rpmsg: the driver offered a %u-byte %s buffer for messages",
                    static_cast<unsigned>(b.len), b.device_writable ? "writable" : "read-only");
      error = Status::kBroken;
      return false;
    }
    slot.id = head;
    slot.data = b.data;  // checked and translated by the queue
    slot.len = b.len < kMaxBufferSize ? b.len : kMaxBufferSize;
    return true;
  }

  static Status push_tx(Device& d, const TxSlot& slot, std::uint32_t total, bool now) noexcept {
    return d.queues_.device.tx.push_used(static_cast<std::uint16_t>(slot.id), total, now);
  }

  static void push_rx(Device& d, std::uint16_t head, std::byte*, std::uint32_t len, bool now) noexcept {
    // A consumed message goes back with its buffer's full length, as OpenAMP's remotes do: OpenAMP's driver
    // reuses the buffer with the used length as its capacity (Linux ignores the value).
    (void)d.queues_.device.rx.push_used(head, len, now);  // a fault sticks
  }

  static void publish_tx(Device& d) noexcept { d.queues_.device.tx.publish(); }
  static void publish_rx(Device& d) noexcept { d.queues_.device.rx.publish(); }
  static bool tx_kick_needed(Device& d) noexcept { return d.queues_.device.tx.notify_needed(); }
  static bool rx_kick_needed(Device& d) noexcept { return d.queues_.device.rx.notify_needed(); }

  static bool set_tx_waiting(Device& d, bool waiting) noexcept {
    if (waiting) return d.queues_.device.tx.enable_notifications();
    d.queues_.device.tx.disable_notifications();
    return false;
  }

  static constexpr RoleOps kOps{Role::kDevice,  start,          drain,         take_tx,
                                push_tx,        push_rx,        publish_tx,    publish_rx,
                                tx_kick_needed, rx_kick_needed, set_tx_waiting};
};

Status Device::start_device_role(const DeviceConfig& config, std::span<TxSlot> tx_free,
                                 std::span<std::uint64_t> in_flight) noexcept {
  return start_role(config, DeviceRole::kOps, {}, tx_free, in_flight);
}

}  // namespace amp::rpmsg
