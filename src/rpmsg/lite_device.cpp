// SPDX-License-Identifier: BSD-3-Clause
#include "amp/rpmsg/lite_device.hpp"

#include <cstring>

#include "amp/metal/log.hpp"
#include "amp/metal/platform.hpp"
#include "amp/metal/time.hpp"

namespace amp::rpmsg {

namespace {

constexpr std::uint64_t kFeatureNsBit = std::uint64_t{1} << kFeatureNs;
constexpr std::uint64_t kFeatureEventIdxBit = std::uint64_t{1} << virtio::kFeatureEventIdx;
constexpr std::uint64_t kFeatureBufferSizesBit = std::uint64_t{1} << kFeatureBufferSizes;

}  // namespace

std::string_view LiteEndpoint::name() const noexcept {
  return name_view(name_);
}

Status LiteEndpoint::send_to(std::uint32_t dst, std::span<const std::byte> payload,
                             std::uint64_t timeout_ns) noexcept {
  if (dev_ == nullptr) return Status::kClosed;
  return dev_->send(addr_, dst, payload, timeout_ns);
}

void LiteEndpoint::destroy() noexcept {
  LiteDevice* d = dev_;
  if (d == nullptr) return;
  // Best effort, without waiting: a remote that is leaving should not hang on a host that gives no buffer.
  if (service_ && d->running_) (void)d->announce(*this, kNsDestroy, 0);
  d->unlink(*this);
}

LiteDevice::~LiteDevice() {
  while (endpoints_ != nullptr) unlink(*endpoints_);
}

Status LiteDevice::start(const LiteConfig& config, std::span<std::uint64_t> in_flight) noexcept {
  if (running_) return Status::kBusy;
  const virtio::RscVdev* t = config.vdev;
  if (t == nullptr || config.buffer_size <= kHeaderSize || config.buffer_size > kHeaderSize + 0xFFFF) {
    return Status::kInvalidArgument;
  }
  if (t->device_id() != kVirtioIdRpmsg || t->queue_count() < 2) return Status::kMalformed;
  if ((t->status() & virtio::kStatusDriverOk) == 0) return Status::kWouldBlock;
  config_ = config;
  const std::uint64_t agreed = t->driver_features() & t->device_features();
  ns_ = (agreed & kFeatureNsBit) != 0;
  event_idx_ = (agreed & kFeatureEventIdxBit) != 0;
  if ((agreed & kFeatureBufferSizesBit) != 0) {
    // The sizes the table declares, as the host read them (shared memory: read once, checked).
    std::byte raw[kBufferSizesConfigSize];
    auto sizes =
        ok(t->read_config(0, raw)) ? decode_buffer_sizes(raw) : Result<BufferSizes>(fail(Status::kNotFound));
    if (!sizes) return Status::kMalformed;
    config_.buffer_size = sizes->tx;  // what a send may fill: the host's receive buffers
  }
  const std::size_t half = in_flight.size() / 2;
  AMP_RETURN_IF_ERROR(setup_queue(0, tx_, in_flight.first(half), notify_tx_));
  AMP_RETURN_IF_ERROR(setup_queue(1, rx_, in_flight.subspan(half), notify_rx_));
  // Empty buffers need no kick: a send that finds none looks at the ring again until its deadline.
  tx_.disable_notifications();
  if (config.notifier == nullptr) rx_.disable_notifications();
  spare_ = nullptr;
  fault_ = virtio::Fault::kNone;
  stats_ = Stats{};
  running_ = true;
  for (LiteEndpoint* ep = endpoints_; ep != nullptr; ep = ep->next_) {
    if (!ep->service_ || !ns_) continue;
    if (const Status s = announce(*ep, kNsCreate, config_.announce_timeout_ns); !ok(s)) {
      AMP_LOG_WARNING("rpmsg: announcing '%s' failed: %s", ep->name_, log_name(s));
    }
  }
  return Status::kOk;
}

Status LiteDevice::setup_queue(std::uint32_t index, virtio::DeviceQueue& q,
                               std::span<std::uint64_t> in_flight, std::uint32_t& notify_id) noexcept {
  auto got = config_.vdev->queue(index);
  if (!got) return got.error();
  const virtio::QueueInfo info = *got;  // read once
  auto layout = virtio::RingLayout::compute(info.num, info.align);
  if (!layout) return Status::kMalformed;
  if (in_flight.size() < virtio::DeviceQueue::in_flight_words(info.num)) {
    AMP_LOG_ERROR("rpmsg: vring %u has %u entries, more than the storage holds", static_cast<unsigned>(index),
                  static_cast<unsigned>(info.num));
    return Status::kNoMemory;
  }
  auto offset = config_.shm.offset_of(info.da, layout->size);
  if (!offset) {
    AMP_LOG_ERROR("rpmsg: vring %u at 0x%llx is outside the shared memory", static_cast<unsigned>(index),
                  static_cast<unsigned long long>(info.da));
    return Status::kOutOfRange;
  }
  virtio::QueueConfig qc;
  qc.ring = *config_.shm.subregion(*offset, layout->size);
  qc.buffers = config_.shm;
  qc.num = info.num;
  qc.align = info.align;
  qc.event_idx = event_idx_;
  notify_id = info.notify_id;
  return q.init(qc, in_flight);
}

virtio::Fault LiteDevice::fault() const noexcept {
  if (fault_ != virtio::Fault::kNone) return fault_;
  return rx_.fault() != virtio::Fault::kNone ? rx_.fault() : tx_.fault();
}

// ---------------------------------------------------------------------------------------------------------
// Receiving

Status LiteDevice::process() noexcept {
  if (!running_) return Status::kClosed;
  if (fault() != virtio::Fault::kNone) return Status::kBroken;
  in_process_ = true;
  Status s = Status::kOk;
  // Bounded by the ring: until publish() the host gets no buffer back to offer again, and the queue refuses
  // an index that runs ahead or a head it still holds.
  for (;;) {
    std::uint16_t head = 0;
    virtio::Buffer b;
    auto r = rx_.pop_buffer(head, b);
    if (!r) {
      s = r.error();
      break;
    }
    if (!*r) {
      // Drained: ask for a kick for the next one, unless one came meanwhile (then go on).
      if (config_.notifier == nullptr || !rx_.enable_notifications()) break;
      rx_.disable_notifications();
      continue;
    }
    if (b.device_writable) {
      fault_ = virtio::Fault::kBadBuffer;
      AMP_LOG_ERROR("rpmsg: the host sent a device-writable buffer as a message");
      s = Status::kBroken;
      break;
    }
    deliver(b);
    // The buffer goes back with its full length, as OpenAMP's remotes do (OpenAMP's driver takes the used
    // length as the buffer's size; Linux ignores it). A fault sticks in the queue.
    (void)rx_.push_used(head, b.len, false);
    if (!running_) break;  // a callback stopped the device
  }
  in_process_ = false;
  publish(tx_, notify_tx_);
  publish(rx_, notify_rx_);
  return s;
}

void LiteDevice::publish(virtio::DeviceQueue& q, std::uint32_t notify_id) noexcept {
  q.publish();
  if (config_.notifier != nullptr && q.notify_needed()) (void)config_.notifier->notify(notify_id);
}

void LiteDevice::deliver(const virtio::Buffer& b) noexcept {
  ++stats_.rx_messages;
  Header h{};
  if (b.len >= kHeaderSize) {
    std::byte raw[kHeaderSize];
    std::memcpy(raw, b.data, kHeaderSize);  // the host's header, read once
    h = decode_header(raw);
  }
  if (b.len < kHeaderSize || h.len > b.len - kHeaderSize ||
      (h.dst == kNsAddress && ns_ && h.len != kNsMessageSize)) {
    ++stats_.rx_malformed;
    AMP_LOG_WARNING("rpmsg: dropped a malformed message (%u bytes in a %u-byte buffer)",
                    static_cast<unsigned>(h.len), static_cast<unsigned>(b.len));
    return;
  }
  const std::span<const std::byte> payload(b.data + kHeaderSize, h.len);
  if (h.dst == kNsAddress && ns_) {
    std::byte ns[kNsMessageSize];
    std::memcpy(ns, payload.data(), sizeof ns);
    handle_ns(ns);
    return;
  }
  LiteEndpoint* ep = find(h.dst);
  if (ep == nullptr) {
    ++stats_.rx_unroutable;
    AMP_LOG_DEBUG("rpmsg: no endpoint at %u", static_cast<unsigned>(h.dst));
    return;
  }
  if (ep->remote_ == kAddrAny) ep->remote_ = h.src;  // implicit binding: whoever writes first
  if (ep->on_receive_) ep->on_receive_(*ep, LiteMessage{h.src, h.dst, payload});
}

void LiteDevice::handle_ns(std::span<const std::byte> bytes) noexcept {
  auto decoded = decode_ns(bytes);
  if (!decoded) {
    ++stats_.rx_malformed;
    AMP_LOG_WARNING("rpmsg: dropped a malformed name-service message");
    return;
  }
  const NsMessage& m = *decoded;
  const std::string_view name = m.name_view();
  for (LiteEndpoint* ep = endpoints_; ep != nullptr; ep = ep->next_) {
    if (ep->name() != name) continue;
    // An announcement binds an unbound endpoint of its name; a withdrawal unbinds the one bound to it.
    if (m.flags == kNsCreate && ep->remote_ == kAddrAny) {
      ep->remote_ = m.addr;
      return;
    }
    if (m.flags == kNsDestroy && ep->remote_ == m.addr) {
      ep->remote_ = kAddrAny;
      return;
    }
  }
  AMP_LOG_INFO("rpmsg: the host's %s of '%.*s' at %u matches no endpoint",
               m.flags == kNsCreate ? "announcement" : "withdrawal", static_cast<int>(name.size()),
               name.data(), static_cast<unsigned>(m.addr));
}

// ---------------------------------------------------------------------------------------------------------
// Sending

Status LiteDevice::take_tx(virtio::Buffer& b, std::uint16_t& head) noexcept {
  if (spare_ != nullptr) {
    b.data = spare_;
    b.len = spare_len_;
    head = spare_head_;
    spare_ = nullptr;
    return Status::kOk;
  }
  auto r = tx_.pop_buffer(head, b);
  if (!r) return r.error();
  if (!*r) return Status::kWouldBlock;
  if (!b.device_writable || b.len <= kHeaderSize) {
    fault_ = virtio::Fault::kBadBuffer;
    AMP_LOG_ERROR("rpmsg: the host offered a %u-byte %s buffer for messages", static_cast<unsigned>(b.len),
                  b.device_writable ? "writable" : "read-only");
    return Status::kBroken;
  }
  return Status::kOk;
}

Status LiteDevice::send(std::uint32_t src, std::uint32_t dst, std::span<const std::byte> payload,
                        std::uint64_t timeout_ns) noexcept {
  if (!running_) return Status::kClosed;
  if (fault() != virtio::Fault::kNone) return Status::kBroken;
  if (dst == kAddrAny) return Status::kNotFound;
  if (payload.size() > payload_size()) return Status::kTooLarge;
  virtio::Buffer b;
  std::uint16_t head = 0;
  Status s = take_tx(b, head);
  if (s == Status::kWouldBlock && timeout_ns != 0) {
    // The messages this side holds back are what the host needs before it gives their buffers again. (The
    // receive queue's stay back: what process() takes is bounded by the ring.)
    publish(tx_, notify_tx_);
    const std::uint64_t deadline = metal::deadline_after(timeout_ns);
    while ((s = take_tx(b, head)) == Status::kWouldBlock) {
      if (metal::monotonic_ns() >= deadline) return Status::kTimeout;
      metal::cpu_relax();
    }
  }
  if (!ok(s)) return s;
  if (payload.size() > b.len - kHeaderSize) {
    // A host with smaller buffers than it said: keep this one for a smaller message.
    spare_ = b.data;
    spare_len_ = b.len;
    spare_head_ = head;
    return Status::kTooLarge;
  }
  std::byte raw[kHeaderSize];
  encode(Header{src, dst, 0, static_cast<std::uint16_t>(payload.size()), 0}, raw);
  std::memcpy(b.data, raw, kHeaderSize);
  // memmove: a hostile host may have offered a received buffer for sending too (they overlap).
  if (!payload.empty()) std::memmove(b.data + kHeaderSize, payload.data(), payload.size());
  AMP_RETURN_IF_ERROR(tx_.push_used(head, static_cast<std::uint32_t>(kHeaderSize + payload.size()), false));
  ++stats_.tx_messages;
  if (!in_process_) publish(tx_, notify_tx_);
  return Status::kOk;
}

Status LiteDevice::announce(const LiteEndpoint& ep, std::uint32_t flags, std::uint64_t timeout_ns) noexcept {
  std::byte msg[kNsMessageSize];
  AMP_RETURN_IF_ERROR(encode_ns(ep.name(), ep.addr_, flags, msg));
  return send(ep.addr_, kNsAddress, msg, timeout_ns);
}

// ---------------------------------------------------------------------------------------------------------
// Endpoints

LiteEndpoint* LiteDevice::find(std::uint32_t addr) const noexcept {
  LiteEndpoint* ep = endpoints_;
  while (ep != nullptr && ep->addr_ != addr) ep = ep->next_;
  return ep;
}

Status LiteDevice::create_endpoint(LiteEndpoint& ep, std::string_view name, std::uint32_t local,
                                   std::uint32_t remote, LiteEndpoint::ReceiveFn on_receive) noexcept {
  if (ep.dev_ != nullptr) return Status::kBusy;
  if (name.size() >= kNameSize) return Status::kInvalidArgument;
  if (local == kAddrAny) {
    // The first free dynamic address: among n endpoints, one of the first n + 1 is free.
    local = kFirstDynamicAddress;
    while (find(local) != nullptr) ++local;
  } else if (local == kNsAddress || find(local) != nullptr) {
    return Status::kAlreadyExists;
  }
  ep.addr_ = local;
  ep.remote_ = remote;
  ep.service_ = !name.empty() && remote == kAddrAny;
  std::memset(ep.name_, 0, sizeof ep.name_);
  std::memcpy(ep.name_, name.data(), name.size());
  ep.on_receive_ = static_cast<LiteEndpoint::ReceiveFn&&>(on_receive);
  ep.next_ = endpoints_;
  endpoints_ = &ep;
  ep.dev_ = this;
  if (ep.service_ && running_ && ns_) {
    if (const Status s = announce(ep, kNsCreate, config_.announce_timeout_ns); !ok(s)) {
      unlink(ep);
      return s;
    }
  }
  return Status::kOk;
}

void LiteDevice::unlink(LiteEndpoint& ep) noexcept {
  LiteEndpoint** p = &endpoints_;
  while (*p != &ep) p = &(*p)->next_;
  *p = ep.next_;
  ep.next_ = nullptr;
  ep.dev_ = nullptr;
  ep.remote_ = kAddrAny;
}

void LiteDevice::stop() noexcept {
  running_ = false;
  spare_ = nullptr;
  for (LiteEndpoint* ep = endpoints_; ep != nullptr; ep = ep->next_) {
    if (ep->service_) ep->remote_ = kAddrAny;
  }
}

}  // namespace amp::rpmsg
