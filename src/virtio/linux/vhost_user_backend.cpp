// SPDX-License-Identifier: BSD-3-Clause
#include "amp/virtio/linux/vhost_user_backend.hpp"

#include <string>
#include <utility>

#include "amp/virtio/ring.hpp"

namespace amp::virtio {

namespace vu = vhost_user;
using metal::hex;
using metal::sys_fail;
using metal::SysResult;
using metal::UniqueFd;
using Request = vu::Request;

namespace {

constexpr std::uint32_t kRingAlign = 4096;  // the split ring's legacy layout, as virtio_uml places it

/// A reply: its header and a u64 (every reply this backend sends is one: a GET_*'s value or an ack).
Status send_u64_reply(metal::UnixSocket& s, std::uint32_t request, std::uint64_t value) {
  std::array<std::byte, vu::kHeaderSize + 8> buf{};
  const auto head = vu::reply_header(request, 8);
  std::copy(head.begin(), head.end(), buf.begin());
  for (std::size_t i = 0; i < 8; ++i)
    buf[vu::kHeaderSize + i] = std::byte(static_cast<std::uint8_t>(value >> (8 * i)));
  return s.send_all(buf);
}

/// Why a reply did not go out, for people (a socket with a send timeout says kWouldBlock when it expires).
std::string reply_failure(Status s) {
  return s == Status::kWouldBlock ? "the front end reads no replies (the socket stayed full)" : to_string(s);
}

}  // namespace

VhostUserBackend::VhostUserBackend(VhostUserConfig config) : config_(config), queues_(config.queues) {}

void VhostUserBackend::reset() {
  owner_ = false;
  acked_features_ = 0;
  protocol_features_ = 0;
  slave_req_.reset();
  table_.reset();
  memory_.clear();
  for (VhostUserQueue& q : queues_) q = VhostUserQueue{};
}

SysResult<std::uint32_t> VhostUserBackend::queue_index(const vu::Header& h, std::uint32_t index) const {
  if (index >= config_.queues) {
    return sys_fail(Status::kOutOfRange, vu::to_string(h.request) + ": queue " + std::to_string(index) +
                                             " (the device has " + std::to_string(config_.queues) + ")");
  }
  return index;
}

SysResult<VhostUserBackend::Handled> VhostUserBackend::handle(metal::UnixSocket& socket,
                                                              const BeforeReply& before_reply) {
  std::array<std::byte, vu::kHeaderSize> head{};
  std::vector<UniqueFd> fds;
  // The header: blocking until it starts (the caller polled), then the message's own time.
  if (const Status s = socket.receive_exact(head, &fds, vu::kMaxRegions, config_.timeout); !ok(s)) {
    return sys_fail(s, s == Status::kClosed ? "vhost-user: the front end hung up"
                                            : std::string("vhost-user: reading a header: ") + to_string(s));
  }
  auto h = vu::parse_header(head);
  if (!h) return sys_fail(h.error().status, "vhost-user: " + h.error().message);
  std::array<std::byte, vu::kMaxPayload> payload{};
  const std::span<std::byte> body = std::span(payload).first(h->size);
  if (!body.empty()) {
    if (const Status s = socket.receive_exact(body, &fds, vu::kMaxRegions - fds.size(), config_.timeout);
        !ok(s)) {
      return sys_fail(s, "vhost-user: " + vu::to_string(h->request) + ": reading its " +
                             std::to_string(h->size) + " bytes: " + to_string(s));
    }
  }
  bool replied = false;
  reply_.reset();
  auto r = act(*h, body, fds, replied);
  if (r && before_reply) before_reply(*r);
  if (r && reply_) {
    if (const Status s = send_u64_reply(socket, h->request, *reply_); !ok(s))
      return sys_fail(s, "vhost-user: answering " + vu::to_string(h->request) + ": " + reply_failure(s));
  }
  if ((h->flags & vu::kFlagNeedReply) != 0 && !replied) {
    // REPLY_ACK: 0 for success. A failure is acked too, then the connection ends.
    if (const Status s = send_u64_reply(socket, h->request, r ? 0 : 1); !ok(s) && r) {
      return sys_fail(s, "vhost-user: acknowledging " + vu::to_string(h->request) + ": " + reply_failure(s));
    }
  }
  if (!r) return sys_fail(r.error().status, "vhost-user: " + r.error().message);
  return r;
}

SysResult<VhostUserBackend::Handled> VhostUserBackend::act(const vu::Header& h, std::span<const std::byte> p,
                                                           std::vector<UniqueFd>& fds, bool& replied) {
  Handled done{h.request, Change::kNone, 0};
  const auto no_fds = [&]() -> SysResult<Handled> {
    if (!fds.empty())
      return sys_fail(Status::kMalformed, vu::to_string(h.request) + ": " + std::to_string(fds.size()) +
                                              " descriptors attached, not 0");
    return done;
  };
  const std::uint64_t offered = config_.device_features | (1ULL << vu::kFeatureProtocolFeatures);
  const std::uint64_t offered_protocol = (1ULL << vu::kProtocolReplyAck) | (1ULL << vu::kProtocolSlaveReq);
  switch (static_cast<Request>(h.request)) {
    case Request::kGetFeatures:
    case Request::kGetProtocolFeatures:
    case Request::kGetQueueNum: {
      if (!p.empty())
        return sys_fail(Status::kMalformed, vu::to_string(h.request) + ": a payload of " +
                                                std::to_string(p.size()) + " bytes, not none");
      if (auto f = no_fds(); !f) return f;
      const std::uint64_t v = h.request == static_cast<std::uint32_t>(Request::kGetFeatures) ? offered
                              : h.request == static_cast<std::uint32_t>(Request::kGetProtocolFeatures)
                                  ? offered_protocol
                                  : config_.queues;
      reply_ = v;
      replied = true;
      return done;
    }
    case Request::kSetOwner:
      if (owner_) return sys_fail(Status::kBusy, "SET_OWNER: the session has an owner already");
      owner_ = true;
      return no_fds();
    case Request::kResetOwner:
      done.change = Change::kReset;  // the caller lets go of the memory and queues, then calls reset()
      return no_fds();
    case Request::kSetFeatures: {
      auto v = vu::parse_u64(h, p);
      if (!v) return sys_fail(v.error().status, v.error().message);
      if ((*v & ~offered) != 0)
        return sys_fail(Status::kNotSupported,
                        "SET_FEATURES: " + hex(*v) + " has bits not offered (" + hex(*v & ~offered) + ")");
      acked_features_ = *v;
      return no_fds();
    }
    case Request::kSetProtocolFeatures: {
      auto v = vu::parse_u64(h, p);
      if (!v) return sys_fail(v.error().status, v.error().message);
      if ((*v & ~offered_protocol) != 0)
        return sys_fail(Status::kNotSupported, "SET_PROTOCOL_FEATURES: " + hex(*v) +
                                                   " has bits not offered (" + hex(*v & ~offered_protocol) +
                                                   ")");
      protocol_features_ = *v;
      return no_fds();
    }
    case Request::kSetSlaveReqFd: {
      if ((protocol_features_ & (1ULL << vu::kProtocolSlaveReq)) == 0)
        return sys_fail(Status::kMalformed, "SET_SLAVE_REQ_FD: SLAVE_REQ was not negotiated");
      if (fds.size() != 1)
        return sys_fail(Status::kMalformed,
                        "SET_SLAVE_REQ_FD: " + std::to_string(fds.size()) + " descriptors attached, not 1");
      slave_req_ = std::move(fds[0]);
      return done;
    }
    case Request::kSetMemTable: {
      for (const VhostUserQueue& q : queues_) {
        if (q.enabled) return sys_fail(Status::kBusy, "SET_MEM_TABLE: while a queue runs (not supported)");
      }
      auto t = vu::parse_memory_table(h, p, fds.size());
      if (!t) return sys_fail(t.error().status, t.error().message);
      std::vector<metal::SharedMemory> mapped;
      for (std::uint32_t i = 0; i < t->count; ++i) {
        const vu::MemoryRegion& r = t->regions[i];
        auto m = metal::shm::map_fd(std::move(fds[i]), static_cast<std::size_t>(r.size), r.guest_addr,
                                    r.mmap_offset);
        if (!m) {
          return sys_fail(m.error().status, "SET_MEM_TABLE: region " + std::to_string(i) + " (guest " +
                                                hex(r.guest_addr) + ", " + hex(r.size) + " bytes at offset " +
                                                hex(r.mmap_offset) + "): " + m.error().message);
        }
        mapped.push_back(std::move(*m));
      }
      table_ = *t;
      memory_ = std::move(mapped);
      for (VhostUserQueue& q : queues_) q.addressed = false;  // translated through the old table
      done.change = Change::kMemory;
      return done;
    }
    case Request::kSetVringNum:
    case Request::kSetVringBase:
    case Request::kSetVringEnable: {
      auto s = vu::parse_vring_state(h, p);
      if (!s) return sys_fail(s.error().status, s.error().message);
      auto i = queue_index(h, s->index);
      if (!i) return sys_fail(i.error().status, i.error().message);
      VhostUserQueue& q = queues_[*i];
      if (h.request == static_cast<std::uint32_t>(Request::kSetVringNum)) {
        if (q.enabled) return sys_fail(Status::kBusy, "SET_VRING_NUM: queue " + std::to_string(*i) + " runs");
        if (s->num == 0 || (s->num & (s->num - 1)) != 0 || s->num > config_.max_queue_size)
          return sys_fail(Status::kInvalidArgument, "SET_VRING_NUM: " + std::to_string(s->num) +
                                                        " entries (a power of two up to " +
                                                        std::to_string(config_.max_queue_size) + ")");
        q.num = s->num;
        q.addressed = false;
      } else if (h.request == static_cast<std::uint32_t>(Request::kSetVringBase)) {
        // amp's queues start at index 0: a front end resuming mid-stream is not served.
        if (s->num != 0)
          return sys_fail(Status::kNotSupported,
                          "SET_VRING_BASE: " + std::to_string(s->num) + " (amp's queues start at 0)");
      } else {
        if (s->num > 1)
          return sys_fail(Status::kMalformed, "SET_VRING_ENABLE: " + std::to_string(s->num) + " (0 or 1)");
        const bool on = s->num == 1;
        if (on && (!q.addressed || !q.kick.valid() || !q.call.valid())) {
          return sys_fail(Status::kMalformed, "SET_VRING_ENABLE: queue " + std::to_string(*i) + " has no " +
                                                  (!q.addressed      ? "ring addresses"
                                                   : !q.kick.valid() ? "kick descriptor"
                                                                     : "call descriptor"));
        }
        if (q.enabled != on) {
          q.enabled = on;
          done.change = on ? Change::kQueueEnabled : Change::kQueueDisabled;
          done.queue = *i;
        }
      }
      return no_fds();
    }
    case Request::kSetVringAddr: {
      auto a = vu::parse_vring_addr(h, p);
      if (!a) return sys_fail(a.error().status, a.error().message);
      auto i = queue_index(h, a->index);
      if (!i) return sys_fail(i.error().status, i.error().message);
      VhostUserQueue& q = queues_[*i];
      if (q.enabled) return sys_fail(Status::kBusy, "SET_VRING_ADDR: queue " + std::to_string(*i) + " runs");
      if (q.num == 0) return sys_fail(Status::kMalformed, "SET_VRING_ADDR: before SET_VRING_NUM");
      if (!table_) return sys_fail(Status::kMalformed, "SET_VRING_ADDR: before SET_MEM_TABLE");
      const std::uint64_t n = q.num;
      auto desc = vu::guest_address(*table_, a->desc, 16 * n);
      auto avail = vu::guest_address(*table_, a->avail, 6 + 2 * n);
      auto used = vu::guest_address(*table_, a->used, 6 + 8 * n);
      for (const auto* r : {&desc, &avail, &used}) {
        if (!*r)
          return sys_fail(Status::kOutOfRange,
                          "SET_VRING_ADDR: queue " + std::to_string(*i) + ": " + r->error().message);
      }
      q.desc = *desc;
      q.avail = *avail;
      q.used = *used;
      q.addressed = true;
      return no_fds();
    }
    case Request::kSetVringKick:
    case Request::kSetVringCall:
    case Request::kSetVringErr: {
      auto f = vu::parse_vring_fd(h, p, fds.size());
      if (!f) return sys_fail(f.error().status, f.error().message);
      auto i = queue_index(h, f->index);
      if (!i) return sys_fail(i.error().status, i.error().message);
      if (!f->has_fd)  // polling the ring instead: not offered
        return sys_fail(Status::kNotSupported, vu::to_string(h.request) + ": without a descriptor (NOFD)");
      VhostUserQueue& q = queues_[*i];
      // A running queue's descriptors are in use (watched, written from other threads): not replaced.
      if (q.enabled && h.request != static_cast<std::uint32_t>(Request::kSetVringErr))
        return sys_fail(Status::kBusy, vu::to_string(h.request) + ": queue " + std::to_string(*i) + " runs");
      if (h.request == static_cast<std::uint32_t>(Request::kSetVringKick)) {
        q.kick = std::move(fds[0]);
      } else if (h.request == static_cast<std::uint32_t>(Request::kSetVringCall)) {
        q.call = std::move(fds[0]);
      }  // the error fd: nothing to report through it; closed with `fds`
      return done;
    }
    default:
      return sys_fail(Status::kNotSupported, vu::to_string(h.request) + ": not supported by amp's backend");
  }
}

SysResult<QueueInfo> VhostUserBackend::queue_info(std::uint32_t index) const {
  if (index >= config_.queues) return sys_fail(Status::kOutOfRange, "queue " + std::to_string(index));
  const VhostUserQueue& q = queues_[index];
  if (!q.addressed)
    return sys_fail(Status::kNotFound, "queue " + std::to_string(index) + " has no rings yet");
  auto layout = RingLayout::compute(q.num, kRingAlign);
  if (!layout) return sys_fail(layout.error(), "queue " + std::to_string(index) + ": no layout");
  if (q.avail != q.desc + layout->avail || q.used != q.desc + layout->used) {
    return sys_fail(Status::kMalformed, "queue " + std::to_string(index) + ": desc " + hex(q.desc) +
                                            ", avail " + hex(q.avail) + ", used " + hex(q.used) +
                                            " is not the split ring's layout with the used ring " +
                                            std::to_string(kRingAlign) + "-aligned, which amp's queues use");
  }
  return QueueInfo{q.desc, kRingAlign, q.num, index};
}

}  // namespace amp::virtio
