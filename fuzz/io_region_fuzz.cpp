// SPDX-License-Identifier: BSD-3-Clause
// Fuzzes IoRegion translation with arbitrary page tables and queries, such as a peer could make us perform
// with device addresses and lengths read from shared memory. Checks that every successful translation is
// consistent and inside the region (ASan reports any access outside it).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "amp/metal/io_region.hpp"
#include "fuzz_input.hpp"

namespace {

using amp::fuzz::check;
using amp::fuzz::Input;

void exercise(const amp::metal::IoRegion& r, Input& in) {
  using amp::metal::DeviceAddress;
  for (int i = 0; i < 16 && !in.done(); ++i) {
    const auto da = in.take<DeviceAddress>();
    const auto len = static_cast<std::size_t>(in.take<std::uint16_t>());
    if (auto off = r.offset_of(da, len)) {
      check(*off <= r.size() && len <= r.size() - *off);
      auto back = r.device_address_of(*off, len);
      check(back.has_value() && *back == da);
      auto p = r.pointer_of(da, len);
      check(p.has_value());
      if (len != 0) {
        std::memset(*p, 0xa5, len);  // ASan: must stay inside the region
      }
      if (auto w = r.load<std::uint32_t>(*off)) (void)*w;
    }
    const auto offset = static_cast<std::size_t>(in.take<std::uint32_t>());
    if (auto d = r.device_address_of(offset, len)) {
      // Pages may alias (two pages answering to one device address), so the way back may find another
      // offset; it must find one that answers to the same address.
      auto off = r.offset_of(*d, len);
      check(off.has_value());
      auto again = r.device_address_of(*off, len);
      check(again.has_value() && *again == *d);
    }
    std::byte buf[64];
    const std::size_t n = len % sizeof buf;
    if (r.read(offset, std::span<std::byte>(buf, n)) == amp::Status::kOk) check(offset + n <= r.size());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  const auto mem_size = static_cast<std::size_t>(in.take<std::uint16_t>() % 4097);
  std::vector<std::byte> mem(mem_size);
  const bool paged = (in.take<std::uint8_t>() & 1) != 0;
  if (!paged) {
    const amp::metal::IoRegion r(mem, in.take<amp::metal::DeviceAddress>());
    exercise(r, in);
    return 0;
  }
  const unsigned shift = 1 + in.take<std::uint8_t>() % 12;
  std::vector<amp::metal::DeviceAddress> pages(((mem_size + (std::size_t{1} << shift) - 1) >> shift) + 1);
  for (auto& p : pages) {
    // Mostly contiguous pages with occasional jumps, so that multi-page ranges both pass and fail.
    const auto step = in.take<std::uint8_t>();
    p = (&p == pages.data())
            ? in.take<amp::metal::DeviceAddress>()
            : (step < 200 ? *(&p - 1) + (std::uint64_t{1} << shift) : in.take<amp::metal::DeviceAddress>());
  }
  auto r = amp::metal::IoRegion::paged(mem, pages, shift);
  if (!r) return 0;
  exercise(*r, in);
  const auto sub_off = static_cast<std::size_t>(in.take<std::uint16_t>());
  const auto sub_len = static_cast<std::size_t>(in.take<std::uint16_t>());
  if (auto sub = r->subregion(sub_off, sub_len)) exercise(*sub, in);
  return 0;
}
