// SPDX-License-Identifier: BSD-3-Clause
// Fuzzes resource-table parsing, visiting, write-back and the host's resource assignment with tables a
// firmware or a peer could hand us. The
// table sits in an exactly-sized heap buffer, so ASan reports any access outside it. Half of the inputs are
// raw bytes; the other half build a valid table with TableBuilder from the input (which must then parse)
// and corrupt some of its bytes, to reach deep into the entries.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "amp/rproc/resource_table.hpp"
#include "amp/rproc/resources.hpp"
#include "amp/virtio/ring.hpp"
#include "fuzz_input.hpp"

namespace {

using amp::fuzz::check;
using amp::fuzz::Input;

using amp::Status;
using amp::metal::IoRegion;
namespace rp = amp::rproc;

bool power_of_two(std::uint32_t v) {
  return v != 0 && (v & (v - 1)) == 0;
}

// Checks what parse promised and touches every byte it hands out.
struct Checker final : rp::ResourceVisitor {
  const rp::ResourceTable* table = nullptr;
  std::size_t visited = 0;
  std::uint32_t sum = 0;

  void touch(const IoRegion& body) {
    for (std::size_t i = 0; i < body.size(); ++i) {
      auto p = body.pointer_at(i);
      check(p.has_value());
      sum += static_cast<std::uint8_t>(**p);  // ASan: inside the table
    }
  }
  void named(const rp::RscName& n) { check(n.view().size() < rp::kRscNameSize); }
  Status on_carveout(std::uint32_t i, const rp::Carveout& c) noexcept override {
    check(table->entry(i)->type == rp::kRscCarveout);
    named(c.name);
    ++visited;
    return Status::kOk;
  }
  Status on_devmem(std::uint32_t i, const rp::Devmem& d) noexcept override {
    check(table->entry(i)->type == rp::kRscDevmem);
    named(d.name);
    ++visited;
    return Status::kOk;
  }
  Status on_trace(std::uint32_t i, const rp::Trace& t) noexcept override {
    check(table->entry(i)->type == rp::kRscTrace);
    named(t.name);
    ++visited;
    return Status::kOk;
  }
  Status on_vdev(std::uint32_t i, const rp::Vdev& v, IoRegion body) noexcept override {
    check(table->entry(i)->type == rp::kRscVdev);
    check(v.num_vrings >= 1 && v.num_vrings <= rp::kMaxVrings);
    for (const auto& q : v.rings()) {
      check(power_of_two(q.num) && q.num <= rp::kMaxVringNum);
      check(power_of_two(q.align) && q.align >= 4);
    }
    check(body.size() == amp::virtio::RscVdevTransport::body_size(v.num_vrings, v.config_len));
    check(body.size() + 4 <= table->entry(i)->size);
    touch(body);
    auto t = amp::virtio::RscVdevTransport::open(body);
    check(t.has_value() && t->queue_count() == v.num_vrings);
    ++visited;
    return Status::kOk;
  }
  Status on_vendor(std::uint32_t i, std::uint32_t type, IoRegion body) noexcept override {
    check(table->entry(i)->type == type && type >= rp::kRscVendorStart && type < rp::kRscVendorEnd);
    touch(body);
    ++visited;
    return Status::kOk;
  }
};

// The host's part: place what is at ANY in a small pool, check fixed addresses, assign notify ids. What it
// hands out must lie in the remote's memory; an error must name an entry.
void assign(const rp::ResourceTable& table, Input& in) {
  // Allocated once (a fresh 32 KiB per valid table cost a quarter of the run), zeros at each use.
  static amp::fuzz::Block block(0x8000);
  block.restore();
  const std::span<std::byte> remote(block.data(), block.size());
  const amp::metal::DeviceAddress base = (in.take<std::uint8_t>() & 1) != 0 ? 0x3000'0000 : 0;
  const IoRegion memory(remote, base);
  const std::size_t pool_at = in.take<std::uint16_t>() % remote.size();
  auto pool_region = memory.subregion(pool_at, remote.size() - pool_at);
  check(pool_region.has_value());
  rp::DeviceMemoryPool pool(*pool_region);
  const std::array<IoRegion, 1> regions{memory};
  rp::ResourceAssigner assigner(table, regions, pool);
  assigner.set_vendor_handler([](std::uint32_t, std::uint32_t, IoRegion body) {
    return body.size() % 2 == 0 ? Status::kOk : Status::kNotSupported;
  });
  auto r = assigner.run();
  check(pool.used() <= pool_region->size());
  if (!r) {
    check(r.error().entry < table.entry_count() && r.error().status != Status::kOk);
    return;
  }
  for (const rp::AssignedVdev& v : assigner.vdevs()) {
    for (std::uint32_t q = 0; q < v.vring_count; ++q) {
      auto layout = amp::virtio::RingLayout::compute(v.vrings[q].num, v.vrings[q].align);
      check(layout.has_value() && memory.offset_of(v.vrings[q].da, layout->size).has_value());
    }
  }
  for (const rp::TraceBuffer& t : assigner.traces()) {
    check(memory.offset_of(t.da, t.len).has_value());
    char text[64];
    (void)rp::read_trace(regions, t, text);
  }
}

// Parses `mem`; if valid, checks the layout, visits, writes back, parses again and assigns.
void exercise(std::vector<std::byte>& mem, Input& in) {
  const IoRegion region(mem, 0x2000'0000);
  auto rt = rp::ResourceTable::parse(region);
  if (!rt) {
    const auto& f = rt.error();
    check(f.error != rp::RscError::kNone && f.status == rp::to_status(f.error) && f.status != Status::kOk);
    check(rp::to_string(f.error) != nullptr);
    return;
  }
  // Every entry lies inside the table, after the offset array, and no two share a byte.
  const std::size_t offsets_end = rp::kRscHeaderSize + 4 * std::size_t{rt->entry_count()};
  for (std::uint32_t i = 0; i < rt->entry_count(); ++i) {
    const rp::RscEntry a = *rt->entry(i);
    check(a.offset % 4 == 0 && a.offset >= offsets_end && a.size >= 4 && a.size <= mem.size() - a.offset);
    for (std::uint32_t j = i + 1; j < rt->entry_count(); ++j) {
      const rp::RscEntry b = *rt->entry(j);
      check(a.offset + a.size <= b.offset || b.offset + b.size <= a.offset);
    }
  }
  Checker c;
  c.table = &*rt;
  check(rt->for_each(c).has_value());
  check(c.visited == rt->entry_count());

  // Write-backs keep the table valid and read back.
  for (std::uint32_t i = 0; i < rt->entry_count(); ++i) {
    const auto da = in.take<std::uint32_t>() % 0xFFFF'FFFFU;
    const auto pa = in.take<std::uint32_t>() % 0xFFFF'FFFFU;
    const std::uint32_t type = rt->entry(i)->type;
    check((rt->set_carveout_address(i, da, pa) == Status::kOk) == (type == rp::kRscCarveout));
    check((rt->set_trace_address(i, da) == Status::kOk) == (type == rp::kRscTrace));
    const Status v = rt->set_vring_address(i, in.take<std::uint8_t>() % 4, da);
    check(type == rp::kRscVdev || v == Status::kInvalidArgument);
    (void)rt->set_vring_notify_id(i, in.take<std::uint8_t>() % 4, pa);
  }
  auto again = rp::ResourceTable::parse(region);
  check(again.has_value() && again->entry_count() == rt->entry_count());
  assign(*again, in);
  Checker c2;
  c2.table = &*again;
  check(again->for_each(c2).has_value() && c2.visited == again->entry_count());

  // A peer scribbling after parse: the old layout must still keep every access inside the table.
  for (int k = 0; k < 4 && !in.done(); ++k) {
    const auto pos = in.take<std::uint16_t>();
    if (!mem.empty()) mem[pos % mem.size()] = static_cast<std::byte>(in.take<std::uint8_t>());
  }
  Checker c3;
  c3.table = &*rt;
  (void)rt->for_each(c3);
  for (std::uint32_t i = 0; i < rt->entry_count(); ++i) {
    (void)rt->set_vring_address(i, in.take<std::uint8_t>() % 9, 0x1000);
  }
}

std::string_view take_name(Input& in) {
  const std::size_t n = in.take<std::uint8_t>() % 40;  // some too long
  const std::size_t len = n < in.left() ? n : in.left();
  std::string_view s(reinterpret_cast<const char*>(in.here()), len);
  in.skip(len);
  return s;
}

void build_and_corrupt(Input& in) {
  std::vector<std::byte> scratch(in.take<std::uint16_t>() % 2048);
  rp::TableBuilder b(scratch);
  bool valid = true;  // whether every add was well-formed (then only kNoMemory may fail)
  const int count = in.take<std::uint8_t>() % 12;
  for (int k = 0; k < count && !in.done(); ++k) {
    Status s = Status::kOk;
    switch (in.take<std::uint8_t>() % 5) {
      case 0: {
        auto name = take_name(in);
        s = b.add_carveout(name, in.take<std::uint32_t>(), in.take<std::uint32_t>(), in.take<std::uint32_t>(),
                           in.take<std::uint32_t>());
        valid = valid && name.size() < rp::kRscNameSize;
        break;
      }
      case 1: {
        auto name = take_name(in);
        s = b.add_devmem(name, in.take<std::uint32_t>(), in.take<std::uint32_t>(), in.take<std::uint32_t>(),
                         0);
        valid = valid && name.size() < rp::kRscNameSize;
        break;
      }
      case 2: {
        auto name = take_name(in);
        s = b.add_trace(name, in.take<std::uint32_t>(), in.take<std::uint32_t>());
        valid = valid && name.size() < rp::kRscNameSize;
        break;
      }
      case 3: {
        amp::virtio::QueueInfo rings[rp::kMaxVrings + 1];
        const std::size_t n = in.take<std::uint8_t>() % (rp::kMaxVrings + 2);
        bool rings_ok = n >= 1 && n <= rp::kMaxVrings;
        for (std::size_t r = 0; r < n; ++r) {
          const std::uint32_t da = in.take<std::uint32_t>();
          rings[r] = {da == 0xFFFF'FFFFU ? amp::metal::kAnyAddress : da, 1U << (in.take<std::uint8_t>() % 14),
                      1U << (in.take<std::uint8_t>() % 17), in.take<std::uint32_t>()};
          rings_ok = rings_ok && rings[r].align >= 4 && rings[r].num <= rp::kMaxVringNum;
        }
        s = b.add_vdev({in.take<std::uint32_t>(), in.take<std::uint32_t>(), in.take<std::uint32_t>(),
                        in.take<std::uint8_t>(), std::span(rings, n)});
        valid = valid && rings_ok;
        break;
      }
      default: {
        const std::uint32_t type = in.take<std::uint16_t>() % 600;
        const std::size_t n = in.take<std::uint8_t>() % 64;
        const std::size_t len = n < in.left() ? n : in.left();
        s = b.add_vendor(type, std::as_bytes(std::span(in.here(), len)));
        in.skip(len);
        valid = valid && type >= rp::kRscVendorStart && type < rp::kRscVendorEnd;
        break;
      }
    }
    if (s != Status::kOk) {
      check(!valid || s == Status::kNoMemory);
      break;
    }
  }
  auto size = b.finish();
  if (!size) return;
  // Exactly sized, so that ASan sees an access one byte past the table.
  std::vector<std::byte> mem(scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(*size));
  check(rp::ResourceTable::parse(IoRegion(mem, 0)).has_value());  // the builder makes valid tables
  const int flips = in.take<std::uint8_t>() % 4;
  for (int k = 0; k < flips && !mem.empty(); ++k) {
    const auto pos = in.take<std::uint16_t>();
    mem[pos % mem.size()] = static_cast<std::byte>(in.take<std::uint8_t>());
  }
  exercise(mem, in);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  if ((in.take<std::uint8_t>() & 1) == 0) {
    // Raw: the next two bytes say how much of the rest is the table; the remainder drives write-backs.
    const std::size_t want = in.take<std::uint16_t>();
    const std::size_t len = want < in.left() ? want : in.left();
    std::vector<std::byte> mem(len);
    if (len != 0) std::memcpy(mem.data(), in.here(), len);
    in.skip(len);
    exercise(mem, in);
    return 0;
  }
  build_and_corrupt(in);
  return 0;
}
