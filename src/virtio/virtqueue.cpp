// SPDX-License-Identifier: BSD-3-Clause
#include "amp/virtio/virtqueue.hpp"

#include <atomic>

#include "amp/metal/log.hpp"
#include "amp/metal/log_record.hpp"

namespace amp::virtio {

namespace {

constexpr std::size_t kDescAddr = 0;
constexpr std::size_t kDescLen = 8;

/// A full barrier (StoreLoad): our index store must be visible before we read the peer's suppression
/// field. On x86 a locked add to the stack is the cheaper way to get one (what Linux's smp_mb does).
inline void full_fence() noexcept {
#if defined(__x86_64__)
  __asm__ __volatile__("lock; addl $0,-4(%%rsp)" ::: "memory", "cc");
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

}  // namespace

namespace detail {

Status SplitRing::setup(const QueueConfig& config) noexcept {
  auto l = RingLayout::compute(config.num, config.align);
  if (!l) return l.error();
  if (config.ring.size() < l->size) return Status::kOutOfRange;
  auto base = config.ring.pointer_at(0, l->size);
  if (!base) return base.error();
  if (reinterpret_cast<std::uintptr_t>(*base) % 8 != 0) return Status::kMisaligned;
  buffers_ = config.buffers;
  event_idx_ = config.event_idx;
  layout_ = *l;
  base_ = *base;
  fault_ = Fault::kNone;
  return Status::kOk;
}

Status SplitRing::mark_broken(const char* role, Fault f) noexcept {
  if (fault_ == Fault::kNone) {
    fault_ = f;
    AMP_LOG_ERROR("virtqueue (%s): peer broke the protocol: %s", role, log_name(f));
  }
  return Status::kBroken;
}

}  // namespace detail

// Each fault and its name, once, for to_string() and log_name().
#define AMP_FAULT_NAMES(X)                                          \
  X(kNone, "no fault")                                              \
  X(kIndexRunaway, "ring index moved by more than the ring size")   \
  X(kDescriptorIndex, "descriptor index out of range")              \
  X(kDescriptorAddress, "buffer outside the shared region")         \
  X(kDescriptorLoop, "descriptor chain loops")                      \
  X(kChainTooLong, "descriptor chain longer than expected")         \
  X(kUnexpectedIndirect, "indirect descriptor not negotiated")      \
  X(kReadableAfterWritable, "readable buffer after a writable one") \
  X(kUsedIdNotInFlight, "used buffer was not in flight")            \
  X(kUsedLengthTooLarge, "used length larger than the buffer")      \
  X(kRingAccess, "ring outside its region")                         \
  X(kBadBuffer, "buffer of the wrong direction or too small")       \
  X(kHeadInFlight, "buffer offered again while the device holds it")

const char* to_string(Fault f) noexcept {
  switch (f) {
#define AMP_CASE(k, name) \
  case Fault::k:          \
    return name;
    AMP_FAULT_NAMES(AMP_CASE)
#undef AMP_CASE
  }
  return "unknown fault";
}

#if AMP_LOG_DICTIONARY
namespace {
#define AMP_ROW(k, name) name,
AMP_DICT_NAMES(kLogNames, 48, AMP_FAULT_NAMES(AMP_ROW) "unknown fault");
#undef AMP_ROW
// The table is indexed by the value: the list must hold every value, in order.
#define AMP_VALUE(k, name) Fault::k,
constexpr Fault kOrder[] = {AMP_FAULT_NAMES(AMP_VALUE)};
#undef AMP_VALUE
static_assert(metal::dict::in_value_order(kOrder), "the names' list is not in the order of the values");
static_assert(sizeof kLogNames / sizeof kLogNames[0] == sizeof kOrder / sizeof kOrder[0] + 1);
}  // namespace

const char* log_name(Fault f) noexcept {
  return metal::dict::name_at(kLogNames, static_cast<std::uint32_t>(f));
}
#endif

// ---------------------------------------------------------------------------------------------------------
// DriverQueue

Status DriverQueue::init(const QueueConfig& config, std::span<Slot> slots) noexcept {
  if (auto l = RingLayout::compute(config.num, config.align); !l || slots.size() < l->num) {
    return Status::kInvalidArgument;
  }
  AMP_RETURN_IF_ERROR(setup(config));
  slots_ = slots.first(layout_.num);
  AMP_RETURN_IF_ERROR(config.ring.fill(0, std::byte{0}, layout_.size));
  for (std::uint32_t i = 0; i < layout_.num; ++i) {
    slots_[i] = Slot{};
    slots_[i].next = static_cast<std::uint16_t>(i + 1);
  }
  free_head_ = 0;
  free_tail_ = static_cast<std::uint16_t>(layout_.num - 1);
  free_count_ = static_cast<std::uint16_t>(layout_.num);
  avail_idx_ = published_ = kicked_avail_ = last_used_ = used_seen_ = 0;
  interrupts_disabled_ = false;
  std::atomic_thread_fence(std::memory_order_release);
  return Status::kOk;
}

Result<std::uint16_t> DriverQueue::add(std::span<const Buffer> chain, std::uintptr_t token,
                                       bool publish_now) noexcept {
  if (broken()) return fail(Status::kBroken);
  if (layout_.num == 0) return fail(Status::kInvalidArgument);
  if (chain.empty()) return fail(Status::kInvalidArgument);
  if (chain.size() > free_count_) return fail(Status::kWouldBlock);
  bool seen_writable = false;
  std::uint64_t writable = 0;
  for (const Buffer& b : chain) {
    if (seen_writable && !b.device_writable) return fail(Status::kInvalidArgument);
    seen_writable = seen_writable || b.device_writable;
    if (auto off = buffers_.offset_of(b.addr, b.len); !off) return fail(off.error());
    if (b.device_writable) writable += b.len;
  }
  if (writable > UINT32_MAX) return fail(Status::kOverflow);

  const std::uint16_t head = free_head_;
  std::uint16_t idx = head;
  for (std::size_t i = 0; i < chain.size(); ++i) {
    Slot& s = slots_[idx];
    const std::uint16_t next_free = s.next;
    const bool last = i + 1 == chain.size();
    const std::uint16_t flags = static_cast<std::uint16_t>((chain[i].device_writable ? kDescFlagWrite : 0) |
                                                           (last ? 0 : kDescFlagNext));
    const std::uint16_t next = last ? 0 : next_free;
    // Write only what differs from what this descriptor last held: descriptors and buffers are reused in
    // the same order, so in a steady stream nothing changes and the descriptor's cache line is not pulled
    // away from the device. (The shadow, not the shared table, is what the driver trusts.)
    const std::size_t d = layout_.desc_entry(idx);
    if (!s.written || s.addr != chain[i].addr) write<std::uint64_t>(d + kDescAddr, chain[i].addr);
    if (!s.written || s.len != chain[i].len || s.flags != flags || s.desc_next != next) {
      write<std::uint64_t>(
          d + kDescLen, std::uint64_t{chain[i].len} | std::uint64_t{flags} << 32 | std::uint64_t{next} << 48);
    }
    s.addr = chain[i].addr;
    s.len = chain[i].len;
    s.flags = flags;
    s.desc_next = next;
    s.written = true;
    s.next = next;
    if (last) {
      free_head_ = next_free;
    } else {
      idx = next_free;
    }
  }
  free_count_ = static_cast<std::uint16_t>(free_count_ - chain.size());
  slots_[head].chain_len = static_cast<std::uint16_t>(chain.size());
  slots_[head].writable = static_cast<std::uint32_t>(writable);
  slots_[head].token = token;

  Slot& entry = slots_[avail_idx_ & (layout_.num - 1)];  // its avail_entry: what that ring slot holds
  if (entry.avail_entry != head) {
    write<std::uint16_t>(layout_.avail_entry(avail_idx_ & (layout_.num - 1)), head);
    entry.avail_entry = head;
  }
  ++avail_idx_;
  if (publish_now) publish();
  return head;
}

void DriverQueue::publish() noexcept {
  if (published_ == avail_idx_ || layout_.num == 0) return;
  // Release: the descriptors and the ring entries are visible before the new index.
  write<std::uint16_t>(layout_.avail_idx(), avail_idx_, std::memory_order_release);
  published_ = avail_idx_;
}

bool DriverQueue::kick_needed() noexcept {
  if (broken() || layout_.num == 0) return false;
  const std::uint16_t old = kicked_avail_;
  if (old == published_) return false;  // nothing new: no fence, no read of the peer's state
  kicked_avail_ = published_;
  full_fence();  // our index store before reading the device's suppression state
  if (event_idx_) return need_event(read<std::uint16_t>(layout_.avail_event()), published_, old);
  return (read<std::uint16_t>(layout_.used_flags()) & kUsedFlagNoNotify) == 0;
}

Result<bool> DriverQueue::pop_used(Used& out) noexcept {
  if (broken()) return fail(Status::kBroken);
  if (layout_.num == 0) return fail(Status::kInvalidArgument);
  if (last_used_ == used_seen_) {
    // Look at the device's index only when what we saw last time is used up: one read of that contended
    // cache line per batch, not per buffer.
    const std::uint16_t used_idx = read<std::uint16_t>(layout_.used_idx(), std::memory_order_acquire);
    const auto pending = static_cast<std::uint16_t>(used_idx - last_used_);
    if (pending == 0) return false;
    const std::uint32_t in_flight = layout_.num - free_count_;
    if (pending > layout_.num || pending > in_flight)
      return fail(mark_broken("driver", Fault::kIndexRunaway));
    used_seen_ = used_idx;
  }

  const std::size_t e = layout_.used_entry(last_used_ & (layout_.num - 1));
  const std::uint32_t id = read<std::uint32_t>(e);
  const std::uint32_t len = read<std::uint32_t>(e + 4);
  if (id >= layout_.num) return fail(mark_broken("driver", Fault::kDescriptorIndex));
  Slot& head = slots_[id];
  if (head.chain_len == 0) return fail(mark_broken("driver", Fault::kUsedIdNotInFlight));
  // A chain the device could not write into has nothing to report: some devices (OpenAMP) return the
  // buffer's full length there, which is harmless and ignored. Otherwise the length must fit.
  if (head.writable != 0 && len > head.writable)
    return fail(mark_broken("driver", Fault::kUsedLengthTooLarge));

  // Return the chain to the free list, walking our own (trusted) shadow.
  std::uint16_t tail = static_cast<std::uint16_t>(id);
  for (std::uint16_t i = 1; i < head.chain_len; ++i) tail = slots_[tail].next;
  // Free descriptors queue up (first in, first out), so that descriptors and the buffers behind them are
  // reused in order, which keeps the peer's reads sequential.
  if (free_count_ == 0) {
    free_head_ = static_cast<std::uint16_t>(id);
  } else {
    slots_[free_tail_].next = static_cast<std::uint16_t>(id);
  }
  free_tail_ = tail;
  free_count_ = static_cast<std::uint16_t>(free_count_ + head.chain_len);
  head.chain_len = 0;
  ++last_used_;
  if (event_idx_ && !interrupts_disabled_) {
    // Keep asking for an interrupt at the next returned buffer.
    write<std::uint16_t>(layout_.used_event(), last_used_);
  }
  out.head = static_cast<std::uint16_t>(id);
  out.len = head.writable != 0 ? len : 0;
  out.token = head.token;
  return true;
}

bool DriverQueue::has_used() const noexcept {
  if (broken() || layout_.num == 0) return false;
  if (last_used_ != used_seen_) return true;
  return read<std::uint16_t>(layout_.used_idx(), std::memory_order_acquire) != last_used_;
}

Buffer DriverQueue::head_buffer(std::uint16_t head) const noexcept {
  if (head >= slots_.size()) return {};
  const Slot& s = slots_[head];
  return Buffer{s.addr, s.len, (s.flags & kDescFlagWrite) != 0};
}

void DriverQueue::disable_interrupts() noexcept {
  // Already off: do not write the ring again (a polling caller would otherwise keep a line the device
  // reads bouncing between the cores).
  if (layout_.num == 0 || interrupts_disabled_) return;
  interrupts_disabled_ = true;
  if (event_idx_) {
    // An event index just behind what we have read: the device passes it again only after 64 Ki buffers.
    write<std::uint16_t>(layout_.used_event(), static_cast<std::uint16_t>(last_used_ - 1));
  } else {
    write<std::uint16_t>(layout_.avail_flags(), kAvailFlagNoInterrupt);
  }
}

bool DriverQueue::enable_interrupts() noexcept {
  if (layout_.num == 0) return false;
  interrupts_disabled_ = false;
  if (event_idx_) {
    write<std::uint16_t>(layout_.used_event(), last_used_);
  } else {
    write<std::uint16_t>(layout_.avail_flags(), 0);
  }
  full_fence();  // publish the request before checking for buffers that raced with it
  return read<std::uint16_t>(layout_.used_idx(), std::memory_order_acquire) != last_used_;
}

// ---------------------------------------------------------------------------------------------------------
// DeviceQueue

Status DeviceQueue::init(const QueueConfig& config, std::span<std::uint64_t> in_flight) noexcept {
  if (in_flight.size() < in_flight_words(config.num)) return Status::kInvalidArgument;
  AMP_RETURN_IF_ERROR(setup(config));
  in_flight_ = in_flight.first(in_flight_words(config.num));
  for (std::uint64_t& w : in_flight_) w = 0;
  held_ = 0;
  last_avail_ = avail_seen_ = used_idx_ = published_ = notified_used_ = 0;
  notifications_disabled_ = false;
  return Status::kOk;
}

Result<bool> DeviceQueue::has_available() noexcept {
  if (broken()) return fail(Status::kBroken);
  if (layout_.num == 0) return fail(Status::kInvalidArgument);
  if (avail_seen_ != last_avail_) return true;  // still working through what we saw last time
  const std::uint16_t avail_idx = read<std::uint16_t>(layout_.avail_idx(), std::memory_order_acquire);
  const auto pending = static_cast<std::uint16_t>(avail_idx - last_avail_);
  if (pending > layout_.num) return fail(mark_broken("device", Fault::kIndexRunaway));
  avail_seen_ = avail_idx;
  return pending != 0;
}

// pop_available and pop_buffer share these, inlined: an image links one of the two, and each is tight.
[[gnu::always_inline]] inline Result<bool> DeviceQueue::next_head(std::uint16_t& head) noexcept {
  auto any = has_available();
  if (!any || !*any) return any;
  const std::uint16_t h = read<std::uint16_t>(layout_.avail_entry(last_avail_ & (layout_.num - 1)));
  if (h >= layout_.num) return fail(mark_broken("device", Fault::kDescriptorIndex));
  if ((in_flight_[h / 64] & (std::uint64_t{1} << (h % 64))) != 0) {
    return fail(mark_broken("device", Fault::kHeadInFlight));
  }
  head = h;
  return true;
}

[[gnu::always_inline]] inline Status DeviceQueue::read_descriptor(std::uint16_t idx, Buffer& out,
                                                                  std::uint16_t& flags,
                                                                  std::uint16_t& next) noexcept {
  const std::size_t d = layout_.desc_entry(idx);
  // Read once, in two 8-byte loads, into locals that are checked below.
  const std::uint64_t addr = read<std::uint64_t>(d + kDescAddr);
  const std::uint64_t rest = read<std::uint64_t>(d + kDescLen);
  const auto len = static_cast<std::uint32_t>(rest);
  flags = static_cast<std::uint16_t>(rest >> 32);
  next = static_cast<std::uint16_t>(rest >> 48);
  if ((flags & kDescFlagIndirect) != 0) return mark_broken("device", Fault::kUnexpectedIndirect);
  auto data = buffers_.pointer_of(addr, len);  // checks the whole range, and translates it once
  if (!data) return mark_broken("device", Fault::kDescriptorAddress);
  out = Buffer{addr, len, (flags & kDescFlagWrite) != 0, *data};
  return Status::kOk;
}

[[gnu::always_inline]] inline void DeviceQueue::take(std::uint16_t head) noexcept {
  in_flight_[head / 64] |= std::uint64_t{1} << (head % 64);
  ++held_;
  ++last_avail_;
  if (event_idx_ && !notifications_disabled_) write<std::uint16_t>(layout_.avail_event(), last_avail_);
}

Result<bool> DeviceQueue::pop_available(Chain& chain, std::span<Buffer> out) noexcept {
  std::uint16_t head = 0;
  auto any = next_head(head);
  if (!any || !*any) return any;
  Chain c;
  c.head = head;
  std::uint64_t readable = 0;
  std::uint64_t writable = 0;
  std::uint16_t idx = head;
  for (std::uint32_t n = 0;; ++n) {
    if (n >= layout_.num) return fail(mark_broken("device", Fault::kDescriptorLoop));
    Buffer b;
    std::uint16_t flags = 0;
    std::uint16_t next = 0;
    if (const Status st = read_descriptor(idx, b, flags, next); !ok(st)) return fail(st);
    if (!b.device_writable && writable != 0)
      return fail(mark_broken("device", Fault::kReadableAfterWritable));
    if (c.count >= out.size()) return fail(mark_broken("device", Fault::kChainTooLong));
    out[c.count++] = b;
    (b.device_writable ? writable : readable) += b.len;
    if ((flags & kDescFlagNext) == 0) break;
    if (next >= layout_.num) return fail(mark_broken("device", Fault::kDescriptorIndex));
    idx = next;
  }
  // Each length fits the region, so a sum beyond 32 bits means buffers overlap: the peer is lying.
  if (readable > UINT32_MAX || writable > UINT32_MAX)
    return fail(mark_broken("device", Fault::kDescriptorAddress));
  c.readable_len = static_cast<std::uint32_t>(readable);
  c.writable_len = static_cast<std::uint32_t>(writable);
  take(head);
  chain = c;
  return true;
}

Result<bool> DeviceQueue::pop_buffer(std::uint16_t& head, Buffer& out) noexcept {
  std::uint16_t h = 0;
  auto any = next_head(h);
  if (!any || !*any) return any;
  Buffer b;
  std::uint16_t flags = 0;
  std::uint16_t next = 0;
  if (const Status st = read_descriptor(h, b, flags, next); !ok(st)) return fail(st);
  if ((flags & kDescFlagNext) != 0) return fail(mark_broken("device", Fault::kChainTooLong));
  take(h);
  head = h;
  out = b;
  return true;
}

Status DeviceQueue::push_used(std::uint16_t head, std::uint32_t written, bool publish_now) noexcept {
  if (broken()) return Status::kBroken;
  if (layout_.num == 0) return Status::kInvalidArgument;
  if (head >= layout_.num) return Status::kInvalidArgument;
  std::uint64_t& word = in_flight_[head / 64];
  const std::uint64_t bit = std::uint64_t{1} << (head % 64);
  if ((word & bit) == 0) return Status::kInvalidArgument;  // not ours to return (a caller's bug)
  word &= ~bit;
  --held_;
  const std::size_t e = layout_.used_entry(used_idx_ & (layout_.num - 1));
  write<std::uint32_t>(e, head);  // 4-byte aligned only: two stores
  write<std::uint32_t>(e + 4, written);
  ++used_idx_;
  if (publish_now) publish();
  return Status::kOk;
}

void DeviceQueue::publish() noexcept {
  if (published_ == used_idx_ || layout_.num == 0) return;
  write<std::uint16_t>(layout_.used_idx(), used_idx_, std::memory_order_release);
  published_ = used_idx_;
}

bool DeviceQueue::notify_needed() noexcept {
  if (broken() || layout_.num == 0) return false;
  const std::uint16_t old = notified_used_;
  if (old == published_) return false;  // nothing new: no fence, no read of the peer's state
  notified_used_ = published_;
  full_fence();  // our index store before reading the driver's suppression state
  if (event_idx_) return need_event(read<std::uint16_t>(layout_.used_event()), published_, old);
  return (read<std::uint16_t>(layout_.avail_flags()) & kAvailFlagNoInterrupt) == 0;
}

void DeviceQueue::disable_notifications() noexcept {
  if (layout_.num == 0 || notifications_disabled_) return;  // already off: leave the shared line alone
  notifications_disabled_ = true;
  if (event_idx_) {
    write<std::uint16_t>(layout_.avail_event(), static_cast<std::uint16_t>(last_avail_ - 1));
  } else {
    write<std::uint16_t>(layout_.used_flags(), kUsedFlagNoNotify);
  }
}

bool DeviceQueue::enable_notifications() noexcept {
  if (layout_.num == 0) return false;
  notifications_disabled_ = false;
  if (event_idx_) {
    write<std::uint16_t>(layout_.avail_event(), last_avail_);
  } else {
    write<std::uint16_t>(layout_.used_flags(), 0);
  }
  full_fence();
  return read<std::uint16_t>(layout_.avail_idx(), std::memory_order_acquire) != last_avail_;
}

}  // namespace amp::virtio
