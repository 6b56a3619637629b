// SPDX-License-Identifier: BSD-3-Clause
// Split virtqueues for both roles: DriverQueue (adds buffers, reclaims used ones) and DeviceQueue (takes
// available buffers, returns them used), with notification suppression (ring flags, or event indexes when
// VIRTIO_RING_F_EVENT_IDX was negotiated).
//
// The peer writes half of every ring, so everything read from it is untrusted: each value is loaded once into
// a local, checked, then used. A violation (an index out of range, a ring index that ran more than a ring
// ahead, a descriptor loop, a buffer outside the shared region, a used length larger than the buffer, a
// buffer returned twice, a buffer offered again while the device still holds it) marks the queue *broken*:
// the call returns Status::kBroken, fault() says why, and every later call fails the same way. No violation
// leads to an access outside the ring's or the buffers' IoRegion. The driver never reads back its own
// descriptor table (the device could have changed it): it keeps a private shadow of every descriptor in
// caller-provided storage; the device keeps a bit per head it holds (taken, not yet returned), also in
// caller-provided storage, so no heap is used.
//
// Thread-safety: a queue is not internally locked. One thread at a time may use a queue (the rpmsg layer
// serialises its callers); the peer on the other side of shared memory is the only concurrent party, and the
// ring protocol (release/acquire on the ring indexes, full fences before reading suppression fields) orders
// the accesses between the two.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "amp/metal/io_region.hpp"
#include "amp/metal/result.hpp"
#include "amp/virtio/ring.hpp"

namespace amp::virtio {

/// One buffer of a descriptor chain, by device address.
struct Buffer {
  metal::DeviceAddress addr = 0;
  std::uint32_t len = 0;
  bool device_writable = false;
  /// Where the buffer is in this process: set by DeviceQueue::pop_available/pop_buffer, which checked that
  /// all of it lies in QueueConfig::buffers (ignored by DriverQueue::add).
  std::byte* data = nullptr;
};

/// Why a queue stopped working.
enum class Fault : std::uint8_t {
  kNone = 0,
  kIndexRunaway,           ///< The peer's ring index moved by more than the ring holds.
  kDescriptorIndex,        ///< A head or `next` index is >= the queue size.
  kDescriptorAddress,      ///< A buffer lies (partly) outside the shared buffer region.
  kDescriptorLoop,         ///< A chain is longer than the queue: it loops.
  kChainTooLong,           ///< A chain has more buffers than the caller can take.
  kUnexpectedIndirect,     ///< An indirect descriptor, which was not negotiated.
  kReadableAfterWritable,  ///< A device-readable buffer follows a device-writable one.
  kUsedIdNotInFlight,      ///< The device returned a buffer the driver had not given it (or twice).
  kUsedLengthTooLarge,     ///< The device claims to have written more than the buffer holds.
  kRingAccess,             ///< The ring itself does not fit its region (a setup error).
  kBadBuffer,              ///< A buffer of the wrong direction or too small for its use.
  kHeadInFlight,           ///< The driver offered a chain again that the device still holds.
};

const char* to_string(Fault f) noexcept;
/// As amp::log_name(Status): to_string(f), or its log dictionary entry in a dictionary-logging core.
#if defined(AMP_LOG_DICTIONARY) && AMP_LOG_DICTIONARY
const char* log_name(Fault f) noexcept;
#else
inline const char* log_name(Fault f) noexcept {
  return to_string(f);
}
#endif

/// Where a queue lives and what it may touch.
struct QueueConfig {
  metal::IoRegion ring;     ///< The ring's memory (at least RingLayout::size bytes).
  metal::IoRegion buffers;  ///< The region every buffer address must fall in (the shared memory).
  std::uint32_t num = 0;    ///< Entries (a power of two).
  std::uint32_t align = 0;  ///< Used-ring alignment.
  bool event_idx = false;   ///< VIRTIO_RING_F_EVENT_IDX was negotiated.
};

namespace detail {

/// What both halves of a split ring share: where the ring is, its layout, checked access to its fields, and
/// the fault that broke it.
class SplitRing {
 public:
  std::uint32_t size() const noexcept { return layout_.num; }
  bool broken() const noexcept { return fault_ != Fault::kNone; }
  Fault fault() const noexcept { return fault_; }

 protected:
  SplitRing() = default;
  /// Checks `config` (ring inside its region, naturally aligned) and adopts it.
  Status setup(const QueueConfig& config) noexcept;
  /// Records the first fault, logs it once, and returns kBroken.
  Status mark_broken(const char* role, Fault f) noexcept;
  // setup() checked that the whole ring lies inside its region and is 8-byte aligned, and every offset the
  // queues use comes from layout_ with an index below num: the fields are accessed directly.
  template <metal::IoWord T>
  T read(std::size_t offset, std::memory_order order = std::memory_order_relaxed) const noexcept {
    return metal::detail::load_word(reinterpret_cast<const T*>(static_cast<const void*>(base_ + offset)),
                                    order);
  }
  template <metal::IoWord T>
  void write(std::size_t offset, T value,
             std::memory_order order = std::memory_order_relaxed) const noexcept {
    metal::detail::store_word(reinterpret_cast<T*>(static_cast<void*>(base_ + offset)), value, order);
  }

  std::byte* base_ = nullptr;  // the ring's first byte
  metal::IoRegion buffers_{};  // QueueConfig::buffers (of the config, only what is needed after setup)
  RingLayout layout_{};
  bool event_idx_ = false;  // QueueConfig::event_idx
  Fault fault_ = Fault::kNone;
};

}  // namespace detail

class DriverQueue : public detail::SplitRing {
 public:
  /// The driver's private record of one descriptor. Callers only provide the storage (num entries).
  struct Slot {
    metal::DeviceAddress addr = 0;
    std::uint32_t len = 0;
    std::uint16_t flags = 0;
    std::uint16_t next = 0;  ///< Our link: the chain's next descriptor, or (while free) the next free one.
    std::uint16_t desc_next = 0;    ///< The `next` field as last written to the shared descriptor.
    std::uint16_t chain_len = 0;    ///< For a head in flight: descriptors in its chain; 0 otherwise.
    std::uint32_t writable = 0;     ///< For a head in flight: device-writable bytes in its chain.
    std::uintptr_t token = 0;       ///< For a head in flight: the caller's token.
    bool written = false;           ///< This descriptor was written to the ring since init.
    std::uint16_t avail_entry = 0;  ///< (Indexed by avail ring position:) what that position holds.
  };

  struct Used {
    std::uint16_t head = 0;    ///< What add() returned for this chain.
    std::uint32_t len = 0;     ///< Bytes the device wrote (checked to fit the writable buffers).
    std::uintptr_t token = 0;  ///< What add() was given for this chain (kept privately, never shared).
  };

  DriverQueue() = default;

  /// Sets the queue up over `config.ring`, which it zeroes (the driver owns the ring's initial state).
  /// `slots` must have `config.num` entries and outlive the queue.
  [[nodiscard]] Status init(const QueueConfig& config, std::span<Slot> slots) noexcept;

  /// Offers a chain (readable buffers first, then writable ones) to the device. Returns the chain's head,
  /// which pop_used() reports when the device is done. kWouldBlock when too few descriptors are free,
  /// kInvalidArgument for an empty or misordered chain, kOutOfRange for a buffer outside the region.
  /// `token` comes back with the chain in pop_used() (for example the host pointer of its buffer, so the
  /// caller need not translate the address back).
  /// With `publish_now` false the chain is written but the device does not see it until publish() (a burst
  /// of chains then costs one index update).
  [[nodiscard]] Result<std::uint16_t> add(std::span<const Buffer> chain, std::uintptr_t token = 0,
                                          bool publish_now = true) noexcept;
  /// Makes every chain added so far visible to the device.
  void publish() noexcept;

  /// After one or more add()s: whether the device wants a notification (kick) now.
  [[nodiscard]] bool kick_needed() noexcept;

  /// Takes the next chain the device returned. Ok(false) when there is none.
  [[nodiscard]] Result<bool> pop_used(Used& out) noexcept;
  /// Whether the device has returned chains not taken yet (without taking or checking them).
  [[nodiscard]] bool has_used() const noexcept;

  /// The first buffer of an in-flight (or just returned) chain, from the driver's private shadow.
  [[nodiscard]] Buffer head_buffer(std::uint16_t head) const noexcept;

  /// Asks the device not to interrupt when it returns buffers.
  void disable_interrupts() noexcept;
  /// Asks for interrupts again. Returns true if used buffers are already waiting (poll again, or miss them).
  [[nodiscard]] bool enable_interrupts() noexcept;

  std::uint16_t free_count() const noexcept { return free_count_; }

 private:
  std::span<Slot> slots_{};
  std::uint16_t free_head_ = 0;  // free descriptors: a queue from free_head_ to free_tail_
  std::uint16_t free_tail_ = 0;
  std::uint16_t free_count_ = 0;
  std::uint16_t avail_idx_ = 0;     // next avail index to publish
  std::uint16_t published_ = 0;     // avail index the device can see
  std::uint16_t kicked_avail_ = 0;  // avail index at the last kick decision
  std::uint16_t last_used_ = 0;     // next used entry to read
  std::uint16_t used_seen_ = 0;     // the device's used index when we last read it
  bool interrupts_disabled_ = false;
};

class DeviceQueue : public detail::SplitRing {
 public:
  /// A chain taken from the available ring.
  struct Chain {
    std::uint16_t head = 0;
    std::size_t count = 0;           ///< Buffers written to the caller's span.
    std::uint32_t readable_len = 0;  ///< Sum of the device-readable buffers' lengths.
    std::uint32_t writable_len = 0;  ///< Sum of the device-writable buffers' lengths.
  };

  DeviceQueue() = default;

  /// Words of in-flight storage a queue of `num` entries needs (a bit per head).
  static constexpr std::size_t in_flight_words(std::uint32_t num) noexcept { return (num + 63) / 64; }

  /// Sets the queue up over a ring the driver initialised. Reads nothing yet. `in_flight` (at least
  /// in_flight_words(config.num) words, outliving the queue) records the heads the device holds, so that a
  /// driver offering one of them again is caught (Fault::kHeadInFlight) instead of handing the same buffer
  /// out twice: what the device holds is bounded by the ring size, whatever the driver does.
  [[nodiscard]] Status init(const QueueConfig& config, std::span<std::uint64_t> in_flight) noexcept;

  /// Takes the next available chain into `out` (checked: see the file comment). Ok(false) when none.
  [[nodiscard]] Result<bool> pop_available(Chain& chain, std::span<Buffer> out) noexcept;
  /// As pop_available for a driver that offers one buffer per chain, as rpmsg's do (Linux, OpenAMP): a chain
  /// of more is a fault (Fault::kChainTooLong). `head` is what push_used() takes back.
  [[nodiscard]] Result<bool> pop_buffer(std::uint16_t& head, Buffer& out) noexcept;

  /// Returns a chain to the driver, `written` bytes having been written into its writable buffers.
  /// kInvalidArgument for a head the device does not hold. With `publish_now` false the driver does not see
  /// it until publish().
  [[nodiscard]] Status push_used(std::uint16_t head, std::uint32_t written, bool publish_now = true) noexcept;

  /// Chains taken and not yet returned.
  std::uint32_t held() const noexcept { return held_; }
  /// Makes every chain returned so far visible to the driver.
  void publish() noexcept;

  /// After one or more push_used()s: whether the driver wants an interrupt now.
  [[nodiscard]] bool notify_needed() noexcept;

  /// Asks the driver not to kick when it adds buffers.
  void disable_notifications() noexcept;
  /// Asks for kicks again. Returns true if buffers are already available.
  [[nodiscard]] bool enable_notifications() noexcept;

  /// Whether the driver has made buffers available that were not taken yet (without taking them).
  [[nodiscard]] Result<bool> has_available() noexcept;

 private:
  // The steps of pop_available and pop_buffer: the next head (checked), one descriptor read once and
  // checked, and taking the head.
  Result<bool> next_head(std::uint16_t& head) noexcept;
  Status read_descriptor(std::uint16_t idx, Buffer& out, std::uint16_t& flags, std::uint16_t& next) noexcept;
  void take(std::uint16_t head) noexcept;

  std::uint16_t last_avail_ = 0;     // next avail entry to read
  std::uint16_t avail_seen_ = 0;     // the driver's avail index when we last read it
  std::uint16_t used_idx_ = 0;       // next used index to publish
  std::uint16_t published_ = 0;      // used index the driver can see
  std::uint16_t notified_used_ = 0;  // used index at the last notify decision
  bool notifications_disabled_ = false;
  std::span<std::uint64_t> in_flight_{};  // a bit per head the device holds
  std::uint32_t held_ = 0;
};

}  // namespace amp::virtio
