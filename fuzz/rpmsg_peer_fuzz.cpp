// SPDX-License-Identifier: BSD-3-Clause
// Fuzzes both rpmsg roles against a peer that scribbles on shared memory: a driver and a device share one
// block (the OpenAMP PC layout); between their operations the input overwrites arbitrary bytes of the rings,
// the buffers and the vdev entry. Nothing may crash, hang or touch memory outside the block (ASan watches:
// the block is an exact-size heap allocation).
//
// Each input starts from the same state: the block (allocated once, for speed) is put back to all zeros,
// then a new World is built on it as before: the vdev table written, both roles started, the endpoints
// created and announced. Nothing else outlives an input (the Devices, their storage and the endpoints are
// the World's; the library keeps no state between Devices), so an input's outcome depends on it alone.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "amp/metal/log.hpp"
#include "amp/rpmsg/device.hpp"
#include "amp/virtio/rsc_vdev.hpp"
#include "fuzz_input.hpp"
#include "rpmsg_world.hpp"

namespace {

using amp::Status;

constexpr std::size_t kSize = 0x50000;

using amp::fuzz::NullNotifier;
using amp::fuzz::read_all;

struct World {
  std::byte* mem;
  amp::metal::IoRegion shm{std::span<std::byte>(mem, kSize), 0};
  amp::virtio::RscVdevTransport t1, t2;
  NullNotifier notifier;
  amp::rpmsg::DeviceStorage<16> s1, s2;  // small rings: cheap to start, and they wrap often
  amp::rpmsg::Device driver, device;
  amp::rpmsg::Endpoint a, b, c;
  bool ok = false;

  explicit World(std::byte* block) : mem(block) {
    auto body = amp::fuzz::write_vdev(shm);
    if (!body) return;
    t1 = *amp::virtio::RscVdevTransport::open(*body);
    t2 = *amp::virtio::RscVdevTransport::open(*body);
    amp::rpmsg::DeviceConfig dc;
    dc.shm = shm;
    dc.notifier = &notifier;
    dc.buffer_pool = amp::fuzz::kBufferPool;
    dc.buffer_pool_size = amp::fuzz::kBufferPoolSize;
    dc.start_timeout_ns = 0;
    dc.announce_timeout_ns = 0;
    dc.transport = &t1;
    dc.role = amp::rpmsg::Role::kDriver;
    if (driver.start(dc, s1) != Status::kOk) return;
    dc.transport = &t2;
    dc.role = amp::rpmsg::Role::kDevice;
    if (device.start(dc, s2) != Status::kOk) return;
    auto echo = [](amp::rpmsg::Endpoint& ep, const amp::rpmsg::Message& m) { (void)ep.try_send(m.payload); };
    (void)device.create_endpoint(a, "svc", 0x400, amp::rpmsg::kAddrAny, echo);
    (void)driver.create_endpoint(
        b, "", 0x500, 0x400,
        [](amp::rpmsg::Endpoint&, const amp::rpmsg::Message& m) { read_all(m.payload); });
    driver.set_name_service_handler([this](amp::rpmsg::Device& d, std::string_view name, std::uint32_t addr) {
      if (!c.attached()) (void)d.create_endpoint(c, name, amp::rpmsg::kAddrAny, addr, nullptr);
    });
    ok = true;
  }
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  // Each operation is real library work (~3 us here under ASan, UBSan and libFuzzer's tracing), so the rate
  // falls with the input's length: inputs of up to 192 bytes (48 operations) reach the coverage that 4 KiB
  // ones reached (docs/reliability.md) at several times their rate.
  amp::fuzz::default_max_len(argc, argv, "-max_len=192");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  amp::metal::set_log_level(amp::metal::LogLevel::kOff);
  static amp::fuzz::Block block(kSize);  // all zeros: the pristine state
  block.restore();
  World w(block.data());
  if (!w.ok) return 0;
  amp::fuzz::Input in(data, size);
  std::byte payload[600];
  std::memset(payload, 0x42, sizeof payload);
  while (in.left() >= 4) {
    const auto op = in.take<std::uint8_t>();
    const std::uint32_t arg = in.take<std::uint16_t>() | std::uint32_t{in.take<std::uint8_t>()} << 16;
    switch (op % 8) {
      case 0:
      case 1: {  // the peer writes up to 8 bytes somewhere in shared memory
        const std::size_t n = std::min<std::size_t>(op / 8 % 8 + 1, in.left());
        const std::size_t off = arg % kSize;
        std::memcpy(w.mem + off, in.here(), std::min(n, kSize - off));
        in.skip(n);
        break;
      }
      case 2:
        (void)w.driver.process(arg % 2 == 0);
        break;
      case 3:
        (void)w.device.process(arg % 2 == 0);
        break;
      case 4:
        (void)w.b.try_send(std::span(payload, arg % sizeof payload));
        break;
      case 5:
        (void)w.a.send_to(0x500, std::span(payload, arg % sizeof payload), 0);
        break;
      case 6: {  // zero-copy, kept or dropped
        auto buf = (arg % 2 == 0 ? w.a : w.b).get_tx_buffer(0);
        if (buf && arg % 4 == 0)
          (void)w.b.send_nocopy(*buf, std::min<std::size_t>(arg % 512, buf->payload().size()));
        break;
      }
      case 7: {
        amp::rpmsg::Endpoint e;
        (void)w.device.create_endpoint(e, "tmp", amp::rpmsg::kAddrAny, amp::rpmsg::kAddrAny, nullptr);
        break;
      }
    }
  }
  if (amp::fuzz::trace_file() != nullptr) {
    amp::fuzz::Digest d;
    d.add(w.mem, kSize);
    for (const amp::rpmsg::Device* dev : {&w.driver, &w.device}) {
      d.add(dev->stats()).add(dev->fault()).add(dev->running());
    }
    d.add(w.c.attached()).add(w.c.remote_address()).add(w.b.remote_address());
    amp::fuzz::trace(data, size, d.value());
  }
  return 0;
}
