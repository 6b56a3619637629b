// SPDX-License-Identifier: BSD-3-Clause
#include "amp/client/protocol.hpp"

#include <cstring>

namespace amp::client::protocol {

// A kReply carries an amp::Status as its number: these numbers are the wire's, so they may not change (a new
// Status goes at the end, and a peer that does not know it refuses the reply).
static_assert(static_cast<int>(Status::kOk) == 0 && static_cast<int>(Status::kInvalidArgument) == 1 &&
              static_cast<int>(Status::kNotFound) == 6 && static_cast<int>(Status::kAlreadyExists) == 7 &&
              static_cast<int>(Status::kBusy) == 8 && static_cast<int>(Status::kWouldBlock) == 9 &&
              static_cast<int>(Status::kTimeout) == 10 && static_cast<int>(Status::kClosed) == 11 &&
              static_cast<int>(Status::kMalformed) == 13 && static_cast<int>(Status::kTooLarge) == 14 &&
              static_cast<int>(Status::kNotSupported) == 15 &&
              static_cast<int>(Status::kPermissionDenied) == 16 && static_cast<int>(Status::kInternal) == 18);

Result<Name> Name::from(std::string_view s) noexcept {
  if (s.size() >= rpmsg::kNameSize || s.find('\0') != std::string_view::npos) {
    return unexpected(Status::kInvalidArgument);
  }
  Name n;
  std::memcpy(n.bytes_, s.data(), s.size());
  return n;
}

std::string_view Name::view() const noexcept {
  const void* nul = std::memchr(bytes_, '\0', sizeof bytes_);
  return {bytes_,
          nul != nullptr ? static_cast<std::size_t>(static_cast<const char*>(nul) - bytes_) : sizeof bytes_};
}

std::size_t body_size(Type type) noexcept {
  switch (type) {
    case Type::kHello:
      return 8;
    case Type::kList:
      return 4;
    case Type::kWait:
    case Type::kCreate:
    case Type::kService:
    case Type::kRemote:
      return 8 + rpmsg::kNameSize;
    case Type::kOpen:
      return 16 + rpmsg::kNameSize;
    case Type::kReply:
      return 16;
  }
  return 0;
}

// Field by field, little-endian (the hosts amp runs on are; memcpy keeps unaligned packets legal).
struct Codec {
  std::byte* out = nullptr;
  const std::byte* in = nullptr;
  std::size_t at = 0;

  void put(std::uint32_t v) noexcept {
    std::memcpy(out + at, &v, 4);
    at += 4;
  }
  void put(const Name& n) noexcept {
    std::memcpy(out + at, n.bytes_, sizeof n.bytes_);
    at += sizeof n.bytes_;
  }
  std::uint32_t u32() noexcept {
    std::uint32_t v = 0;
    std::memcpy(&v, in + at, 4);
    at += 4;
    return v;
  }
  // false when the 32 bytes hold no NUL.
  bool name(Name& n) noexcept {
    std::memcpy(n.bytes_, in + at, sizeof n.bytes_);
    at += sizeof n.bytes_;
    return std::memchr(n.bytes_, '\0', sizeof n.bytes_) != nullptr;
  }
};

Result<std::size_t> encode(const Message& m, std::span<std::byte> out) noexcept {
  const std::size_t body = body_size(m.type);
  if (body == 0) return unexpected(Status::kInvalidArgument);
  if (out.size() < kHeaderSize + body) return unexpected(Status::kTooLarge);
  const std::uint16_t magic = kMagic;
  std::memcpy(out.data(), &magic, 2);
  out[2] = std::byte{kVersion};
  out[3] = static_cast<std::byte>(m.type);
  Codec c{out.data(), nullptr, 4};
  c.put(m.id);
  switch (m.type) {
    case Type::kHello:
      c.put(m.min_version);
      c.put(m.max_version);
      break;
    case Type::kList:
      c.put(m.remote);
      break;
    case Type::kWait:
      c.put(m.remote);
      c.put(m.timeout_ms);
      c.put(m.name);
      break;
    case Type::kOpen:
      c.put(m.remote);
      c.put(m.flags);
      c.put(m.local);
      c.put(m.dst);
      c.put(m.name);
      break;
    case Type::kCreate:
      c.put(m.remote);
      c.put(m.local);
      c.put(m.name);
      break;
    case Type::kService:
      c.put(m.remote);
      c.put(m.dst);
      c.put(m.name);
      break;
    case Type::kRemote:
      c.put(m.remote);
      c.put(m.state);
      c.put(m.name);
      break;
    case Type::kReply:
      c.put(static_cast<std::uint32_t>(m.status));
      c.put(m.value);
      c.put(m.local);
      c.put(m.dst);
      break;
  }
  return c.at;
}

Result<Message> decode(std::span<const std::byte> packet) noexcept {
  if (packet.size() < kHeaderSize) return unexpected(Status::kMalformed);
  std::uint16_t magic = 0;
  std::memcpy(&magic, packet.data(), 2);
  if (magic != kMagic || packet[2] != std::byte{kVersion}) return unexpected(Status::kMalformed);
  Message m;
  m.type = static_cast<Type>(packet[3]);
  const std::size_t body = body_size(m.type);
  if (body == 0 || packet.size() != kHeaderSize + body) return unexpected(Status::kMalformed);
  Codec c{nullptr, packet.data(), 4};
  m.id = c.u32();
  bool named = true;
  switch (m.type) {
    case Type::kHello:
      m.min_version = c.u32();
      m.max_version = c.u32();
      if (m.min_version > m.max_version) return unexpected(Status::kMalformed);
      break;
    case Type::kList:
      m.remote = c.u32();
      break;
    case Type::kWait:
      m.remote = c.u32();
      m.timeout_ms = c.u32();
      named = c.name(m.name) && !m.name.empty();
      break;
    case Type::kOpen:
      m.remote = c.u32();
      m.flags = c.u32();
      m.local = c.u32();
      m.dst = c.u32();
      named = c.name(m.name) && m.flags == 0 && (!m.name.empty() || m.dst != rpmsg::kAddrAny);
      break;
    case Type::kCreate:
      m.remote = c.u32();
      m.local = c.u32();
      named = c.name(m.name) && !m.name.empty();
      break;
    case Type::kService:
      m.remote = c.u32();
      m.dst = c.u32();
      named = c.name(m.name) && !m.name.empty();
      break;
    case Type::kRemote:
      m.remote = c.u32();
      m.state = c.u32();
      named = c.name(m.name) && !m.name.empty();
      break;
    case Type::kReply: {
      const std::uint32_t status = c.u32();
      if (status > static_cast<std::uint32_t>(Status::kInternal)) return unexpected(Status::kMalformed);
      m.status = static_cast<Status>(status);
      m.value = c.u32();
      m.local = c.u32();
      m.dst = c.u32();
      break;
    }
  }
  if (!named) return unexpected(Status::kMalformed);
  return m;
}

}  // namespace amp::client::protocol
