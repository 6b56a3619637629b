// SPDX-License-Identifier: BSD-3-Clause
#include "amp/rpmsg/device.hpp"

#include <cstring>

#include "amp/metal/log.hpp"
#include "amp/metal/platform.hpp"
#include "amp/metal/time.hpp"
#include "role.hpp"

namespace amp::rpmsg {

namespace {

/// The endpoint whose receive/unbind callback this thread is running, so that destroying it from inside
/// its own callback does not wait for itself.
AMP_THREAD_LOCAL const Endpoint* tls_in_callback = nullptr;
/// How often a send blocked inside a receive callback looks at the ring again.
constexpr std::uint64_t kCallbackRecheckNs = 1'000'000;

class CallbackScope {
 public:
  explicit CallbackScope(const Endpoint* ep) noexcept : saved_(tls_in_callback) { tls_in_callback = ep; }
  ~CallbackScope() { tls_in_callback = saved_; }
  CallbackScope(const CallbackScope&) = delete;
  CallbackScope& operator=(const CallbackScope&) = delete;

 private:
  const Endpoint* saved_;
};

/// A single-threaded device makes its sends visible at least every this many messages.
constexpr std::uint32_t kTxBurst = 16;

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Handles

RxBuffer& RxBuffer::operator=(RxBuffer&& o) noexcept {
  if (this != &o) {
    release();
    dev_ = o.dev_;
    head_ = o.head_;
    buf_ = o.buf_;
    len_ = o.len_;
    src_ = o.src_;
    payload_ = o.payload_;
    o.dev_ = nullptr;
  }
  return *this;
}

void RxBuffer::release() noexcept {
  if (dev_ == nullptr) return;
  Device* dev = dev_;
  dev_ = nullptr;
  dev->release_rx(head_, buf_, len_);
}

RxBuffer Message::hold() const noexcept {
  RxBuffer b;
  if (dev_ == nullptr || held_) return b;
  held_ = true;
  b.dev_ = dev_;
  b.head_ = head_;
  b.buf_ = buf_;
  b.len_ = len_;
  b.src_ = src;
  b.payload_ = payload;
  return b;
}

TxBuffer& TxBuffer::operator=(TxBuffer&& o) noexcept {
  if (this != &o) {
    reset();
    dev_ = o.dev_;
    id_ = o.id_;
    da_ = o.da_;
    buffer_ = o.buffer_;
    payload_ = o.payload_;
    o.dev_ = nullptr;
  }
  return *this;
}

void TxBuffer::reset() noexcept {
  if (dev_ == nullptr) return;
  dev_->return_tx(*this);
  dev_ = nullptr;
}

// ---------------------------------------------------------------------------------------------------------
// Endpoint

std::string_view Endpoint::name() const noexcept {
  return name_view(name_);
}

Status Endpoint::send(std::span<const std::byte> payload, std::uint64_t timeout_ns) noexcept {
  return send_to(remote_address(), payload, timeout_ns);
}

Status Endpoint::try_send(std::span<const std::byte> payload) noexcept {
  return send(payload, 0);
}

Status Endpoint::send_to(std::uint32_t dst, std::span<const std::byte> payload,
                         std::uint64_t timeout_ns) noexcept {
  return send_offchannel(addr_, dst, payload, timeout_ns);
}

Status Endpoint::send_offchannel(std::uint32_t src, std::uint32_t dst, std::span<const std::byte> payload,
                                 std::uint64_t timeout_ns) noexcept {
  if (dev_ == nullptr) return Status::kClosed;
  // A stopped device unbinds its endpoints: say that it stopped rather than that the peer is unknown.
  if (dst == kAddrAny) return dev_->running() ? Status::kNotFound : Status::kClosed;
  return dev_->send_copy(src, dst, payload, timeout_ns);
}

Result<TxBuffer> Endpoint::get_tx_buffer(std::uint64_t timeout_ns) noexcept {
  if (dev_ == nullptr) return fail(Status::kClosed);
  TxBuffer b;
  if (const Status s = dev_->acquire_tx(b, timeout_ns); !ok(s)) return fail(s);
  return b;
}

Status Endpoint::send_nocopy(TxBuffer& buffer, std::size_t len) noexcept {
  return send_nocopy_to(remote_address(), buffer, len);
}

Status Endpoint::send_nocopy_to(std::uint32_t dst, TxBuffer& buffer, std::size_t len) noexcept {
  if (dev_ == nullptr) return Status::kClosed;
  if (!buffer) return Status::kInvalidArgument;
  if (dst == kAddrAny) return dev_->running() ? Status::kNotFound : Status::kClosed;
  return dev_->send_buffer(buffer, addr_, dst, len);
}

void Endpoint::destroy() noexcept {
  if (dev_ != nullptr) dev_->destroy_endpoint(*this);
}

// ---------------------------------------------------------------------------------------------------------
// Device: set-up

Device::~Device() {
  Guard g(*this);
  for (Endpoint* ep = endpoints_; ep != nullptr;) {
    Endpoint* next = ep->next_;
    ep->dev_ = nullptr;
    ep->next_ = nullptr;
    ep = next;
  }
  endpoints_ = nullptr;
}

Status Device::start(const DeviceConfig& config, std::span<virtio::DriverQueue::Slot> slots,
                     std::span<TxSlot> tx_free, std::span<std::uint64_t> in_flight) noexcept {
  if (config.role == Role::kDevice) return start_device_role(config, tx_free, in_flight);
  return start_driver_role(config, slots, tx_free);
}

Status Device::start_role(const DeviceConfig& config, const RoleOps& ops,
                          std::span<virtio::DriverQueue::Slot> slots, std::span<TxSlot> tx_free,
                          std::span<std::uint64_t> in_flight) noexcept {
  if (running()) return Status::kBusy;
  if (config.role != ops.role) return Status::kInvalidArgument;
  if (config.transport == nullptr || config.notifier == nullptr) return Status::kInvalidArgument;
  const std::uint32_t rx_size = config.rx_buffer_size != 0 ? config.rx_buffer_size : config.buffer_size;
  const std::uint32_t tx_size = config.tx_buffer_size != 0 ? config.tx_buffer_size : config.buffer_size;
  for (std::uint32_t size : {rx_size, tx_size}) {
    if (!valid_buffer_size(size)) return Status::kInvalidArgument;
  }
  if (config.transport->device_id() != kVirtioIdRpmsg) {
    AMP_LOG_ERROR("rpmsg: the vdev is not an rpmsg device (id %u)",
                  static_cast<unsigned>(config.transport->device_id()));
    return Status::kMalformed;
  }
  if (config.transport->queue_count() < 2) return Status::kMalformed;
  {
    Guard g(*this);
    config_ = config;
    ops_ = &ops;
    locking_.store(!config.single_threaded, std::memory_order_relaxed);
    rx_size_ = rx_size;
    tx_size_ = tx_size;
    tx_free_ = tx_free;
    tx_free_head_ = tx_free_count_ = 0;
    // A stop() before the first start (the peer left while we set up) makes start fail; a device that ran
    // and was stopped may start again.
    if (!ever_started_ && stop_requested_.load(std::memory_order_relaxed)) return Status::kClosed;
    if (ever_started_) stop_requested_.store(false, std::memory_order_relaxed);
    stopped_ = false;
    fault_ = virtio::Fault::kNone;
    stats_ = Stats{};
    received_.store(0, std::memory_order_relaxed);
    Status s = ops.start(*this, slots, in_flight);
    if (!ok(s)) return s;
    ever_started_ = true;
    running_.store(true, std::memory_order_release);
  }
  // The driver's receive buffers are there: the device may send.
  if (config.role == Role::kDriver && config.notify_peer) kick(notify_rx_);
  announce_pending();
  return Status::kOk;
}

Status Device::setup_queue(std::uint32_t index, virtio::QueueConfig& qc, std::uint32_t& notify_id) noexcept {
  auto got = config_.transport->queue(index);
  if (!got) return got.error();
  const virtio::QueueInfo info = *got;  // a plain copy: one check of the Result, not one per use
  if (info.da == metal::kAnyAddress) {
    AMP_LOG_ERROR("rpmsg: vring %u has no address (allocation is the remoteproc layer's job)",
                  static_cast<unsigned>(index));
    return Status::kNotSupported;
  }
  auto computed = virtio::RingLayout::compute(info.num, info.align);
  if (!computed) {
    AMP_LOG_ERROR("rpmsg: vring %u: bad size %u or alignment %u", static_cast<unsigned>(index),
                  static_cast<unsigned>(info.num), static_cast<unsigned>(info.align));
    return Status::kMalformed;
  }
  const std::size_t ring_size = computed->size;
  auto offset = config_.shm.offset_of(info.da, ring_size);
  if (!offset) {
    AMP_LOG_ERROR("rpmsg: vring %u at 0x%llx (%zu bytes) is outside the shared memory",
                  static_cast<unsigned>(index), static_cast<unsigned long long>(info.da), ring_size);
    return Status::kOutOfRange;
  }
  qc.ring = *config_.shm.subregion(*offset, ring_size);
  qc.buffers = config_.shm;
  qc.num = info.num;
  qc.align = info.align;
  qc.event_idx = event_idx_;
  notify_id = info.notify_id;
  return Status::kOk;
}

void Device::set_name_service_handler(NameServiceFn fn) noexcept {
  Guard g(*this);
  on_name_service_ = static_cast<NameServiceFn&&>(fn);
  // Replay what arrived before there was a handler, oldest first.
  while (on_name_service_ && pending_ns_count_ != 0) {
    const PendingAnnouncement p = pending_ns_[0];
    drop_pending_locked(0);
    Unlocked u(*this);
    on_name_service_(*this, name_view(p.name), p.addr);
  }
}

Stats Device::stats() const noexcept {
  Guard g(*this);
  Stats s = stats_;
  s.rx_messages = received_.load(std::memory_order_relaxed);
  return s;
}

virtio::Fault Device::fault() const noexcept {
  Guard g(*this);
  if (fault_ != virtio::Fault::kNone) return fault_;
  if (ops_ == nullptr) return virtio::Fault::kNone;  // never started
  const bool driver = ops_->role == Role::kDriver;
  for (virtio::Fault f : {driver ? queues_.driver.rx.fault() : queues_.device.rx.fault(),
                          driver ? queues_.driver.tx.fault() : queues_.device.tx.fault()}) {
    if (f != virtio::Fault::kNone) return f;
  }
  return virtio::Fault::kNone;
}

void Device::kick(std::uint32_t notify_id) noexcept {
  if (const Status s = config_.notifier->notify(notify_id); !ok(s)) {
    AMP_LOG_WARNING("rpmsg: notifying the peer failed: %s", log_name(s));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Receiving

bool Device::tx_kick_needed_locked() noexcept {
  if (!config_.notify_peer) return false;
  return ops_->tx_kick_needed(*this);
}

bool Device::flush_locked() noexcept {
  if (unpublished_ == 0) return false;
  unpublished_ = 0;
  ops_->publish_tx(*this);
  return tx_kick_needed_locked();
}

void Device::flush() noexcept {
  bool kick_now = false;
  {
    Guard g(*this);
    if (!running()) return;
    kick_now = flush_locked();
  }
  if (kick_now) kick(notify_tx_);
}

Status Device::process(bool rearm) noexcept {
  for (;;) {
    bool more = false;
    const Status s = process_batch(rearm, more);
    if (!more) return s;
    if (config_.reschedule != nullptr) {
      // Let the caller's loop serve what else waits, and come back.
      const Status r = config_.reschedule->notify(notify_rx_);
      if (ok(r)) return s;
      AMP_LOG_WARNING("rpmsg: asking to be processed again failed (%s); going on here", log_name(r));
    }
    // No one to ask (or asking failed): go on here, the lock released in between (senders and stop() had
    // their turn).
  }
}

Status Device::process_batch(bool rearm, bool& more) noexcept {
  Status s;
  bool kick_rx = false;
  bool kick_tx = false;
  {
    Guard g(*this);
    if (stopped_ || stop_requested_.load(std::memory_order_relaxed)) return Status::kClosed;
    if (!running()) return Status::kOk;  // not started yet: nothing to look at
    if (fault_ != virtio::Fault::kNone) return Status::kBroken;
    kick_tx = flush_locked();  // sends made since the last call (single-threaded bursts)
    rearm = rearm && config_.notify_peer;
    const std::uint32_t budget = config_.process_budget != 0   ? config_.process_budget
                                 : ops_->role == Role::kDriver ? queues_.driver.rx.size()
                                                               : queues_.device.rx.size();
    s = ops_->drain(*this, rearm, budget, more);
    publish_rx_locked();
    kick_rx = rx_kick_needed_locked();
    kick_tx = flush_locked() || kick_tx;  // and those the callbacks just made
    // Buffers may have come back on the transmit queue: let blocked senders look.
    if (tx_waiters_ != 0) tx_cv_.notify_all();
  }
  if (kick_rx) kick(notify_rx_);
  if (kick_tx) kick(notify_tx_);
  more = more && ok(s);
  return s;
}

void Device::deliver(std::byte* buf, std::uint32_t buf_len, std::uint32_t filled,
                     std::uint16_t head) noexcept {
  // One writer at a time (under the device lock, or the single thread): a plain store, no locked
  // instruction on the receive path; rx_count() and stats() read it.
  received_.store(received_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (filled < kHeaderSize) {
    ++stats_.rx_malformed;
    AMP_LOG_WARNING("rpmsg: dropped a %u-byte message, shorter than its header",
                    static_cast<unsigned>(filled));
    give_back_rx(head, buf, buf_len);
    return;
  }
  std::byte raw[kHeaderSize];
  std::memcpy(raw, buf, kHeaderSize);  // read the peer's header once
  const Header h = decode_header(raw);
  if (h.len > filled - kHeaderSize) {
    ++stats_.rx_malformed;
    AMP_LOG_WARNING("rpmsg: dropped a message whose header claims %u bytes in a %u-byte buffer",
                    static_cast<unsigned>(h.len), static_cast<unsigned>(filled));
    give_back_rx(head, buf, buf_len);
    return;
  }
  const std::span<const std::byte> payload(buf + kHeaderSize, h.len);
  if (h.dst == kNsAddress && ns_) {
    std::byte ns[kNsMessageSize];
    if (payload.size() != sizeof ns) {
      ++stats_.rx_malformed;
      AMP_LOG_WARNING("rpmsg: dropped a %zu-byte name-service message", payload.size());
    } else {
      std::memcpy(ns, payload.data(), sizeof ns);
      handle_ns(ns);
    }
    give_back_rx(head, buf, buf_len);
    return;
  }
  Endpoint* ep = find_locked(h.dst);
  if (ep == nullptr) {
    ++stats_.rx_unroutable;
    AMP_LOG_DEBUG("rpmsg: no endpoint at address %u (from %u)", static_cast<unsigned>(h.dst),
                  static_cast<unsigned>(h.src));
    give_back_rx(head, buf, buf_len);
    return;
  }
  // Implicit binding: an endpoint created without a peer address answers whoever writes first.
  if (ep->remote_.load(std::memory_order_relaxed) == kAddrAny) {
    std::uint32_t expected = kAddrAny;
    ep->remote_.compare_exchange_strong(expected, h.src, std::memory_order_acq_rel);
  }
  ++ep->busy_;
  Message m;
  m.src = h.src;
  m.dst = h.dst;
  m.payload = payload;
  m.dev_ = this;
  m.head_ = head;
  m.buf_ = buf;
  m.len_ = buf_len;
  {
    Unlocked u(*this);
    CallbackScope scope(ep);
    if (ep->on_receive_) ep->on_receive_(*ep, m);
  }
  release_endpoint_locked(*ep);
  if (!m.held_) give_back_rx(head, buf, buf_len);
}

void Device::handle_ns(std::span<const std::byte> bytes) noexcept {
  auto decoded = decode_ns(bytes);
  if (!decoded) {
    ++stats_.rx_malformed;
    AMP_LOG_WARNING("rpmsg: dropped a malformed name-service message");
    return;
  }
  const NsMessage& m = *decoded;  // one check of the Result, not one per use
  const std::string_view name = m.name_view();
  if (m.flags == kNsCreate) {
    for (Endpoint* ep = endpoints_; ep != nullptr; ep = ep->next_) {
      if (ep->name() != name) continue;
      const std::uint32_t remote = ep->remote_address();
      if (remote == kAddrAny) {
        ep->remote_.store(m.addr, std::memory_order_release);
        return;
      }
      if (remote == m.addr) return;  // already bound to it
    }
    if (on_name_service_) {
      Unlocked u(*this);
      on_name_service_(*this, name, m.addr);
      return;
    }
    // No handler yet: keep it for the one that comes.
    if (pending_ns_count_ == kMaxPendingAnnouncements) {
      AMP_LOG_WARNING("rpmsg: too many unhandled announcements; forgetting '%s'", pending_ns_[0].name);
      drop_pending_locked(0);
    }
    PendingAnnouncement& p = pending_ns_[pending_ns_count_++];
    std::memcpy(p.name, m.name, kNameSize);
    p.addr = m.addr;
    return;
  }
  // Destroy: forget a pending announcement of it...
  for (std::size_t i = 0; i < pending_ns_count_;) {
    if (pending_ns_[i].addr == m.addr) {
      drop_pending_locked(i);
    } else {
      ++i;
    }
  }
  // ...and unbind every endpoint of ours bound to it (several may be: a broker's clients). The list may
  // change while an unbind callback runs, so look again from the head each time; an unbound endpoint no
  // longer matches.
  // (At most as many as there were: a callback that binds a new one to it does not keep this going.)
  std::size_t bound = 0;
  for (Endpoint* ep = endpoints_; ep != nullptr; ep = ep->next_) ++bound;
  std::size_t unbound = 0;
  for (Endpoint* ep = endpoints_; ep != nullptr && unbound < bound;) {
    if (ep->remote_address() != m.addr || (!name.empty() && ep->name() != name)) {
      ep = ep->next_;
      continue;
    }
    unbind_locked(*ep);
    ++unbound;
    ep = endpoints_;
  }
  if (unbound != 0) return;
  // Nothing to undo (Linux says "rpmsg_destroy_channel failed" in this case): not an error of the wire.
  AMP_LOG_INFO("rpmsg: the peer withdrew '%.*s' at %u, which nothing here is bound to",
               static_cast<int>(name.size()), name.data(), static_cast<unsigned>(m.addr));
}

void Device::drop_pending_locked(std::size_t i) noexcept {
  // One copy for the three callers (the entries are trivially copyable).
  std::memmove(&pending_ns_[i], &pending_ns_[i + 1], (pending_ns_count_ - i - 1) * sizeof pending_ns_[0]);
  --pending_ns_count_;
}

void Device::unbind_locked(Endpoint& ep) noexcept {
  ep.remote_.store(kAddrAny, std::memory_order_release);
  ++ep.busy_;
  {
    Unlocked u(*this);
    CallbackScope scope(&ep);
    if (ep.on_unbind_) ep.on_unbind_(ep);
  }
  release_endpoint_locked(ep);
}

void Device::give_back_rx(std::uint16_t head, std::byte* buf, std::uint32_t len) noexcept {
  if (stopped_) return;
  // Returned buffers become visible in bursts: every kTxBurst, and at the end of each process() (or at
  // once, for a buffer released outside it; see release_rx).
  const bool now = ++rx_unpublished_ >= kTxBurst;
  ops_->push_rx(*this, head, buf, len, now);
  if (now) rx_unpublished_ = 0;
}

bool Device::rx_kick_needed_locked() noexcept {
  // The queue knows whether anything went back since the last kick (and skips the fence when nothing did).
  if (!config_.notify_peer) return false;
  return ops_->rx_kick_needed(*this);
}

void Device::publish_rx_locked() noexcept {
  if (rx_unpublished_ == 0) return;
  rx_unpublished_ = 0;
  ops_->publish_rx(*this);
}

void Device::release_rx(std::uint16_t head, std::byte* buf, std::uint32_t len) noexcept {
  bool kick_now = false;
  {
    Guard g(*this);
    give_back_rx(head, buf, len);
    publish_rx_locked();
    kick_now = rx_kick_needed_locked();
  }
  if (kick_now) kick(notify_rx_);
}

// ---------------------------------------------------------------------------------------------------------
// Sending

bool Device::try_acquire_tx_locked(TxBuffer& out, Status& error) noexcept {
  TxSlot slot;
  if (tx_free_count_ != 0) {
    slot = pop_free_tx();
  } else if (!ops_->take_tx(*this, slot, error)) {
    return false;
  }
  out.dev_ = this;
  out.id_ = slot.id;
  out.da_ = slot.da;
  out.buffer_ = std::span<std::byte>(slot.data, slot.len);
  out.payload_ = out.buffer_.subspan(kHeaderSize);
  return true;
}

void Device::push_free_tx(const TxSlot& slot) noexcept {
  std::size_t at = tx_free_head_ + tx_free_count_;
  if (at >= tx_free_.size()) at -= tx_free_.size();
  tx_free_[at] = slot;
  ++tx_free_count_;
}

TxSlot Device::pop_free_tx() noexcept {
  const TxSlot slot = tx_free_[tx_free_head_];
  if (++tx_free_head_ == tx_free_.size()) tx_free_head_ = 0;
  --tx_free_count_;
  return slot;
}

bool Device::set_tx_waiting_locked(bool waiting) noexcept {
  if (!config_.notify_peer) return false;  // the peer polls; nobody will be asked to kick
  return ops_->set_tx_waiting(*this, waiting);
}

Status Device::acquire_tx(TxBuffer& out, std::uint64_t timeout_ns) noexcept {
  const std::uint64_t deadline = timeout_ns == kForever ? kForever : metal::deadline_after(timeout_ns);
  Guard g(*this);
  for (;;) {
    if (stopped_ || !running()) return Status::kClosed;
    if (fault_ != virtio::Fault::kNone) return Status::kBroken;
    Status error = Status::kOk;
    if (try_acquire_tx_locked(out, error)) return Status::kOk;
    if (!ok(error)) return error;
    // Out of buffers: anything held back must reach the peer, or it could never return them.
    if (flush_locked()) {
      Unlocked u(*this);
      kick(notify_tx_);
    }
    if (timeout_ns == 0) return Status::kWouldBlock;
    if (deadline != kForever && metal::monotonic_ns() >= deadline) return Status::kTimeout;
    if (config_.wait_mode == WaitMode::kSpin ||
        !locking_.load(std::memory_order_relaxed)) {  // single-threaded: nobody else could wake us
      Unlocked u(*this);
      metal::cpu_relax();
      continue;
    }
    if (tx_waiters_ == 0 && set_tx_waiting_locked(true)) {
      // Buffers came back while the peer's kicks were off: no kick will announce them, so look again.
      (void)set_tx_waiting_locked(false);
      continue;
    }
    ++tx_waiters_;
    if (tls_in_callback != nullptr) {
      // Sending from a receive callback: this is most likely the thread that runs process(), so nobody
      // would wake us. Look at the ring again every millisecond instead (try_acquire reads it).
      const std::uint64_t soon = metal::deadline_after(kCallbackRecheckNs);
      (void)tx_cv_.wait_until(mutex_, deadline < soon ? deadline : soon);
    } else if (deadline == kForever) {
      tx_cv_.wait(mutex_);
    } else {
      (void)tx_cv_.wait_until(mutex_, deadline);
    }
    if (--tx_waiters_ == 0) (void)set_tx_waiting_locked(false);
  }
}

void Device::return_tx(TxBuffer& buffer) noexcept {
  Guard g(*this);
  return_tx_locked(buffer);
}

void Device::return_tx_locked(TxBuffer& buffer) noexcept {
  buffer.dev_ = nullptr;
  if (tx_free_count_ < tx_free_.size()) {
    push_free_tx(TxSlot{buffer.id_, static_cast<std::uint32_t>(buffer.buffer_.size()), buffer.buffer_.data(),
                        buffer.da_});
    if (tx_waiters_ != 0) tx_cv_.notify_one();
  }
}

Status Device::publish_locked(TxBuffer& buffer, std::uint32_t src, std::uint32_t dst, std::size_t len,
                              bool& kick) noexcept {
  if (stopped_ || !running()) return Status::kClosed;
  const Header h{src, dst, 0, static_cast<std::uint16_t>(len), 0};
  std::byte raw[kHeaderSize];
  encode(h, raw);
  std::memcpy(buffer.buffer_.data(), raw, kHeaderSize);
  const auto total = static_cast<std::uint32_t>(kHeaderSize + len);
  // A single-threaded device publishes its sends in bursts (see flush()); the others at once.
  const bool now = !defers_publication() || ++unpublished_ >= kTxBurst;
  AMP_RETURN_IF_ERROR(
      ops_->push_tx(*this, TxSlot{buffer.id_, total, buffer.buffer_.data(), buffer.da_}, total, now));
  if (now) {
    unpublished_ = 0;
    kick = tx_kick_needed_locked();
  }
  ++stats_.tx_messages;
  buffer.dev_ = nullptr;  // consumed
  return Status::kOk;
}

Status Device::send_buffer(TxBuffer& buffer, std::uint32_t src, std::uint32_t dst, std::size_t len) noexcept {
  if (buffer.dev_ != this) return Status::kInvalidArgument;
  if (len > buffer.payload_.size()) return Status::kTooLarge;
  bool kick_now = false;
  {
    Guard g(*this);
    AMP_RETURN_IF_ERROR(publish_locked(buffer, src, dst, len, kick_now));
  }
  if (kick_now) kick(notify_tx_);
  return Status::kOk;
}

Status Device::send_copy(std::uint32_t src, std::uint32_t dst, std::span<const std::byte> payload,
                         std::uint64_t timeout_ns) noexcept {
  if (payload.size() > payload_size_) return Status::kTooLarge;
  // Fast path: a buffer is free now; take, fill and publish it under one lock (payloads are small).
  {
    bool kick_now = false;
    Status result = Status::kOk;
    {
      Guard g(*this);
      if (stopped_ || !running()) return Status::kClosed;
      if (fault_ != virtio::Fault::kNone) return Status::kBroken;
      TxBuffer fast;
      Status error = Status::kOk;
      if (!try_acquire_tx_locked(fast, error)) {
        if (!ok(error)) return error;
        result = Status::kWouldBlock;  // none free: take the waiting path below
        kick_now = flush_locked();     // and let the peer see what is held back, so it can return buffers
      } else if (payload.size() > fast.payload_.size()) {
        return_tx_locked(fast);  // a smaller buffer from the driver
        return Status::kTooLarge;
      } else {
        // memmove: the payload may be a received buffer the peer also offered for sending (they overlap).
        if (!payload.empty()) std::memmove(fast.payload_.data(), payload.data(), payload.size());
        result = publish_locked(fast, src, dst, payload.size(), kick_now);
        if (!ok(result)) return_tx_locked(fast);
      }
    }
    if (kick_now) kick(notify_tx_);
    if (result != Status::kWouldBlock) return result;
    if (timeout_ns == 0) return Status::kWouldBlock;
  }
  TxBuffer b;
  AMP_RETURN_IF_ERROR(acquire_tx(b, timeout_ns));
  if (payload.size() > b.payload_.size()) return Status::kTooLarge;  // a smaller buffer from the driver
  if (!payload.empty()) std::memmove(b.payload_.data(), payload.data(), payload.size());
  return send_buffer(b, src, dst, payload.size());
}

// ---------------------------------------------------------------------------------------------------------
// Endpoints

void Device::release_endpoint_locked(Endpoint& ep) noexcept {
  --ep.busy_;
  // Only a destroy() waits for this; do not pay for a notification on every message otherwise.
  if (idle_waiters_ != 0) idle_cv_.notify_all();
}

Endpoint* Device::find_locked(std::uint32_t addr) noexcept {
  if (index_ops_ != nullptr) return index_ops_->find(*this, addr);
  for (Endpoint* ep = endpoints_; ep != nullptr; ep = ep->next_) {
    if (ep->addr_ == addr) return ep;
  }
  return nullptr;
}

Status Device::create_endpoint(Endpoint& ep, std::string_view name, std::uint32_t local, std::uint32_t remote,
                               Endpoint::ReceiveFn on_receive, Endpoint::UnbindFn on_unbind) noexcept {
  if (ep.dev_ != nullptr) return Status::kBusy;
  if (name.size() >= kNameSize) return Status::kInvalidArgument;
  bool do_announce = false;
  {
    Guard g(*this);
    if (local == kAddrAny) {
      // From kFirstDynamicAddress, config_.dynamic_addresses of them, below kAddrAny (32-bit arithmetic).
      const std::uint32_t room = kAddrAny - kFirstDynamicAddress;
      const std::uint32_t count = config_.dynamic_addresses < room ? config_.dynamic_addresses : room;
      for (std::uint32_t i = 0; i < count; ++i) {
        if (find_locked(kFirstDynamicAddress + i) == nullptr) {
          local = kFirstDynamicAddress + i;
          break;
        }
      }
      if (local == kAddrAny) return Status::kNoMemory;
    } else if (local == kNsAddress || find_locked(local) != nullptr) {
      return Status::kAlreadyExists;
    }
    ep.addr_ = local;
    ep.remote_.store(remote, std::memory_order_release);
    std::memset(ep.name_, 0, sizeof ep.name_);
    if (!name.empty()) std::memcpy(ep.name_, name.data(), name.size());
    ep.on_receive_ = static_cast<Endpoint::ReceiveFn&&>(on_receive);
    ep.on_unbind_ = static_cast<Endpoint::UnbindFn&&>(on_unbind);
    ep.busy_ = 0;
    ep.stop_notified_ = false;
    link_locked(ep);
    ep.dev_ = this;
    do_announce = running() && ns_ && !name.empty() && remote == kAddrAny;
    ep.announced_ = do_announce;
  }
  if (do_announce) {
    if (const Status s = announce(ep, kNsCreate, config_.announce_timeout_ns); !ok(s)) {
      ep.announced_ = false;
      destroy_endpoint(ep);
      return s;
    }
  }
  return Status::kOk;
}

void Device::announce_pending() noexcept {
  for (;;) {
    Endpoint* todo = nullptr;
    {
      Guard g(*this);
      if (!ns_ || !running()) return;
      for (Endpoint* ep = endpoints_; ep != nullptr; ep = ep->next_) {
        if (!ep->announced_ && ep->name_[0] != '\0' && ep->remote_address() == kAddrAny) {
          ep->announced_ = true;
          todo = ep;
          break;
        }
      }
    }
    if (todo == nullptr) return;
    if (const Status s = announce(*todo, kNsCreate, config_.announce_timeout_ns); !ok(s)) {
      AMP_LOG_WARNING("rpmsg: announcing '%s' failed: %s", todo->name_, log_name(s));
    }
  }
}

Status Device::announce(Endpoint& ep, std::uint32_t flags, std::uint64_t timeout_ns) noexcept {
  std::byte msg[kNsMessageSize];
  AMP_RETURN_IF_ERROR(encode_ns(ep.name(), ep.addr_, flags, msg));
  return send_copy(ep.addr_, kNsAddress, msg, timeout_ns);
}

void Device::link_locked(Endpoint& ep) noexcept {
  ep.next_ = endpoints_;
  endpoints_ = &ep;
  if (index_ops_ != nullptr) index_ops_->add(*this, ep);
}

void Device::unlink_locked(Endpoint& ep) noexcept {
  for (Endpoint** p = &endpoints_; *p != nullptr; p = &(*p)->next_) {
    if (*p == &ep) {
      *p = ep.next_;
      break;
    }
  }
  ep.next_ = nullptr;
  if (index_ops_ != nullptr) index_ops_->remove(*this, ep);
}

void Device::destroy_endpoint(Endpoint& ep) noexcept {
  if (ep.announced_ && running()) {
    // Best effort: tell the peer, without waiting long for a buffer (an eighth of the announce timeout: a
    // shift, where a 64-bit division is a libgcc call on 32-bit cores).
    (void)announce(ep, kNsDestroy, config_.announce_timeout_ns >> 3);
  }
  Guard g(*this);
  if (ep.dev_ != this) return;
  unlink_locked(ep);
  // Wait for callbacks on other threads to finish (one running on this thread is the caller itself).
  const std::uint32_t own = tls_in_callback == &ep ? 1 : 0;
  ++idle_waiters_;
  while (ep.busy_ > own) idle_cv_.wait(mutex_);
  --idle_waiters_;
  ep.dev_ = nullptr;
  ep.announced_ = false;
  ep.remote_.store(kAddrAny, std::memory_order_release);
}

void Device::stop() noexcept {
  stop_requested_.store(true, std::memory_order_relaxed);  // a process() holding the lock lets go soon
  Guard g(*this);
  if (stopped_) return;
  stopped_ = true;
  running_.store(false, std::memory_order_release);
  tx_cv_.notify_all();
  // Every endpoint learns that the peer is gone; the list may change while a callback runs, so restart
  // from the head each time.
  for (;;) {
    Endpoint* ep = endpoints_;
    while (ep != nullptr && ep->stop_notified_) ep = ep->next_;
    if (ep == nullptr) break;
    ep->stop_notified_ = true;
    unbind_locked(*ep);
  }
}

}  // namespace amp::rpmsg
