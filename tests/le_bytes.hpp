// SPDX-License-Identifier: BSD-3-Clause
// Little-endian bytes written field by field: what tests compare wire layouts with (resource tables,
// vhost-user messages).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace amp::testing {

struct LeBytes {
  std::vector<std::byte> v;
  LeBytes& u8(std::uint8_t x) {
    v.push_back(std::byte(x));
    return *this;
  }
  LeBytes& u32(std::uint32_t x) {
    for (int i = 0; i < 4; ++i) v.push_back(std::byte(static_cast<std::uint8_t>(x >> (8 * i))));
    return *this;
  }
  LeBytes& u64(std::uint64_t x) {
    return u32(static_cast<std::uint32_t>(x)).u32(static_cast<std::uint32_t>(x >> 32));
  }
  /// A NUL-padded char[width] (a resource table's 32-byte names).
  LeBytes& name(std::string_view s, std::size_t width = 32) {
    for (std::size_t i = 0; i < width; ++i)
      v.push_back(std::byte(i < s.size() ? static_cast<std::uint8_t>(s[i]) : 0));
    return *this;
  }
};

}  // namespace amp::testing
