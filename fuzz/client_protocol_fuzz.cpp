// SPDX-License-Identifier: BSD-3-Clause
// Fuzzes the decoder of ampd's client protocol (amp/client/protocol.hpp) with arbitrary packets, as a hostile
// client would send them. Checks that a packet is either refused or is exactly one message: decoded and
// encoded again, it gives back the very same bytes (every byte of a packet is one field's, so nothing was
// ignored or guessed), and the message it decoded to has a name that ends within its 32 bytes.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "amp/client/protocol.hpp"
#include "fuzz_input.hpp"

namespace proto = amp::client::protocol;
using amp::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> packet(reinterpret_cast<const std::byte*>(data), size);
  const auto m = proto::decode(packet);
  if (!m) {
    check(m.error() == amp::Status::kMalformed);
    return 0;
  }
  check(size <= proto::kMaxMessage);
  check(m->name.view().size() < amp::rpmsg::kNameSize);
  std::array<std::byte, proto::kMaxMessage> again{};
  const auto n = proto::encode(*m, again);
  check(n.has_value() && *n == size);
  check(std::memcmp(again.data(), data, size) == 0);
  return 0;
}
