// SPDX-License-Identifier: BSD-3-Clause
// ampd's client protocol, version 1 (docs/ampd-protocol.md): what a client process and the broker say to
// each other over ampd's UNIX socket, one message per SOCK_SEQPACKET packet (the packet is the framing).
//
//   header (8 bytes, little-endian): le16 magic 0x4D41 ("AM"); u8 version (1); u8 type; le32 id (the
//   client's; the reply to a request carries the same id).
//   then the type's body, of the size the type fixes: nothing more, nothing less.
//
// Requests (client -> ampd) and their bodies:
//   kHello   le32 min_version, le32 max_version: the first message; ampd answers with the version it speaks.
//   kList    le32 remote: that remote (kAllRemotes: every one) and the services announced on it: per remote
//            a kRemote and then its kService messages, then the kReply that ends the list.
//   kWait    le32 remote, le32 timeout_ms, char name[32]: a kService once the service is announced there
//            (at once if it is), then the kReply; kTimeout in the reply if it was not within timeout_ms.
//   kOpen    le32 remote, le32 flags (0), le32 local, le32 dst, char name[32]: an endpoint on the remote,
//            bound to the service `name` (dst kAddrAny: the address it was announced at) or, with no name, to
//            `dst`; at `local` (kAddrAny: ampd picks one). Its descriptor comes with the kReply.
//   kCreate  le32 remote, le32 local, char name[32]: a local endpoint that ampd announces to the remote under
//            `name`; it binds to whoever writes first. Its descriptor comes with the kReply.
// From ampd:
//   kReply   le32 status (amp::Status as a number), le32 value (kHello: the version; kOpen and kCreate: the
//            MTU, the largest payload a write may carry), le32 local, le32 remote address (kOpen, kCreate).
//   kService le32 remote, le32 addr, char name[32].
//   kRemote  le32 remote, le32 state (amp::rproc::State as a number), char name[32] (from ampd's config).
// Names are NUL-terminated within their 32 bytes (rpmsg's own rule), and not empty in kWait, kCreate,
// kService and kRemote; a kOpen without a name needs a dst. kHello's min_version is at most its max_version;
// a kReply's status is one amp::Status knows. A packet that is not exactly one of these (a size, magic,
// version, type, a name or a flag out of place) is refused with kMalformed and nothing else happens.
//
// Thread-safety: constants and pure functions only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "amp/metal/result.hpp"
#include "amp/rpmsg/wire.hpp"

namespace amp::client::protocol {

inline constexpr std::uint16_t kMagic = 0x4D41;
inline constexpr std::uint8_t kVersion = 1;
inline constexpr std::size_t kHeaderSize = 8;
/// The largest packet of this version (kOpen's); a reader's buffer of this size takes any of them.
inline constexpr std::size_t kMaxMessage = kHeaderSize + 16 + rpmsg::kNameSize;
/// kList's remote for "every remote".
inline constexpr std::uint32_t kAllRemotes = 0xFFFFFFFF;

enum class Type : std::uint8_t {
  kHello = 1,
  kList = 2,
  kWait = 3,
  kOpen = 4,
  kCreate = 5,
  kReply = 0x80,
  kService = 0x81,
  kRemote = 0x82,
};

/// A name as the protocol carries it: up to 31 bytes and its NUL.
class Name {
 public:
  Name() noexcept = default;
  /// kInvalidArgument for a name of 32 bytes or more, or with a NUL inside.
  [[nodiscard]] static Result<Name> from(std::string_view s) noexcept;
  std::string_view view() const noexcept;
  bool empty() const noexcept { return bytes_[0] == '\0'; }
  const char* data() const noexcept { return bytes_; }

 private:
  friend struct Codec;
  char bytes_[rpmsg::kNameSize] = {};
};

/// Any message, decoded: the fields its type uses are set, the others left at their defaults.
struct Message {
  Type type = Type::kHello;
  std::uint32_t id = 0;
  // kHello
  std::uint32_t min_version = kVersion;
  std::uint32_t max_version = kVersion;
  // kList, kWait, kOpen, kCreate, kService
  std::uint32_t remote = 0;
  // kWait
  std::uint32_t timeout_ms = 0;
  // kRemote
  std::uint32_t state = 0;
  // kOpen, kCreate; kService's addr and kReply's remote address are `dst`
  std::uint32_t flags = 0;
  std::uint32_t local = rpmsg::kAddrAny;
  std::uint32_t dst = rpmsg::kAddrAny;
  Name name{};
  // kReply
  Status status = Status::kOk;
  std::uint32_t value = 0;
};

/// The body size `type` fixes; 0 for a type this version does not know.
std::size_t body_size(Type type) noexcept;

/// Writes `m` into `out` (at least kHeaderSize + body_size(m.type) bytes): that many bytes, or
/// kInvalidArgument for an unknown type and kTooLarge for a buffer too small.
[[nodiscard]] Result<std::size_t> encode(const Message& m, std::span<std::byte> out) noexcept;

/// Reads one packet. kMalformed for anything that is not exactly a message of this version (see above).
[[nodiscard]] Result<Message> decode(std::span<const std::byte> packet) noexcept;

}  // namespace amp::client::protocol
