// SPDX-License-Identifier: BSD-3-Clause
// Fuzzes VdevHost's bring-up over memory a remote controls: the remote's memory (an exact-size heap block, so
// ASan sees any access outside it) holds garbage from the input, and half the time a valid rpmsg table built
// from the input at an input-chosen place, with some bytes then corrupted; the table and pool addresses
// come from the input too. Bring-up must succeed or fail cleanly; when it succeeds, the vrings and buffers
// it chose lie inside the memory. (The rings' traffic is fuzz_rpmsg_peer's business.)
//
// Each input starts from the same memory: the block (allocated once, for speed) is put back to its pristine
// garbage pattern before the input writes into it. Nothing else outlives an input (each VdevHost is
// started and closed within it).
#include <pthread.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "amp/metal/log.hpp"
#include "amp/rproc/firmware_table.hpp"
#include "amp/rproc/linux/vdev_host.hpp"
#include "amp/virtio/ring.hpp"
#include "fuzz_input.hpp"

namespace {

using amp::fuzz::check;
using amp::fuzz::Input;
namespace rp = amp::rproc;

constexpr std::size_t kSize = 0x20000;
constexpr amp::metal::DeviceAddress kBase = 0x3ed0'0000;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // VdevHost starts a polling thread per bring-up. With the default 8 MiB stack, ASan clears 1 MiB of
  // shadow memory for each such thread when it ends, most of an input's time; the thread needs far less.
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) == 0) {
    (void)pthread_attr_setstacksize(&attr, std::size_t{512} << 10);
    (void)pthread_setattr_default_np(&attr);
    (void)pthread_attr_destroy(&attr);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  amp::metal::set_log_level(amp::metal::LogLevel::kOff);
  Input in(data, size);
  static amp::fuzz::Block block = [] {
    amp::fuzz::Block b(kSize);
    for (std::size_t i = 0; i < kSize; ++i) b.data()[i] = static_cast<std::byte>((i * 131 + 7) & 0xFF);
    b.snapshot();
    return b;
  }();
  block.restore();
  std::byte* const mem = block.data();
  const amp::metal::IoRegion memory(std::span<std::byte>(mem, kSize), kBase);

  rp::VdevHostConfig c;
  c.memory = {memory};
  const std::size_t table_at = (in.take<std::uint16_t>() % (kSize / 4)) * 4;
  c.table_da = kBase + table_at;
  c.table_size = sizeof(rp::RpmsgFirmwareTable) + in.take<std::uint8_t>() % 64;
  c.pool_da = kBase + in.take<std::uint32_t>() % (kSize + 0x1000);
  c.pool_size = in.take<std::uint32_t>() % (kSize + 0x1000);
  c.buffer_size = 64U * (1U + in.take<std::uint8_t>() % 16);
  c.event_idx = (in.take<std::uint8_t>() & 1) != 0;
  c.timeout = std::chrono::milliseconds(0);
  if ((in.take<std::uint8_t>() & 1) != 0 && table_at + sizeof(rp::RpmsgFirmwareTable) <= kSize) {
    rp::RpmsgFirmwareTableSpec spec;
    spec.vring_num = 1U << (in.take<std::uint8_t>() % 10);
    spec.vring_align = 1U << (2 + in.take<std::uint8_t>() % 12);
    if ((in.take<std::uint8_t>() & 1) != 0)
      spec.tx_da = static_cast<std::uint32_t>(kBase + in.take<std::uint16_t>());
    if ((in.take<std::uint8_t>() & 1) != 0)
      spec.rx_da = static_cast<std::uint32_t>(kBase + in.take<std::uint16_t>());
    const rp::RpmsgFirmwareTable table = rp::rpmsg_firmware_table(spec);
    std::memcpy(mem + table_at, &table, sizeof table);
    const int flips = in.take<std::uint8_t>() % 4;
    for (int k = 0; k < flips; ++k) {
      const std::size_t pos = table_at + in.take<std::uint8_t>() % sizeof table;
      mem[pos] = static_cast<std::byte>(in.take<std::uint8_t>());
    }
  }
  // The rest of the input: more garbage anywhere (a remote may leave anything in its memory).
  while (!in.done()) {
    const std::size_t pos = in.take<std::uint32_t>() % kSize;
    mem[pos] = static_cast<std::byte>(in.take<std::uint8_t>());
  }

  auto host = rp::VdevHost::start(c);
  if (!host) {
    check(!host.error().message.empty() && host.error().status != amp::Status::kOk);
    if (amp::fuzz::trace_file() != nullptr) {
      amp::fuzz::Digest d;
      d.add(host.error().status).add(host.error().message.data(), host.error().message.size());
      amp::fuzz::trace(data, size, d.add(mem, kSize).value());
    }
    return 0;
  }
  const rp::RpmsgPlan& plan = (*host)->plan();
  for (std::uint32_t q = 0; q < 2; ++q) {
    auto layout = amp::virtio::RingLayout::compute(plan.vdev.vrings[q].num, plan.vdev.vrings[q].align);
    check(layout.has_value() && memory.offset_of(plan.vdev.vrings[q].da, layout->size).has_value());
  }
  check(memory.offset_of(plan.buffers, plan.buffers_size).has_value());
  check(plan.buffers >= c.pool_da && plan.buffers + plan.buffers_size <= c.pool_da + c.pool_size);
  (*host)->close();
  if (amp::fuzz::trace_file() != nullptr) {
    // Not the memory: the host's polling thread may or may not have looked at the rings before close().
    amp::fuzz::Digest d;
    for (const amp::virtio::QueueInfo& q : plan.vdev.vrings)
      d.add(q.da).add(q.align).add(q.num).add(q.notify_id);
    d.add(plan.buffers).add(plan.buffers_size);
    amp::fuzz::trace(data, size, d.value());
  }
  return 0;
}
