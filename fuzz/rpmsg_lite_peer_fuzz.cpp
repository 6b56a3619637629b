// SPDX-License-Identifier: BSD-3-Clause
// Fuzzes rpmsg::LiteDevice, the small device role, against a host that scribbles on shared memory: amp's
// driver role and a LiteDevice share one block; between their operations the input overwrites arbitrary
// bytes of the rings, the buffers and the vdev entry. Nothing may crash, hang or touch memory outside the
// block (ASan watches: the block is an exact-size heap allocation). Each input starts from the same state
// (see rpmsg_peer_fuzz.cpp, which does the same for rpmsg::Device in both roles).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "amp/metal/log.hpp"
#include "amp/rpmsg/device.hpp"
#include "amp/rpmsg/lite_device.hpp"
#include "amp/virtio/rsc_vdev.hpp"
#include "fuzz_input.hpp"
#include "rpmsg_world.hpp"

namespace {

using amp::Status;
using amp::rpmsg::kAddrAny;

constexpr std::size_t kSize = 0x50000;

struct World {
  std::byte* mem;
  amp::metal::IoRegion shm{std::span<std::byte>(mem, kSize), 0};
  amp::virtio::RscVdevTransport t1, t2;
  amp::fuzz::NullNotifier notifier;
  amp::rpmsg::DriverRoleStorage<16> s1;
  amp::rpmsg::LiteStorage<16> s2;
  amp::rpmsg::Device driver;
  amp::rpmsg::LiteDevice lite;
  amp::rpmsg::LiteEndpoint echo, quiet;
  amp::rpmsg::Endpoint host, bound;
  bool ok = false;

  explicit World(std::byte* block) : mem(block) {
    auto body = amp::fuzz::write_vdev(shm);
    if (!body) return;
    t1 = *amp::virtio::RscVdevTransport::open(*body);
    t2 = *amp::virtio::RscVdevTransport::open(*body);
    amp::rpmsg::DeviceConfig dc;
    dc.role = amp::rpmsg::Role::kDriver;
    dc.shm = shm;
    dc.transport = &t1;
    dc.notifier = &notifier;
    dc.buffer_pool = amp::fuzz::kBufferPool;
    dc.buffer_pool_size = amp::fuzz::kBufferPoolSize;
    dc.announce_timeout_ns = 0;
    if (driver.start(dc, s1) != Status::kOk) return;
    amp::rpmsg::LiteConfig lc;
    lc.shm = shm;
    lc.vdev = &t2;
    lc.notifier = &notifier;
    lc.announce_timeout_ns = 0;
    if (lite.start(lc, s2) != Status::kOk) return;
    (void)lite.create_endpoint(echo, "svc", 0x400, kAddrAny,
                               [](amp::rpmsg::LiteEndpoint& ep, const amp::rpmsg::LiteMessage& m) {
                                 amp::fuzz::read_all(m.payload);
                                 (void)ep.send_to(m.src, m.payload);
                               });
    (void)lite.create_endpoint(quiet, "", kAddrAny, 0x500, nullptr);
    (void)driver.create_endpoint(
        host, "", 0x500, 0x400,
        [](amp::rpmsg::Endpoint&, const amp::rpmsg::Message& m) { amp::fuzz::read_all(m.payload); });
    driver.set_name_service_handler([this](amp::rpmsg::Device& d, std::string_view name, std::uint32_t addr) {
      if (!bound.attached()) (void)d.create_endpoint(bound, name, kAddrAny, addr, nullptr);
    });
    ok = true;
  }
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  amp::fuzz::default_max_len(argc, argv, "-max_len=192");  // as rpmsg_peer_fuzz.cpp, for the same reason
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
      case 1: {  // the host writes up to 8 bytes somewhere in shared memory
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
        (void)w.lite.process();
        break;
      case 4:
        (void)w.host.try_send(std::span(payload, arg % sizeof payload));
        break;
      case 5:
        (void)w.quiet.send(std::span(payload, arg % sizeof payload));
        break;
      case 6: {  // a service made and withdrawn
        amp::rpmsg::LiteEndpoint e;
        (void)w.lite.create_endpoint(e, "tmp", kAddrAny, kAddrAny, nullptr);
        break;
      }
      case 7:  // the host's announcement of a name the remote has
        if (arg % 2 == 0) {
          amp::rpmsg::Endpoint e;
          (void)w.driver.create_endpoint(e, "svc", kAddrAny, kAddrAny, nullptr);
        } else {
          (void)w.echo.send(std::span(payload, arg % sizeof payload));
        }
        break;
    }
  }
  if (amp::fuzz::trace_file() != nullptr) {
    amp::fuzz::Digest d;
    d.add(w.mem, kSize);
    d.add(w.driver.stats())
        .add(w.driver.fault())
        .add(w.lite.stats())
        .add(w.lite.fault())
        .add(w.lite.running());
    d.add(w.bound.attached()).add(w.bound.remote_address()).add(w.echo.remote_address());
    amp::fuzz::trace(data, size, d.value());
  }
  return 0;
}
