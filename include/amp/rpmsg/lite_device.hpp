// SPDX-License-Identifier: BSD-3-Clause
// rpmsg in the virtio device role (the remote side) at its smallest: LiteDevice, for firmware that serves a
// few endpoints from one main loop and counts its flash in bytes.
//
// What it keeps of rpmsg::Device: the same wire and the same checks of everything the host writes (each
// header and name-service message copied and checked, a ring violation makes the device broken, nothing
// outside `shm` is ever touched), endpoints with static or dynamic addresses, announcements through the name
// service and the host's announcements binding endpoints by name, implicit binding to the first sender,
// event indexes, and sends that wait a bounded time for a buffer. What it leaves out, and what it saves by
// that (docs/performance.md, "Footprint"): the driver role, locking and threads (one context uses it),
// sleeping waits (a send that waits spins on the ring), zero-copy buffers, unbind callbacks and a handler for
// announcements that match no endpoint. An application that needs those uses rpmsg::Device.
//
// Notifications: with a notifier the host is kicked when it asks for it and asked to kick this side when it
// adds messages (interrupt mode: the caller sleeps until a kick, then calls process()). Without one neither
// side kicks: the caller polls process().
//
// Thread-safety: none. Every call on a LiteDevice and its endpoints, and every callback, happens in one
// context (a bare-metal main loop, or one RTOS task). An interrupt handler may only record that a kick came.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "amp/metal/function.hpp"
#include "amp/metal/io_region.hpp"
#include "amp/metal/result.hpp"
#include "amp/rpmsg/device.hpp"  // Notifier, Stats, kForever
#include "amp/rpmsg/wire.hpp"
#include "amp/virtio/rsc_vdev.hpp"
#include "amp/virtio/virtqueue.hpp"

namespace amp::rpmsg {

class LiteDevice;

/// A message passed to a LiteEndpoint's callback. `payload` points into shared memory and is valid until the
/// callback returns.
struct LiteMessage {
  std::uint32_t src = 0;
  std::uint32_t dst = 0;
  std::span<const std::byte> payload{};
};

class LiteEndpoint {
 public:
  using ReceiveFn = metal::InplaceFunction<void(LiteEndpoint&, const LiteMessage&), 2 * sizeof(void*)>;

  LiteEndpoint() = default;
  LiteEndpoint(const LiteEndpoint&) = delete;
  LiteEndpoint& operator=(const LiteEndpoint&) = delete;
  ~LiteEndpoint() { destroy(); }

  std::uint32_t address() const noexcept { return addr_; }
  /// The peer's address: given at creation, or learnt from the first message received or from the host's
  /// announcement of the same name. kAddrAny while unbound.
  std::uint32_t remote_address() const noexcept { return remote_; }
  std::string_view name() const noexcept;
  bool attached() const noexcept { return dev_ != nullptr; }

  /// Sends to remote_address(), waiting (spinning) up to timeout_ns for a free buffer: kWouldBlock for a
  /// timeout of 0, kTimeout later. kNotFound while unbound, kTooLarge beyond the payload size or the
  /// buffer the host gave, kClosed while the device is not running, kBroken once the host broke the rings.
  [[nodiscard]] Status send(std::span<const std::byte> payload, std::uint64_t timeout_ns = 0) noexcept {
    return send_to(remote_, payload, timeout_ns);
  }
  [[nodiscard]] Status send_to(std::uint32_t dst, std::span<const std::byte> payload,
                               std::uint64_t timeout_ns = 0) noexcept;

  /// Unregisters (telling the host when it was announced and the device runs, if a buffer is free at once).
  /// Idempotent; may be called from the endpoint's own callback.
  void destroy() noexcept;

 private:
  friend class LiteDevice;
  LiteDevice* dev_ = nullptr;
  LiteEndpoint* next_ = nullptr;
  std::uint32_t addr_ = kAddrAny;
  std::uint32_t remote_ = kAddrAny;
  bool service_ = false;  // named and created without a peer: announced while the device runs
  char name_[kNameSize] = {};
  ReceiveFn on_receive_;
};

struct LiteConfig {
  /// All memory the host may point at: rings and buffers must lie inside.
  metal::IoRegion shm{};
  /// The vdev entry of the resource table the host set up (read at start() only).
  const virtio::RscVdev* vdev = nullptr;
  /// Kicks the host (interrupt mode); nullptr when both sides poll.
  Notifier* notifier = nullptr;
  /// The host's buffer size, header included, which bounds payload_size(). Linux and OpenAMP use 512. When
  /// the host acknowledged VIRTIO_RPMSG_F_BUFSZ, the size the table's config space declares instead.
  std::uint32_t buffer_size = kDefaultBufferSize;
  /// How long an announcement waits for a buffer.
  std::uint64_t announce_timeout_ns = 1'000'000'000;
};

/// A LiteDevice's storage for rings of up to MaxRing entries: a bit per ring entry it holds.
template <std::uint32_t MaxRing>
struct LiteStorage {
  std::uint64_t in_flight[2 * virtio::DeviceQueue::in_flight_words(MaxRing)];
};

class LiteDevice {
 public:
  LiteDevice() = default;
  LiteDevice(const LiteDevice&) = delete;
  LiteDevice& operator=(const LiteDevice&) = delete;
  ~LiteDevice();

  /// Takes the vdev as the host set it up: DRIVER_OK must be there already (kWouldBlock otherwise: wait for
  /// it and call again), the features it acknowledged, the two vrings it placed inside `shm`. Announces the
  /// endpoints that are services (created before, or in an earlier session). kBusy while running.
  template <std::uint32_t MaxRing>
  [[nodiscard]] Status start(const LiteConfig& config, LiteStorage<MaxRing>& storage) noexcept {
    return start(config, std::span(storage.in_flight));
  }
  /// The same with storage sized at run time: 2 x DeviceQueue::in_flight_words(N) words for rings of up to N.
  [[nodiscard]] Status start(const LiteConfig& config, std::span<std::uint64_t> in_flight) noexcept;

  /// Receives and dispatches the messages waiting, gives their buffers back, makes the callbacks' sends
  /// visible and kicks the host as it asks. At most a ring's worth of messages, however the host keeps
  /// adding: what it returns becomes visible only at the end. kClosed when not running; kBroken once the
  /// host broke the ring protocol (fault() says how).
  [[nodiscard]] Status process() noexcept;

  /// The host is gone (or we leave): sends fail with kClosed, services forget their peers. Endpoints stay
  /// registered, and are announced again by the next start().
  void stop() noexcept;

  /// Registers an endpoint. `local` kAddrAny allocates one from kFirstDynamicAddress up (kAlreadyExists when
  /// `local` is taken). A named endpoint without a `remote` is a service: announced now if the device runs
  /// (a failure to announce undoes the creation), else at start().
  [[nodiscard]] Status create_endpoint(LiteEndpoint& ep, std::string_view name, std::uint32_t local,
                                       std::uint32_t remote, LiteEndpoint::ReceiveFn on_receive) noexcept;

  bool running() const noexcept { return running_; }
  /// Largest payload one message can carry.
  std::uint32_t payload_size() const noexcept {
    return config_.buffer_size - static_cast<std::uint32_t>(kHeaderSize);
  }
  bool name_service() const noexcept { return ns_; }
  bool event_idx() const noexcept { return event_idx_; }
  Stats stats() const noexcept { return stats_; }
  /// Why the device is broken (kNone if it is not).
  virtio::Fault fault() const noexcept;

 private:
  friend class LiteEndpoint;
  Status setup_queue(std::uint32_t index, virtio::DeviceQueue& q, std::span<std::uint64_t> in_flight,
                     std::uint32_t& notify_id) noexcept;
  void deliver(const virtio::Buffer& b) noexcept;
  void handle_ns(std::span<const std::byte> payload) noexcept;
  Status send(std::uint32_t src, std::uint32_t dst, std::span<const std::byte> payload,
              std::uint64_t timeout_ns) noexcept;
  Status take_tx(virtio::Buffer& b, std::uint16_t& head) noexcept;
  Status announce(const LiteEndpoint& ep, std::uint32_t flags, std::uint64_t timeout_ns) noexcept;
  // Makes what was returned on `q` visible, and kicks the host if it asks.
  void publish(virtio::DeviceQueue& q, std::uint32_t notify_id) noexcept;
  LiteEndpoint* find(std::uint32_t addr) const noexcept;
  void unlink(LiteEndpoint& ep) noexcept;

  LiteConfig config_{};
  virtio::DeviceQueue tx_;  // queue 0: the host's empty buffers, which this side sends in
  virtio::DeviceQueue rx_;  // queue 1: the host's messages
  std::uint32_t notify_tx_ = 0;
  std::uint32_t notify_rx_ = 0;
  LiteEndpoint* endpoints_ = nullptr;
  // A buffer taken from the host but not sent in (too small for its message): the next send's.
  std::byte* spare_ = nullptr;
  std::uint32_t spare_len_ = 0;
  std::uint16_t spare_head_ = 0;
  bool running_ = false;
  bool ns_ = false;
  bool event_idx_ = false;
  bool in_process_ = false;                     // returns and sends are published at the end of process()
  virtio::Fault fault_ = virtio::Fault::kNone;  // violations seen above the queues
  Stats stats_{};
};

}  // namespace amp::rpmsg
