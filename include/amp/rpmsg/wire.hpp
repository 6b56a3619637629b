// SPDX-License-Identifier: BSD-3-Clause
// RPMsg on the wire, byte-compatible with the Linux kernel's virtio_rpmsg_bus and OpenAMP.
//
//   header (16 bytes, little-endian, packed): le32 src; le32 dst; le32 reserved; le16 len; le16 flags;
//   then `len` bytes of payload.
//   name-service message (40 bytes), sent to address 53: char name[32] (NUL-terminated); le32 addr;
//   le32 flags (0 = create, 1 = destroy).
//
// Thread-safety: constants and pure functions only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "amp/metal/result.hpp"

namespace amp::rpmsg {

inline constexpr std::size_t kHeaderSize = 16;
inline constexpr std::uint32_t kAddrAny = 0xFFFFFFFF;
/// The name service's address on both sides.
inline constexpr std::uint32_t kNsAddress = 53;
/// Addresses below this are reserved; dynamically allocated ones start here.
inline constexpr std::uint32_t kFirstDynamicAddress = 1024;
inline constexpr std::size_t kNameSize = 32;
inline constexpr std::size_t kNsMessageSize = 40;
inline constexpr std::uint32_t kNsCreate = 0;
inline constexpr std::uint32_t kNsDestroy = 1;
/// VIRTIO_RPMSG_F_NS: the device supports name-service announcements.
inline constexpr unsigned kFeatureNs = 0;
/// virtio device id of rpmsg.
inline constexpr std::uint32_t kVirtioIdRpmsg = 7;
/// The kernel's buffer size (16 header + 496 payload).
inline constexpr std::uint32_t kDefaultBufferSize = 512;

struct Header {
  std::uint32_t src = 0;
  std::uint32_t dst = 0;
  std::uint32_t reserved = 0;
  std::uint16_t len = 0;
  std::uint16_t flags = 0;
};

inline void encode(const Header& h, std::span<std::byte, kHeaderSize> out) noexcept {
  std::memcpy(out.data() + 0, &h.src, 4);
  std::memcpy(out.data() + 4, &h.dst, 4);
  std::memcpy(out.data() + 8, &h.reserved, 4);
  std::memcpy(out.data() + 12, &h.len, 2);
  std::memcpy(out.data() + 14, &h.flags, 2);
}

inline Header decode_header(std::span<const std::byte, kHeaderSize> in) noexcept {
  Header h;
  std::memcpy(&h.src, in.data() + 0, 4);
  std::memcpy(&h.dst, in.data() + 4, 4);
  std::memcpy(&h.reserved, in.data() + 8, 4);
  std::memcpy(&h.len, in.data() + 12, 2);
  std::memcpy(&h.flags, in.data() + 14, 2);
  return h;
}

/// A name field (an endpoint's, an announcement's) up to its NUL, or all of it when it has none.
inline std::string_view name_view(const char (&name)[kNameSize]) noexcept {
  std::size_t n = 0;
  while (n < kNameSize && name[n] != '\0') ++n;
  return {name, n};
}

struct NsMessage {
  char name[kNameSize] = {};  ///< Always NUL-terminated once decoded.
  std::uint32_t addr = 0;
  std::uint32_t flags = 0;

  std::string_view name_view() const noexcept { return rpmsg::name_view(name); }
};

/// Encodes an announcement. kInvalidArgument if the name (without its NUL) is longer than 31 bytes.
[[nodiscard]] inline Status encode_ns(std::string_view name, std::uint32_t addr, std::uint32_t flags,
                                      std::span<std::byte, kNsMessageSize> out) noexcept {
  if (name.size() >= kNameSize) return Status::kInvalidArgument;
  std::memset(out.data(), 0, kNameSize);
  if (!name.empty()) std::memcpy(out.data(), name.data(), name.size());
  std::memcpy(out.data() + 32, &addr, 4);
  std::memcpy(out.data() + 36, &flags, 4);
  return Status::kOk;
}

/// Decodes an announcement received from the peer. kMalformed unless it is exactly 40 bytes with a NUL in
/// the name field and a known flag.
[[nodiscard]] inline Result<NsMessage> decode_ns(std::span<const std::byte> in) noexcept {
  if (in.size() != kNsMessageSize) return fail(Status::kMalformed);
  NsMessage m;
  std::memcpy(m.name, in.data(), kNameSize);
  if (std::memchr(m.name, '\0', kNameSize) == nullptr) return fail(Status::kMalformed);
  std::memcpy(&m.addr, in.data() + 32, 4);
  std::memcpy(&m.flags, in.data() + 36, 4);
  if (m.flags != kNsCreate && m.flags != kNsDestroy) return fail(Status::kMalformed);
  // A channel at "any address" cannot be written to (Linux takes such an announcement and makes a channel
  // whose writes fail with EINVAL): no peer that works announces it.
  if (m.addr == kAddrAny) return fail(Status::kMalformed);
  return m;
}

}  // namespace amp::rpmsg
