// SPDX-License-Identifier: BSD-3-Clause
// RPMsg on the wire, byte-compatible with the Linux kernel's virtio_rpmsg_bus and OpenAMP.
//
//   header (16 bytes, little-endian, packed): le32 src; le32 dst; le32 reserved; le16 len; le16 flags;
//   then `len` bytes of payload.
//   name-service message (40 bytes), sent to address 53: char name[32] (NUL-terminated); le32 addr;
//   le32 flags (0 = create, 1 = destroy).
//   buffer sizes (VIRTIO_RPMSG_F_BUFSZ, feature bit 1), in the rpmsg vdev's config space, 11 bytes, packed:
//   u8 version (1); le16 size (11, the structure's own); le32 txbuf_size; le32 rxbuf_size. Both sizes are
//   the device's (the remote's) view, header included: txbuf_size is the size of the buffers it sends in
//   (the driver's receive buffers), rxbuf_size of those it receives in. The device declares them (in the
//   resource table's vdev config); the driver reads them when it acknowledges the bit and carves its buffers
//   to those sizes; without the bit both are 512. This is `struct virtio_rpmsg_config` as applied to Linux's
//   rpmsg-next on 2026-09-04 (Tanmay Shah's series "rpmsg: virtio: ... get buffer size from config space",
//   include/linux/rpmsg/virtio_rpmsg.h, commit ca96ea25 there; the series went through three layouts in
//   review, 66, 16 and 13 bytes, before this one). Linux's fields are __virtio16/__virtio32: for a legacy
//   remoteproc vdev, the CPUs' own order, little-endian on every core amp runs on, as the rest of the table.
//   NuttX's OpenAMP uses bit 1 for a name-service acknowledgement (its sizes, 64 bytes from offset 0, under
//   its bit 2): see decode_buffer_sizes() for how amp tells the two apart.
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
/// VIRTIO_RPMSG_F_BUFSZ: the device declares its buffer sizes in its config space (BufferSizes).
inline constexpr unsigned kFeatureBufferSizes = 1;
/// The largest buffer a header's 16-bit length can fill; amp's buffers are also a multiple of 8 bytes, so
/// that each one laid after another stays aligned for the header's words.
inline constexpr std::uint32_t kMaxBufferSize = kHeaderSize + 0xFFFF;
inline constexpr std::uint32_t kBufferSizeAlign = 8;

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

/// The buffer sizes a device declares (VIRTIO_RPMSG_F_BUFSZ), header included, from the device's side.
struct BufferSizes {
  std::uint32_t tx = kDefaultBufferSize;  ///< The device sends in these: the driver's receive buffers.
  std::uint32_t rx = kDefaultBufferSize;  ///< The device receives in these: the driver's send buffers.
};
inline constexpr std::size_t kBufferSizesConfigSize = 11;
inline constexpr std::uint8_t kBufferSizesVersion = 1;

/// Whether `size` is a buffer size amp uses: room for the header and at least one byte, at most
/// kMaxBufferSize, a multiple of kBufferSizeAlign.
constexpr bool valid_buffer_size(std::uint32_t size) noexcept {
  return size > kHeaderSize && size <= kMaxBufferSize && size % kBufferSizeAlign == 0;
}

/// The config-space bytes that declare `sizes`.
inline void encode_buffer_sizes(const BufferSizes& sizes,
                                std::span<std::byte, kBufferSizesConfigSize> out) noexcept {
  const std::uint16_t size = kBufferSizesConfigSize;
  out[0] = std::byte{kBufferSizesVersion};
  std::memcpy(out.data() + 1, &size, 2);
  std::memcpy(out.data() + 3, &sizes.tx, 4);
  std::memcpy(out.data() + 7, &sizes.rx, 4);
}

/// The two size fields of a declaration as they are, unchecked (for a message about one decode refused).
inline BufferSizes buffer_size_fields(std::span<const std::byte, kBufferSizesConfigSize> in) noexcept {
  BufferSizes s;
  std::memcpy(&s.tx, in.data() + 3, 4);
  std::memcpy(&s.rx, in.data() + 7, 4);
  return s;
}

/// Reads a device's declaration from its config space `in` (all of it, as long as the vdev says; read once
/// by the caller). kNotFound when the bytes are not a version-1 declaration at all (shorter than 11 bytes,
/// another version, another size field: a device that gives bit 1 another meaning, as NuttX's OpenAMP
/// does): the driver then leaves the bit unacknowledged and uses 512-byte buffers. kMalformed when it is
/// one but a size is one amp cannot use (valid_buffer_size()): the driver refuses to start.
[[nodiscard]] inline Result<BufferSizes> decode_buffer_sizes(std::span<const std::byte> in) noexcept {
  if (in.size() < kBufferSizesConfigSize) return fail(Status::kNotFound);
  std::uint16_t size = 0;
  std::memcpy(&size, in.data() + 1, 2);
  if (in[0] != std::byte{kBufferSizesVersion} || size != kBufferSizesConfigSize)
    return fail(Status::kNotFound);
  const BufferSizes s = buffer_size_fields(in.first<kBufferSizesConfigSize>());
  if (!valid_buffer_size(s.tx) || !valid_buffer_size(s.rx)) return fail(Status::kMalformed);
  return s;
}

}  // namespace amp::rpmsg
