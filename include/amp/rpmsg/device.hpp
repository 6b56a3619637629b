// SPDX-License-Identifier: BSD-3-Clause
// RPMsg over virtio, in either role, with endpoints, the name service, blocking/non-blocking and zero-copy
// send, and callbacks on receive.
//
// Roles (the virtio terms):
//  - Role::kDriver is the host side, like Linux's virtio_rpmsg_bus: it owns the buffers, fills queue 0 with
//    empty receive buffers and sends on queue 1.
//  - Role::kDevice is the remote side, like an OpenAMP remote: it sends in the driver's empty buffers from
//    queue 0 and receives on queue 1.
// Buffers are 512 bytes by default (16-byte header + 496 bytes of payload). A message larger than a buffer's
// payload fails with Status::kTooLarge; nothing is ever truncated.
//
// Peer input: every header, length and name-service message read from shared memory is copied to a local
// and checked before use. A malformed message (a header length larger than its buffer, a name without its
// NUL) is dropped, counted in Stats and logged; its buffer goes back. A ring violation marks the device
// broken (Status::kBroken from then on) and never leads to an access outside `shm`.
//
// Thread-safety: Device and Endpoint methods may be called from any thread; sends from several threads at
// once are safe (unless DeviceConfig::single_threaded promises one thread, which removes all locking). One
// internal mutex guards the queues, the endpoint list and its index; it is never held while a receive or
// unbind callback runs, so callbacks may send, create and destroy endpoints (a send that must wait for a
// buffer inside a callback looks at the ring again every millisecond, since the thread that would wake it
// is itself).
// process() should be called from one thread at a time (that keeps each endpoint's messages in order).
// Destroy endpoints before their Device (or let the Device's destructor detach them, but not concurrently
// with Endpoint calls).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "amp/metal/function.hpp"
#include "amp/metal/io_region.hpp"
#include "amp/metal/result.hpp"
#include "amp/metal/sync.hpp"
#include "amp/rpmsg/address_index.hpp"
#include "amp/rpmsg/wire.hpp"
#include "amp/virtio/transport.hpp"
#include "amp/virtio/virtqueue.hpp"

namespace amp::rpmsg {

class Device;
class Endpoint;

/// "Wait as long as it takes."
inline constexpr std::uint64_t kForever = ~std::uint64_t{0};

enum class Role : std::uint8_t { kDriver, kDevice };

/// How a sender waits for a free buffer: sleeping on a condition (woken by process()), or spinning on the
/// rings (no syscall; for polling transports).
enum class WaitMode : std::uint8_t { kBlock, kSpin };

/// Kicks the peer: "look at the queue with this notify id".
class Notifier {
 public:
  [[nodiscard]] virtual Status notify(std::uint32_t notify_id) noexcept = 0;

 protected:
  ~Notifier() = default;
};

/// A received buffer kept past its callback (zero-copy receive). Releasing it (or destroying the handle)
/// gives the buffer back to the peer. Move-only; thread-safe to release from any thread.
class RxBuffer {
 public:
  RxBuffer() = default;
  RxBuffer(RxBuffer&& o) noexcept { *this = static_cast<RxBuffer&&>(o); }
  RxBuffer& operator=(RxBuffer&& o) noexcept;
  RxBuffer(const RxBuffer&) = delete;
  RxBuffer& operator=(const RxBuffer&) = delete;
  ~RxBuffer() { release(); }

  explicit operator bool() const noexcept { return dev_ != nullptr; }
  std::span<const std::byte> payload() const noexcept { return payload_; }
  std::uint32_t src() const noexcept { return src_; }
  void release() noexcept;

 private:
  friend class Device;
  friend struct Message;
  Device* dev_ = nullptr;
  std::uint16_t head_ = 0;
  std::byte* buf_ = nullptr;
  std::uint32_t len_ = 0;
  std::uint32_t src_ = 0;
  std::span<const std::byte> payload_{};
};

/// A message passed to an endpoint's receive callback. `payload` points into shared memory and is valid
/// until the callback returns, unless hold() keeps it.
struct Message {
  std::uint32_t src = 0;
  std::uint32_t dst = 0;
  std::span<const std::byte> payload{};

  /// Keeps the buffer past the callback (call at most once, inside the callback).
  [[nodiscard]] RxBuffer hold() const noexcept;

 private:
  friend class Device;
  Device* dev_ = nullptr;
  std::uint16_t head_ = 0;
  std::byte* buf_ = nullptr;
  std::uint32_t len_ = 0;
  mutable bool held_ = false;
};

/// A transmit buffer for zero-copy sending: fill payload(), then Endpoint::send_nocopy(). An unsent buffer
/// goes back to the pool when the handle dies. Move-only.
class TxBuffer {
 public:
  TxBuffer() = default;
  TxBuffer(TxBuffer&& o) noexcept { *this = static_cast<TxBuffer&&>(o); }
  TxBuffer& operator=(TxBuffer&& o) noexcept;
  TxBuffer(const TxBuffer&) = delete;
  TxBuffer& operator=(const TxBuffer&) = delete;
  ~TxBuffer() { reset(); }

  explicit operator bool() const noexcept { return dev_ != nullptr; }
  /// Room for the payload (the buffer minus the header).
  std::span<std::byte> payload() const noexcept { return payload_; }
  /// Gives the buffer back unsent.
  void reset() noexcept;

 private:
  friend class Device;
  Device* dev_ = nullptr;
  std::uint32_t id_ = 0;         // device role: ring head
  metal::DeviceAddress da_ = 0;  // driver role: device address
  std::span<std::byte> buffer_{};
  std::span<std::byte> payload_{};
};

class Endpoint {
 public:
  using ReceiveFn = metal::InplaceFunction<void(Endpoint&, const Message&), 6 * sizeof(void*)>;
  using UnbindFn = metal::InplaceFunction<void(Endpoint&), 4 * sizeof(void*)>;

  Endpoint() = default;
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;
  ~Endpoint() { destroy(); }

  std::uint32_t address() const noexcept { return addr_; }
  /// The peer's address: set at creation, by implicit binding (the first message received), or by a
  /// matching name-service announcement. kAddrAny while unbound.
  std::uint32_t remote_address() const noexcept { return remote_.load(std::memory_order_acquire); }
  std::string_view name() const noexcept;
  bool attached() const noexcept { return dev_ != nullptr; }

  /// Sends to remote_address(), waiting up to timeout_ns for a free buffer (kTimeout). kNotFound while
  /// unbound; kTooLarge beyond the payload size; kClosed once the device stopped.
  [[nodiscard]] Status send(std::span<const std::byte> payload, std::uint64_t timeout_ns = kForever) noexcept;
  /// As send(), but kWouldBlock at once when no buffer is free.
  [[nodiscard]] Status try_send(std::span<const std::byte> payload) noexcept;
  [[nodiscard]] Status send_to(std::uint32_t dst, std::span<const std::byte> payload,
                               std::uint64_t timeout_ns = kForever) noexcept;
  /// With an explicit source address as well.
  [[nodiscard]] Status send_offchannel(std::uint32_t src, std::uint32_t dst,
                                       std::span<const std::byte> payload,
                                       std::uint64_t timeout_ns = kForever) noexcept;

  /// Zero-copy: a buffer to fill, waiting up to timeout_ns for one.
  [[nodiscard]] Result<TxBuffer> get_tx_buffer(std::uint64_t timeout_ns = kForever) noexcept;
  /// Sends the first `len` payload bytes of `buffer` to remote_address() (or `dst`). On success the buffer
  /// is consumed; on failure the caller keeps it.
  [[nodiscard]] Status send_nocopy(TxBuffer& buffer, std::size_t len) noexcept;
  [[nodiscard]] Status send_nocopy_to(std::uint32_t dst, TxBuffer& buffer, std::size_t len) noexcept;

  /// Unregisters (announcing the destruction when it was announced). Idempotent.
  void destroy() noexcept;

 private:
  friend class Device;
  Device* dev_ = nullptr;
  Endpoint* next_ = nullptr;
  std::uint32_t addr_ = kAddrAny;
  std::atomic<std::uint32_t> remote_{kAddrAny};
  char name_[kNameSize] = {};
  bool announced_ = false;
  bool stop_notified_ = false;
  bool indexed_ = false;    // in the device's AddressIndex (else found by walking the list)
  std::uint32_t busy_ = 0;  // callbacks running on it (guarded by the device mutex)
  ReceiveFn on_receive_;
  UnbindFn on_unbind_;
};

/// Traffic and error counters.
struct Stats {
  std::uint64_t rx_messages = 0;
  std::uint64_t tx_messages = 0;
  std::uint64_t rx_malformed = 0;   ///< Dropped: bad header length, bad NS message...
  std::uint64_t rx_unroutable = 0;  ///< Dropped: no endpoint at the destination address.
};

struct DeviceConfig {
  Role role = Role::kDriver;
  /// All memory the peer may point at: rings and buffers must lie inside.
  metal::IoRegion shm{};
  virtio::Transport* transport = nullptr;
  Notifier* notifier = nullptr;
  WaitMode wait_mode = WaitMode::kBlock;
  /// Driver role: where the buffers go (rx buffers first, then tx buffers).
  metal::DeviceAddress buffer_pool = 0;
  std::size_t buffer_pool_size = 0;
  /// Buffer size, header included (the driver decides; the device takes what it is given).
  std::uint32_t buffer_size = kDefaultBufferSize;
  /// Per direction, as seen from this side; 0 means buffer_size. (Device role: the size it expects of the
  /// driver's buffers, which bounds payload_size(); the buffers themselves say how big they are.)
  std::uint32_t rx_buffer_size = 0;
  std::uint32_t tx_buffer_size = 0;
  /// Driver role: when the device offers VIRTIO_RPMSG_F_BUFSZ (wire.hpp), take the buffer sizes it declares
  /// in its config space instead of the ones above (a declaration amp cannot use: start() fails with
  /// kMalformed). Device role: the sizes come from the config space whenever the driver agreed to the bit;
  /// the side that writes the table declares them (RscVdev::Spec::config, rproc::TableBuilder,
  /// rproc::rpmsg_firmware_table).
  bool accept_buffer_sizes = true;
  /// Driver role: the declaration a host already read to size `buffer_pool` (rproc::plan_rpmsg), if it did
  /// ({0, 0}: none). The one start() reads must be the same: a device that changed it meanwhile is refused.
  BufferSizes expected_buffer_sizes{0, 0};
  /// Driver role: buffers per direction; 0 means the ring size (the kernel's choice).
  std::uint32_t rx_buffers = 0;
  std::uint32_t tx_buffers = 0;
  /// Device role: offer VIRTIO_RING_F_EVENT_IDX. Driver role: accept it when offered.
  bool event_idx = true;
  /// The application promises that every call on this Device and its endpoints, and every callback, happens
  /// on one thread (a poll-mode loop). The Device then takes no lock at all on its paths, waits for a free
  /// buffer by spinning, and makes sends visible to the peer in bursts: every 16 sends, at every process(),
  /// and at flush() (call it, or process(), when you stop sending). Sending from several threads is only
  /// safe when this is false (the default), and then every send is visible at once.
  bool single_threaded = false;
  /// Whether the peer wants notifications at all. false when the peer polls the rings: sends then skip the
  /// notification check (and its memory fence) entirely, and process() leaves notifications off.
  bool notify_peer = true;
  /// Dynamic addresses are allocated from kFirstDynamicAddress up, this many of them.
  std::uint32_t dynamic_addresses = 1024;
  /// How long create_endpoint() waits for a buffer to announce the endpoint.
  std::uint64_t announce_timeout_ns = 1'000'000'000;
  /// Device role: how long start() waits for the driver to set DRIVER_OK.
  std::uint64_t start_timeout_ns = 10'000'000'000;
  /// The most buffers one process() call takes from the peer (0: one ring's worth), so that a peer that
  /// keeps the ring full cannot hold process(), and the device's lock, for ever.
  std::uint32_t process_budget = 0;
  /// How process() asks to be run again when it stopped at its budget with buffers still waiting: its
  /// notify() is called (outside the lock) with the receive queue's notify id, and should make the caller's
  /// loop call process() again soon, after what else waits (post it to the event loop, pend the interrupt
  /// again). Without one, process() itself goes on batch after batch, releasing the lock in between, until
  /// the ring is drained or the device is stopped.
  Notifier* reschedule = nullptr;
};

/// The largest ring either role handles with DeviceStorage's defaults.
inline constexpr std::uint32_t kDefaultMaxRing = 256;

/// A transmit buffer that is free for the taking (Device bookkeeping; callers only provide storage).
struct TxSlot {
  std::uint32_t id = 0;  // device role: the ring head it came from
  std::uint32_t len = 0;
  std::byte* data = nullptr;
  metal::DeviceAddress da = 0;  // driver role: where the device sees it
};

/// Fixed storage a Device needs (no heap), in either role: descriptor shadows for the driver role,
/// free-buffer stacks, and for the device role a bit per ring entry it holds.
template <std::uint32_t MaxRing = kDefaultMaxRing>
struct DeviceStorage {
  virtio::DriverQueue::Slot slots[2 * MaxRing];
  TxSlot tx_free[MaxRing];
  std::uint64_t in_flight[2 * virtio::DeviceQueue::in_flight_words(MaxRing)];
};

/// The storage of one role only: a Device started on it can take that role only (kInvalidArgument for the
/// other), and links only that role's code. A remote's DeviceRoleStorage<64> is 1.5 KiB where a
/// DeviceStorage<64> is 5.5 KiB (the driver's descriptor shadows).
template <std::uint32_t MaxRing = kDefaultMaxRing>
struct DeviceRoleStorage {
  TxSlot tx_free[MaxRing];
  std::uint64_t in_flight[2 * virtio::DeviceQueue::in_flight_words(MaxRing)];
};
template <std::uint32_t MaxRing = kDefaultMaxRing>
struct DriverRoleStorage {
  virtio::DriverQueue::Slot slots[2 * MaxRing];
  TxSlot tx_free[MaxRing];
};

class Device {
 public:
  using NameServiceFn =
      metal::InplaceFunction<void(Device&, std::string_view name, std::uint32_t remote), 6 * sizeof(void*)>;

  /// Keeps its endpoints on a list, which each received message's dispatch walks: what suits the few
  /// endpoints of a remote, and links no index.
  Device() noexcept = default;
  /// Finds each received message's endpoint in O(1) through an AddressIndex over `index`
  /// (AddressIndex::slots_for(N) slots for N endpoints, outliving the Device), however many endpoints there
  /// are; those beyond its capacity are kept on the list, and take the room of indexed ones destroyed. Links
  /// the index's code (src/rpmsg/device_index.cpp), which the other constructor does not.
  explicit Device(std::span<AddressIndex::Slot> index) noexcept;
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
  ~Device();

  /// Brings the virtio device up in config.role: feature negotiation and the status handshake, queue
  /// set-up, buffers (driver role). Device role waits (sleeping) up to start_timeout_ns for DRIVER_OK, and
  /// gives up with kClosed when stop() is called meanwhile. kClosed too when stop() came before the first
  /// start (a device that ran and was stopped may be started again).
  ///
  /// Each role has a start of its own, and only it refers to that role's code: inlined here, the choice is
  /// made where config.role is known, so an image that starts one role links none of the other's.
  template <std::uint32_t MaxRing>
  [[nodiscard]] [[gnu::always_inline]] inline Status start(const DeviceConfig& config,
                                                           DeviceStorage<MaxRing>& storage) noexcept {
    if (config.role == Role::kDevice) return start_device_role(config, storage.tx_free, storage.in_flight);
    return start_driver_role(config, storage.slots, storage.tx_free);
  }
  template <std::uint32_t MaxRing>
  [[nodiscard]] Status start(const DeviceConfig& config, DeviceRoleStorage<MaxRing>& storage) noexcept {
    return start_device_role(config, storage.tx_free, storage.in_flight);
  }
  template <std::uint32_t MaxRing>
  [[nodiscard]] Status start(const DeviceConfig& config, DriverRoleStorage<MaxRing>& storage) noexcept {
    return start_driver_role(config, storage.slots, storage.tx_free);
  }
  /// The same with storage sized at run time for rings of up to N entries: `slots` 2N (driver role),
  /// `tx_free` N, `in_flight` 2 x DeviceQueue::in_flight_words(N) (device role).
  [[nodiscard]] Status start(const DeviceConfig& config, std::span<virtio::DriverQueue::Slot> slots,
                             std::span<TxSlot> tx_free, std::span<std::uint64_t> in_flight) noexcept;
  /// One role's start (kInvalidArgument when config.role is the other).
  [[nodiscard]] Status start_device_role(const DeviceConfig& config, std::span<TxSlot> tx_free,
                                         std::span<std::uint64_t> in_flight) noexcept;
  [[nodiscard]] Status start_driver_role(const DeviceConfig& config,
                                         std::span<virtio::DriverQueue::Slot> slots,
                                         std::span<TxSlot> tx_free) noexcept;

  /// Handles a notification from the peer: receives and dispatches messages, reclaims buffers, wakes
  /// blocked senders. Returns kBroken once the peer broke the ring protocol. Takes at most
  /// DeviceConfig::process_budget buffers (see DeviceConfig::reschedule for what happens then), and
  /// yields at once to a stop() on another thread.
  ///
  /// `rearm` false leaves the peer's notifications off afterwards: for a caller that keeps polling for a
  /// while (adaptive polling) and calls process(true) before it goes to sleep.
  [[nodiscard]] Status process(bool rearm = true) noexcept;

  /// Makes sends that a single-threaded device holds back visible to the peer now (and kicks it if it
  /// wants). Nothing to do otherwise.
  void flush() noexcept;

  /// The peer is gone (or we leave): endpoints get their unbind callback, blocked and later sends fail
  /// with kClosed. Endpoints stay registered until destroyed.
  void stop() noexcept;

  /// Creates an endpoint. `local` kAddrAny allocates one from kFirstDynamicAddress up (kNoMemory when all
  /// are taken; kAlreadyExists when `local` is in use). When the name service was negotiated, an endpoint
  /// with a name and no remote address is announced to the peer.
  [[nodiscard]] Status create_endpoint(Endpoint& ep, std::string_view name, std::uint32_t local,
                                       std::uint32_t remote, Endpoint::ReceiveFn on_receive,
                                       Endpoint::UnbindFn on_unbind = {}) noexcept;

  /// Called for a peer announcement that matches no local endpoint (typically: create one for it).
  /// Announcements that arrived before a handler was set (up to kMaxPendingAnnouncements) are kept and
  /// replayed to it, so a service announced during start-up is not missed.
  void set_name_service_handler(NameServiceFn fn) noexcept;
  static constexpr std::size_t kMaxPendingAnnouncements = 16;

  bool running() const noexcept { return running_.load(std::memory_order_acquire); }
  /// Whether stop() was called (it may still be waiting for the lock). A start() waiting for DRIVER_OK
  /// gives up with kClosed when it is.
  bool stopping() const noexcept { return stop_requested_.load(std::memory_order_relaxed); }
  Role role() const noexcept { return config_.role; }
  /// Largest payload one message can carry.
  std::uint32_t payload_size() const noexcept { return payload_size_; }
  /// The virtio features both sides agreed on at the last start() (VIRTIO_RPMSG_F_NS, _F_BUFSZ, event idx).
  std::uint64_t features() const noexcept { return features_; }
  /// Whether the peer and we agreed on the name service / event indexes.
  bool name_service() const noexcept { return ns_; }
  bool event_idx() const noexcept { return event_idx_; }
  Stats stats() const noexcept;
  /// Messages received so far (all of Stats::rx_messages), without taking the device's lock.
  std::uint64_t rx_count() const noexcept { return received_.load(std::memory_order_relaxed); }
  /// Why the device is broken (kNone if it is not).
  virtio::Fault fault() const noexcept;

 private:
  friend class Endpoint;
  friend class TxBuffer;
  friend class RxBuffer;
  friend struct Message;

  // What differs between the roles (src/rpmsg/role.hpp): a table of functions that each role's start
  // installs in ops_, so that the common code refers to neither role's (driver_role.cpp, device_role.cpp).
  struct RoleOps;
  struct DriverRole;
  struct DeviceRole;
  Status start_role(const DeviceConfig& config, const RoleOps& ops,
                    std::span<virtio::DriverQueue::Slot> slots, std::span<TxSlot> tx_free,
                    std::span<std::uint64_t> in_flight) noexcept;
  Status setup_queue(std::uint32_t index, virtio::QueueConfig& qc, std::uint32_t& notify_id) noexcept;
  Status process_batch(bool rearm, bool& more) noexcept;
  // One message in a receive buffer: parse, route, dispatch (drops the lock around the callback).
  void deliver(std::byte* buf, std::uint32_t buf_len, std::uint32_t filled, std::uint16_t head) noexcept;
  void handle_ns(std::span<const std::byte> payload) noexcept;
  void drop_pending_locked(std::size_t i) noexcept;  // forgets pending_ns_[i]
  /// The endpoint's peer is gone: unbinds it and runs its unbind callback (the lock released around it).
  void unbind_locked(Endpoint& ep) noexcept;
  void give_back_rx(std::uint16_t head, std::byte* buf, std::uint32_t len) noexcept;  // lock held
  void release_rx(std::uint16_t head, std::byte* buf, std::uint32_t len) noexcept;
  void publish_rx_locked() noexcept;  // makes returned receive buffers visible to the peer
  void announce_pending() noexcept;
  Status acquire_tx(TxBuffer& out, std::uint64_t timeout_ns) noexcept;
  bool try_acquire_tx_locked(TxBuffer& out, Status& error) noexcept;
  void return_tx(TxBuffer& buffer) noexcept;
  void return_tx_locked(TxBuffer& buffer) noexcept;
  Status send_buffer(TxBuffer& buffer, std::uint32_t src, std::uint32_t dst, std::size_t len) noexcept;
  // Writes the header and hands the buffer to the peer; sets `kick` when the peer wants a notification.
  Status publish_locked(TxBuffer& buffer, std::uint32_t src, std::uint32_t dst, std::size_t len,
                        bool& kick) noexcept;
  Status send_copy(std::uint32_t src, std::uint32_t dst, std::span<const std::byte> payload,
                   std::uint64_t timeout_ns) noexcept;
  Status announce(Endpoint& ep, std::uint32_t flags, std::uint64_t timeout_ns) noexcept;
  Endpoint* find_locked(std::uint32_t addr) noexcept;
  void release_endpoint_locked(Endpoint& ep) noexcept;
  void link_locked(Endpoint& ep) noexcept;
  void unlink_locked(Endpoint& ep) noexcept;
  void destroy_endpoint(Endpoint& ep) noexcept;
  void kick(std::uint32_t notify_id) noexcept;
  /// Asks the peer for kicks when buffers come back (waiting) or stops asking. True when, on asking, some
  /// had come back already (then no kick will come for them).
  bool set_tx_waiting_locked(bool waiting) noexcept;
  bool tx_kick_needed_locked() noexcept;
  /// Whether returned receive buffers call for a kick (once per batch).
  bool rx_kick_needed_locked() noexcept;
  /// Sends are published in bursts when someone is sure to call process() soon: a single-threaded device
  /// (its owner's loop), or a device whose peer polls (so this side polls too).
  bool defers_publication() const noexcept { return config_.single_threaded || !config_.notify_peer; }
  bool flush_locked() noexcept;  // publishes held-back sends; true when the peer wants a kick
  void push_free_tx(const TxSlot& slot) noexcept;
  TxSlot pop_free_tx() noexcept;

  /// Holds mutex_ for a scope, unless the device is single-threaded.
  class Guard {
   public:
    explicit Guard(const Device& d) noexcept
        : m_(d.locking_.load(std::memory_order_relaxed) ? &d.mutex_ : nullptr) {
      if (m_ != nullptr) m_->lock();
    }
    ~Guard() {
      if (m_ != nullptr) m_->unlock();
    }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    metal::Mutex* m_;
  };
  /// Releases a held mutex_ for a scope (to run a callback or sleep) and takes it again.
  class Unlocked {
   public:
    explicit Unlocked(const Device& d) noexcept
        : m_(d.locking_.load(std::memory_order_relaxed) ? &d.mutex_ : nullptr) {
      if (m_ != nullptr) m_->unlock();
    }
    ~Unlocked() {
      if (m_ != nullptr) m_->lock();
    }
    Unlocked(const Unlocked&) = delete;
    Unlocked& operator=(const Unlocked&) = delete;

   private:
    metal::Mutex* m_;
  };

  DeviceConfig config_{};
  const RoleOps* ops_ = nullptr;  // the started role's (set by its start)
  mutable metal::Mutex mutex_;
  std::atomic<bool> locking_{true};  // false when config_.single_threaded (set by start())
  metal::Condition tx_cv_;
  metal::Condition idle_cv_;
  std::uint32_t idle_waiters_ = 0;  // destroy() calls waiting on idle_cv_
  std::atomic<bool> running_{false};
  std::atomic<bool> stop_requested_{false};  // set by stop() before it takes the lock: process() yields
  bool ever_started_ = false;
  bool stopped_ = false;
  virtio::Fault fault_ = virtio::Fault::kNone;  // violations seen above the queues
  std::uint64_t features_ = 0;
  bool ns_ = false;
  bool event_idx_ = false;
  std::uint32_t payload_size_ = 0;

  // The started role's queues, one pair at a time (a role's start constructs its pair; the driver's until
  // the first start): the driver receives on queue 0 and sends on queue 1, the device the other way round.
  struct DriverQueues {
    virtio::DriverQueue rx;
    virtio::DriverQueue tx;
  };
  struct DeviceQueues {
    virtio::DeviceQueue tx;
    virtio::DeviceQueue rx;
  };
  union Queues {
    Queues() noexcept : driver() {}
    DriverQueues driver;
    DeviceQueues device;
  } queues_;
  std::uint32_t notify_rx_ = 0;  // notify id of the queue we receive on
  std::uint32_t notify_tx_ = 0;  // notify id of the queue we send on

  // Driver role buffers.
  metal::DeviceAddress rx_base_ = 0;
  metal::DeviceAddress tx_base_ = 0;
  std::uint32_t rx_count_ = 0;
  std::uint32_t tx_count_ = 0;
  std::uint32_t rx_size_ = 0;        // bytes per receive buffer
  std::uint32_t tx_size_ = 0;        // bytes per transmit buffer
  std::uint32_t tx_never_used_ = 0;  // buffers [tx_never_used_, tx_count_) were never handed out
  // Free tx buffers: driver role pool buffers given back unsent; device role ring heads taken but unsent.
  std::span<TxSlot> tx_free_{};
  std::uint32_t tx_free_head_ = 0;  // a queue: buffers are reused in the order they came back
  std::uint32_t tx_free_count_ = 0;
  std::uint32_t tx_waiters_ = 0;
  std::uint32_t unpublished_ = 0;     // sends held back by a single-threaded device
  std::uint32_t rx_unpublished_ = 0;  // receive buffers given back but not yet visible to the peer

  Endpoint* endpoints_ = nullptr;  // every endpoint, newest first
  // Endpoints by address, those that fit. Used through index_ops_ (null: no index, the list alone), so
  // that only an image that gives a Device an index links its code (device_index.cpp).
  struct IndexOps {
    Endpoint* (*find)(Device& d, std::uint32_t addr) noexcept;
    void (*add)(Device& d, Endpoint& ep) noexcept;     // after ep went on the list
    void (*remove)(Device& d, Endpoint& ep) noexcept;  // after ep left the list
  };
  static Endpoint* indexed_find(Device& d, std::uint32_t addr) noexcept;
  static void indexed_add(Device& d, Endpoint& ep) noexcept;
  static void indexed_remove(Device& d, Endpoint& ep) noexcept;
  AddressIndex index_;
  const IndexOps* index_ops_ = nullptr;
  std::uint32_t unindexed_ = 0;  // endpoints on the list only (with an index)
  NameServiceFn on_name_service_;
  struct PendingAnnouncement {
    char name[kNameSize];
    std::uint32_t addr;
  };
  PendingAnnouncement pending_ns_[kMaxPendingAnnouncements] = {};
  std::size_t pending_ns_count_ = 0;
  Stats stats_{};
  std::atomic<std::uint64_t> received_{0};  // Stats::rx_messages, readable without the lock
};

}  // namespace amp::rpmsg
