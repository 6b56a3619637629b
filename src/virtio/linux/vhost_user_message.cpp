// SPDX-License-Identifier: BSD-3-Clause
#include "amp/virtio/linux/vhost_user_message.hpp"

#include <cstring>

namespace amp::virtio::vhost_user {

namespace {

using metal::hex;
using metal::sys_fail;
using metal::SysResult;

std::uint32_t u32_at(std::span<const std::byte> b, std::size_t at) noexcept {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i) v |= std::to_integer<std::uint32_t>(b[at + i]) << (8 * i);
  return v;
}

std::uint64_t u64_at(std::span<const std::byte> b, std::size_t at) noexcept {
  return u32_at(b, at) | (std::uint64_t{u32_at(b, at + 4)} << 32);
}

void put_u32(std::byte* out, std::uint32_t v) noexcept {
  for (std::size_t i = 0; i < 4; ++i) out[i] = std::byte(static_cast<std::uint8_t>(v >> (8 * i)));
}

/// "SET_VRING_ADDR: 39 bytes of payload, not 40".
Unexpected<metal::SysError> wrong_size(const Header& h, std::size_t want) {
  return sys_fail(Status::kMalformed, to_string(h.request) + ": " + std::to_string(h.size) +
                                          " bytes of payload, not " + std::to_string(want));
}

Unexpected<metal::SysError> wrong_fds(const Header& h, std::size_t got, std::size_t want) {
  return sys_fail(Status::kMalformed, to_string(h.request) + ": " + std::to_string(got) +
                                          " descriptors attached, not " + std::to_string(want));
}

bool wraps(std::uint64_t start, std::uint64_t len) noexcept {
  return start + len < start;
}

bool overlap(std::uint64_t a, std::uint64_t alen, std::uint64_t b, std::uint64_t blen) noexcept {
  return a < b + blen && b < a + alen;
}

}  // namespace

std::string to_string(std::uint32_t request) {
  switch (static_cast<Request>(request)) {
    case Request::kGetFeatures:
      return "GET_FEATURES";
    case Request::kSetFeatures:
      return "SET_FEATURES";
    case Request::kSetOwner:
      return "SET_OWNER";
    case Request::kResetOwner:
      return "RESET_OWNER";
    case Request::kSetMemTable:
      return "SET_MEM_TABLE";
    case Request::kSetLogBase:
      return "SET_LOG_BASE";
    case Request::kSetLogFd:
      return "SET_LOG_FD";
    case Request::kSetVringNum:
      return "SET_VRING_NUM";
    case Request::kSetVringAddr:
      return "SET_VRING_ADDR";
    case Request::kSetVringBase:
      return "SET_VRING_BASE";
    case Request::kGetVringBase:
      return "GET_VRING_BASE";
    case Request::kSetVringKick:
      return "SET_VRING_KICK";
    case Request::kSetVringCall:
      return "SET_VRING_CALL";
    case Request::kSetVringErr:
      return "SET_VRING_ERR";
    case Request::kGetProtocolFeatures:
      return "GET_PROTOCOL_FEATURES";
    case Request::kSetProtocolFeatures:
      return "SET_PROTOCOL_FEATURES";
    case Request::kGetQueueNum:
      return "GET_QUEUE_NUM";
    case Request::kSetVringEnable:
      return "SET_VRING_ENABLE";
    case Request::kSetSlaveReqFd:
      return "SET_SLAVE_REQ_FD";
    case Request::kGetConfig:
      return "GET_CONFIG";
    case Request::kSetConfig:
      return "SET_CONFIG";
    case Request::kGetMaxMemSlots:
      return "GET_MAX_MEM_SLOTS";
    case Request::kSetStatus:
      return "SET_STATUS";
    case Request::kGetStatus:
      return "GET_STATUS";
  }
  return "request " + std::to_string(request);
}

SysResult<Header> parse_header(std::span<const std::byte, kHeaderSize> bytes) {
  Header h{u32_at(bytes, 0), u32_at(bytes, 4), u32_at(bytes, 8)};
  if ((h.flags & kVersionMask) != kVersion) {
    return sys_fail(Status::kNotSupported, to_string(h.request) + ": protocol version " +
                                               std::to_string(h.flags & kVersionMask) + ", not 1");
  }
  if ((h.flags & kFlagReply) != 0)
    return sys_fail(Status::kMalformed, to_string(h.request) + ": a reply where a request was due");
  if (h.size > kMaxPayload) {
    return sys_fail(Status::kTooLarge, to_string(h.request) + ": " + std::to_string(h.size) +
                                           " bytes of payload (at most " + std::to_string(kMaxPayload) + ")");
  }
  return h;
}

std::array<std::byte, kHeaderSize> reply_header(std::uint32_t request, std::uint32_t size) noexcept {
  std::array<std::byte, kHeaderSize> out{};
  put_u32(out.data(), request);
  put_u32(out.data() + 4, kVersion | kFlagReply);
  put_u32(out.data() + 8, size);
  return out;
}

SysResult<std::uint64_t> parse_u64(const Header& h, std::span<const std::byte> payload) {
  if (payload.size() != 8) return wrong_size(h, 8);
  return u64_at(payload, 0);
}

SysResult<VringState> parse_vring_state(const Header& h, std::span<const std::byte> payload) {
  if (payload.size() != 8) return wrong_size(h, 8);
  return VringState{u32_at(payload, 0), u32_at(payload, 4)};
}

SysResult<VringAddr> parse_vring_addr(const Header& h, std::span<const std::byte> payload) {
  if (payload.size() != 40) return wrong_size(h, 40);
  return VringAddr{u32_at(payload, 0),  u32_at(payload, 4),  u64_at(payload, 8),
                   u64_at(payload, 16), u64_at(payload, 24), u64_at(payload, 32)};
}

SysResult<MemoryTable> parse_memory_table(const Header& h, std::span<const std::byte> payload,
                                          std::size_t fds) {
  if (payload.size() < 8) return wrong_size(h, 8);
  MemoryTable t;
  t.count = u32_at(payload, 0);
  if (t.count == 0 || t.count > kMaxRegions) {
    return sys_fail(Status::kMalformed, "SET_MEM_TABLE: " + std::to_string(t.count) + " regions (1 to " +
                                            std::to_string(kMaxRegions) + ")");
  }
  if (payload.size() < 8 + std::size_t{t.count} * 32) return wrong_size(h, 8 + std::size_t{t.count} * 32);
  if (fds != t.count) return wrong_fds(h, fds, t.count);
  for (std::uint32_t i = 0; i < t.count; ++i) {
    const std::size_t at = 8 + std::size_t{i} * 32;
    MemoryRegion r{u64_at(payload, at), u64_at(payload, at + 8), u64_at(payload, at + 16),
                   u64_at(payload, at + 24)};
    const std::string which = "SET_MEM_TABLE: region " + std::to_string(i);
    if (r.size == 0) return sys_fail(Status::kMalformed, which + " is empty");
    if (wraps(r.guest_addr, r.size) || wraps(r.user_addr, r.size) || wraps(r.mmap_offset, r.size)) {
      return sys_fail(Status::kOverflow, which + " (guest " + hex(r.guest_addr) + ", user " +
                                             hex(r.user_addr) + ", offset " + hex(r.mmap_offset) + ", size " +
                                             hex(r.size) + ") wraps around");
    }
    for (std::uint32_t j = 0; j < i; ++j) {
      const MemoryRegion& o = t.regions[j];
      if (overlap(r.guest_addr, r.size, o.guest_addr, o.size) ||
          overlap(r.user_addr, r.size, o.user_addr, o.size))
        return sys_fail(Status::kMalformed, which + " overlaps region " + std::to_string(j));
    }
    t.regions[i] = r;
  }
  return t;
}

SysResult<VringFd> parse_vring_fd(const Header& h, std::span<const std::byte> payload, std::size_t fds) {
  if (payload.size() != 8) return wrong_size(h, 8);
  const std::uint64_t v = u64_at(payload, 0);
  if ((v & ~(kVringIndexMask | kVringNoFd)) != 0)
    return sys_fail(Status::kMalformed, to_string(h.request) + ": unknown bits in " + hex(v));
  VringFd r{static_cast<std::uint32_t>(v & kVringIndexMask), (v & kVringNoFd) == 0};
  if (fds != (r.has_fd ? 1U : 0U)) return wrong_fds(h, fds, r.has_fd ? 1 : 0);
  return r;
}

SysResult<std::uint64_t> guest_address(const MemoryTable& table, std::uint64_t user_addr, std::uint64_t len) {
  for (const MemoryRegion& r : table.view()) {
    if (user_addr >= r.user_addr && !wraps(user_addr, len) && user_addr + len <= r.user_addr + r.size)
      return r.guest_addr + (user_addr - r.user_addr);
  }
  return sys_fail(Status::kOutOfRange, hex(user_addr) + " (+" + std::to_string(len) +
                                           " bytes) lies in no region of the memory table");
}

}  // namespace amp::virtio::vhost_user
