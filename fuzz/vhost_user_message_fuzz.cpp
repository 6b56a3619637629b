// SPDX-License-Identifier: BSD-3-Clause
// Fuzzes the vhost-user message parsers with what a hostile front end may send: a header, a payload of any
// length and a descriptor count. Checks that a parsed memory table keeps its promises (1 to 8 regions, each
// non-empty, none wrapping, no two overlapping in guest or user addresses, as many descriptors as regions),
// that a translated address lies inside the region it came from, and that parsed ring fds agree with the
// descriptor count; and, through ASan, that no parser reads past the payload.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "amp/virtio/linux/vhost_user_message.hpp"
#include "fuzz_input.hpp"

namespace {

namespace vu = amp::virtio::vhost_user;
using amp::fuzz::check;

bool wraps(std::uint64_t start, std::uint64_t len) {
  return start + len < start;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  amp::fuzz::Input in(data, size);
  std::byte head[vu::kHeaderSize];
  for (std::byte& b : head) b = std::byte(in.take<std::uint8_t>());
  const auto fds = static_cast<std::size_t>(in.take<std::uint8_t>() % 10);
  const std::uint64_t probe_addr = in.take<std::uint64_t>();
  const std::uint64_t probe_len = in.take<std::uint16_t>();
  // The payload, in a block of its own exact size: ASan catches a read past it.
  std::vector<std::byte> payload(in.left());
  if (!payload.empty()) std::memcpy(payload.data(), in.here(), payload.size());

  auto h = vu::parse_header(std::span<const std::byte, vu::kHeaderSize>(head, vu::kHeaderSize));
  if (!h) return 0;
  check(h->size <= vu::kMaxPayload);
  check((h->flags & vu::kVersionMask) == vu::kVersion);
  const std::span<const std::byte> p(payload);

  if (auto t = vu::parse_memory_table(*h, p, fds)) {
    check(t->count >= 1 && t->count <= vu::kMaxRegions && fds == t->count);
    check(p.size() >= 8 + std::size_t{t->count} * 32);
    const auto regions = t->view();
    for (std::size_t i = 0; i < regions.size(); ++i) {
      const vu::MemoryRegion& r = regions[i];
      check(r.size != 0 && !wraps(r.guest_addr, r.size) && !wraps(r.user_addr, r.size) &&
            !wraps(r.mmap_offset, r.size));
      for (std::size_t j = 0; j < i; ++j) {
        const vu::MemoryRegion& o = regions[j];
        check(!(r.guest_addr < o.guest_addr + o.size && o.guest_addr < r.guest_addr + r.size));
        check(!(r.user_addr < o.user_addr + o.size && o.user_addr < r.user_addr + r.size));
      }
    }
    if (auto g = vu::guest_address(*t, probe_addr, probe_len)) {
      bool inside = false;
      for (const vu::MemoryRegion& r : regions) {
        if (probe_addr >= r.user_addr && probe_addr - r.user_addr <= r.size &&
            probe_len <= r.size - (probe_addr - r.user_addr) &&
            *g == r.guest_addr + (probe_addr - r.user_addr))
          inside = true;
      }
      check(inside);
    }
  }
  if (auto f = vu::parse_vring_fd(*h, p, fds)) {
    check(f->index <= vu::kVringIndexMask && fds == (f->has_fd ? 1U : 0U) && p.size() == 8);
  }
  if (auto a = vu::parse_vring_addr(*h, p)) check(p.size() == 40);
  if (auto s = vu::parse_vring_state(*h, p)) check(p.size() == 8);
  if (auto u = vu::parse_u64(*h, p)) check(p.size() == 8);
  (void)vu::to_string(h->request);
  return 0;
}
