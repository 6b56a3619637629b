// SPDX-License-Identifier: BSD-3-Clause
// The vhost-user protocol's messages (QEMU's docs/interop/vhost-user.rst; what User-mode Linux's virtio_uml,
// the kernel's front end, sends): a 12-byte header { u32 request; u32 flags; u32 size; } and `size` bytes of
// payload, little-endian, on a UNIX stream socket, descriptors attached with SCM_RIGHTS. Parsing only: every
// payload a front end sends is checked here (its size for the request, its descriptor count, its numbers)
// before a backend acts on it, and each failure is one line that says what was wrong.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "amp/metal/linux/sys_error.hpp"

namespace amp::virtio::vhost_user {

/// Front-end requests (the ones this backend knows by name; others are refused by number).
enum class Request : std::uint32_t {
  kGetFeatures = 1,
  kSetFeatures = 2,
  kSetOwner = 3,
  kResetOwner = 4,
  kSetMemTable = 5,
  kSetLogBase = 6,
  kSetLogFd = 7,
  kSetVringNum = 8,
  kSetVringAddr = 9,
  kSetVringBase = 10,
  kGetVringBase = 11,
  kSetVringKick = 12,
  kSetVringCall = 13,
  kSetVringErr = 14,
  kGetProtocolFeatures = 15,
  kSetProtocolFeatures = 16,
  kGetQueueNum = 17,
  kSetVringEnable = 18,
  kSetSlaveReqFd = 21,
  kGetConfig = 24,
  kSetConfig = 25,
  kGetMaxMemSlots = 36,
  kSetStatus = 39,
  kGetStatus = 40,
};

/// "SET_MEM_TABLE", or "request 99" for a number without a name here.
std::string to_string(std::uint32_t request);

inline constexpr std::size_t kHeaderSize = 12;
/// Header flags: the version in bits 0-1 (1), a reply, and a request for a reply (REPLY_ACK).
inline constexpr std::uint32_t kVersionMask = 0x3;
inline constexpr std::uint32_t kVersion = 1;
inline constexpr std::uint32_t kFlagReply = 1U << 2;
inline constexpr std::uint32_t kFlagNeedReply = 1U << 3;

/// Feature bit 30 (in GET/SET_FEATURES): the protocol features are negotiated.
inline constexpr unsigned kFeatureProtocolFeatures = 30;
/// Protocol feature bits.
inline constexpr unsigned kProtocolMq = 0;
inline constexpr unsigned kProtocolReplyAck = 3;
inline constexpr unsigned kProtocolSlaveReq = 5;
inline constexpr unsigned kProtocolConfig = 9;
inline constexpr unsigned kProtocolInbandNotifications = 14;

/// SET_VRING_KICK/CALL/ERR's u64: the queue index in bits 0-7; bit 8 set: no descriptor comes with it.
inline constexpr std::uint64_t kVringIndexMask = 0xFF;
inline constexpr std::uint64_t kVringNoFd = 1U << 8;

/// The most memory regions a SET_MEM_TABLE carries (the protocol's baseline).
inline constexpr std::size_t kMaxRegions = 8;
/// The largest payload amp takes: a memory table of kMaxRegions regions. Anything longer is refused
/// before it is read.
inline constexpr std::size_t kMaxPayload = 8 + kMaxRegions * 32;

struct Header {
  std::uint32_t request = 0;
  std::uint32_t flags = 0;
  std::uint32_t size = 0;
};

/// The header, checked: version 1, not a reply (a front end sends requests), size <= kMaxPayload.
metal::SysResult<Header> parse_header(std::span<const std::byte, kHeaderSize> bytes);
/// A reply's header bytes to `request`, with `size` bytes of payload to follow.
std::array<std::byte, kHeaderSize> reply_header(std::uint32_t request, std::uint32_t size) noexcept;

struct VringState {
  std::uint32_t index = 0;
  std::uint32_t num = 0;
};

/// SET_VRING_ADDR: where the driver placed a ring's three parts, in the front end's user addresses.
struct VringAddr {
  std::uint32_t index = 0;
  std::uint32_t flags = 0;
  std::uint64_t desc = 0;
  std::uint64_t used = 0;
  std::uint64_t avail = 0;
  std::uint64_t log = 0;
};

struct MemoryRegion {
  std::uint64_t guest_addr = 0;
  std::uint64_t size = 0;
  std::uint64_t user_addr = 0;
  std::uint64_t mmap_offset = 0;
};

struct MemoryTable {
  std::uint32_t count = 0;
  std::array<MemoryRegion, kMaxRegions> regions{};
  std::span<const MemoryRegion> view() const noexcept { return std::span(regions).first(count); }
};

struct VringFd {
  std::uint32_t index = 0;
  bool has_fd = false;
};

/// The u64 of GET/SET_FEATURES, SET_PROTOCOL_FEATURES, SET_LOG_BASE...: exactly 8 bytes.
metal::SysResult<std::uint64_t> parse_u64(const Header& h, std::span<const std::byte> payload);
/// SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ENABLE, GET_VRING_BASE: exactly 8 bytes.
metal::SysResult<VringState> parse_vring_state(const Header& h, std::span<const std::byte> payload);
/// SET_VRING_ADDR: exactly 40 bytes.
metal::SysResult<VringAddr> parse_vring_addr(const Header& h, std::span<const std::byte> payload);
/// SET_MEM_TABLE with `fds` descriptors attached: 1 to kMaxRegions regions, one descriptor each, the
/// payload at least as long as the regions it declares; each region non-empty, no range (guest, user, file
/// offset) wrapping around 2^64, no two overlapping in guest or user addresses.
metal::SysResult<MemoryTable> parse_memory_table(const Header& h, std::span<const std::byte> payload,
                                                 std::size_t fds);
/// SET_VRING_KICK/CALL/ERR with `fds` descriptors attached: 8 bytes, no bits but the index and NOFD, one
/// descriptor unless NOFD.
metal::SysResult<VringFd> parse_vring_fd(const Header& h, std::span<const std::byte> payload,
                                         std::size_t fds);

/// The guest address of [user_addr, user_addr + len) through `table`: the one region that holds all of it.
/// kOutOfRange otherwise (a ring the front end placed outside the memory it shared).
metal::SysResult<std::uint64_t> guest_address(const MemoryTable& table, std::uint64_t user_addr,
                                              std::uint64_t len);

}  // namespace amp::virtio::vhost_user
