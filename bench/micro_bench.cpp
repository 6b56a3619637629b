// SPDX-License-Identifier: BSD-3-Clause
// Micro-benchmarks of the hot paths, in one process (Google Benchmark): IoRegion translation, a virtqueue
// round trip through both roles, an rpmsg send plus receive through the in-memory loopback, and that receive
// against the number of endpoints (dispatch).
#include <benchmark/benchmark.h>

#include <array>
#include <memory>
#include <optional>
#include <vector>

#include "amp/metal/io_region.hpp"
#include "amp/rpmsg/device.hpp"
#include "amp/virtio/rsc_vdev.hpp"
#include "amp/virtio/virtqueue.hpp"

namespace {

using amp::Status;
using amp::metal::IoRegion;

void BM_IoRegionTranslate(benchmark::State& state) {
  std::vector<std::byte> mem(1 << 20);
  const IoRegion r(mem, 0x8000'0000);
  std::uint64_t da = 0x8000'0000;
  for (auto _ : state) {
    auto p = r.pointer_of(da, 512);
    benchmark::DoNotOptimize(p);
    da = 0x8000'0000 + ((da + 4096) & 0xFFFFF);
  }
}
BENCHMARK(BM_IoRegionTranslate);

void BM_VirtqueueRoundTrip(benchmark::State& state) {
  alignas(4096) static std::array<std::byte, 64 * 1024> mem{};
  const IoRegion shm(mem, 0);
  amp::virtio::QueueConfig c;
  c.ring = *shm.subregion(0, amp::virtio::RingLayout::compute(256, 16)->size);
  c.buffers = shm;
  c.num = 256;
  c.align = 16;
  c.event_idx = true;
  std::array<amp::virtio::DriverQueue::Slot, 256> slots{};
  std::array<std::uint64_t, amp::virtio::DeviceQueue::in_flight_words(256)> in_flight{};
  amp::virtio::DriverQueue driver;
  amp::virtio::DeviceQueue device;
  if (driver.init(c, slots) != Status::kOk || device.init(c, in_flight) != Status::kOk)
    state.SkipWithError("init");
  const amp::virtio::Buffer b{0x8000, 512, true};
  amp::virtio::Buffer out[1];
  for (auto _ : state) {
    auto h = driver.add(std::span(&b, 1));
    amp::virtio::DeviceQueue::Chain chain;
    (void)device.pop_available(chain, out);
    (void)device.push_used(chain.head, 64);
    amp::virtio::DriverQueue::Used u;
    (void)driver.pop_used(u);
    benchmark::DoNotOptimize(h);
  }
}
BENCHMARK(BM_VirtqueueRoundTrip);

class NullNotifier final : public amp::rpmsg::Notifier {
 public:
  Status notify(std::uint32_t) noexcept override { return Status::kOk; }
};

/// A driver and a device over one in-memory vdev, both started, in one thread (no notifications needed:
/// the benchmark calls process() itself). The device indexes its endpoints in `index` when given one (an
/// empty one: no index, every endpoint found by walking the list), else in its inline index.
struct Pair {
  struct alignas(4096) Block {
    std::byte bytes[0x400000];  // 4 MiB: room for a pool of 64-KiB buffers
  };
  /// `buffer_size`: declared by the vdev (VIRTIO_RPMSG_F_BUFSZ) when not 512; then as many buffers each way
  /// (up to the ring's 256) as the pool holds: 16 of 64 KiB.
  explicit Pair(bool notify, std::optional<std::span<amp::rpmsg::AddressIndex::Slot>> index = {},
                std::uint32_t buffer_size = amp::rpmsg::kDefaultBufferSize)
      : block(std::make_unique<Block>()),
        device(index ? std::make_unique<amp::rpmsg::Device>(*index)
                     : std::make_unique<amp::rpmsg::Device>()) {
    const IoRegion shm(std::span<std::byte>(block->bytes, sizeof block->bytes), 0);
    const std::array<amp::virtio::QueueInfo, 2> rings{amp::virtio::QueueInfo{0x4000, 0x1000, 256, 1},
                                                      amp::virtio::QueueInfo{0x8000, 0x1000, 256, 2}};
    std::array<std::byte, amp::rpmsg::kBufferSizesConfigSize> config{};
    amp::virtio::RscVdev::Spec spec{7, 0, 1U | (1U << 29), 0, rings};
    const bool declared = buffer_size != amp::rpmsg::kDefaultBufferSize;
    if (declared) {
      amp::rpmsg::encode_buffer_sizes({buffer_size, buffer_size}, config);
      spec.device_features |= 1U << amp::rpmsg::kFeatureBufferSizes;
      spec.config_len = amp::rpmsg::kBufferSizesConfigSize;
      spec.config = config;
    }
    auto body = *amp::virtio::write_single_vdev_table(*shm.subregion(0, 0x4000), spec);
    t1 = *amp::virtio::RscVdevTransport::open(body);
    t2 = *amp::virtio::RscVdevTransport::open(body);
    amp::rpmsg::DeviceConfig dc;
    dc.shm = shm;
    dc.notifier = &n;
    dc.buffer_pool = 0x10000;
    dc.buffer_pool_size = declared ? sizeof block->bytes - 0x10000 : 0x40000;
    dc.notify_peer = notify;
    dc.transport = &t1;
    dc.role = amp::rpmsg::Role::kDriver;
    if (declared) {
      dc.rx_buffers = dc.tx_buffers =
          static_cast<std::uint32_t>(std::min<std::size_t>(256, dc.buffer_pool_size / 2 / buffer_size));
    }
    started = driver.start(dc, *s1) == Status::kOk;
    dc.transport = &t2;
    dc.role = amp::rpmsg::Role::kDevice;
    started = started && device->start(dc, *s2) == Status::kOk;
  }
  static std::unique_ptr<amp::rpmsg::Device> default_device() {
    return std::make_unique<amp::rpmsg::Device>();
  }
  static std::unique_ptr<amp::rpmsg::Device> indexed_device(std::span<amp::rpmsg::AddressIndex::Slot> index) {
    return std::make_unique<amp::rpmsg::Device>(index);
  }

  std::unique_ptr<Block> block;
  amp::virtio::RscVdevTransport t1, t2;
  NullNotifier n;
  std::unique_ptr<amp::rpmsg::DeviceStorage<256>> s1 = std::make_unique<amp::rpmsg::DeviceStorage<256>>();
  std::unique_ptr<amp::rpmsg::DeviceStorage<256>> s2 = std::make_unique<amp::rpmsg::DeviceStorage<256>>();
  amp::rpmsg::Device driver;
  std::unique_ptr<amp::rpmsg::Device> device;
  bool started = false;
};

/// One message from the driver to the device and its delivery, in one thread. Arg 0: payload bytes;
/// arg 1: 1 = notifications on (a kick decision, with its fence, per send), 0 = polling peers; arg 2: the
/// negotiated buffer size. The receiver does not touch the payload (zero-copy delivery); the send copies it.
void BM_RpmsgSendReceive(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const bool notify = state.range(1) != 0;
  Pair p(notify, {}, static_cast<std::uint32_t>(state.range(2)));
  if (!p.started) state.SkipWithError("start");
  std::uint64_t received = 0;
  amp::rpmsg::Endpoint rx, tx;
  (void)p.device->create_endpoint(rx, "", 0x500, amp::rpmsg::kAddrAny,
                                  [&](amp::rpmsg::Endpoint&, const amp::rpmsg::Message&) { ++received; });
  (void)p.driver.create_endpoint(tx, "", amp::rpmsg::kAddrAny, 0x500, nullptr);
  std::vector<std::byte> payload(size, std::byte{1});
  for (auto _ : state) {
    (void)tx.try_send(payload);
    (void)p.device->process(notify);
  }
  p.driver.flush();  // sends to a polling peer are made visible in bursts: the last ones now
  (void)p.device->process(notify);
  if (received != static_cast<std::uint64_t>(state.iterations())) {
    state.SkipWithError(
        ("a message was lost: " + std::to_string(received) + " of " + std::to_string(state.iterations()))
            .c_str());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(received));
  state.SetBytesProcessed(static_cast<std::int64_t>(received * size));
}
BENCHMARK(BM_RpmsgSendReceive)
    ->ArgNames({"payload", "notify", "buffer"})
    ->Args({16, 1, 512})
    ->Args({16, 0, 512})
    ->Args({256, 0, 512})
    ->Args({496, 0, 512})
    ->Args({4080, 0, 4096})
    ->Args({65520, 0, 65536});

/// Receive cost against the number of endpoints on the receiving device. Arg 0: endpoints (all created
/// before the run; each message goes to the one created first, which a newest-first list would reach last,
/// and the next message to the next one round the set, so the lookups do not all hit one warm slot);
/// arg 1: 1 = an address index sized for them (AddressIndex::slots_for), 0 = no index (every endpoint found
/// by walking the list, as every Device did before AddressIndex).
void BM_RpmsgDispatch(benchmark::State& state) {
  const auto count = static_cast<std::size_t>(state.range(0));
  std::vector<amp::rpmsg::AddressIndex::Slot> slots(
      state.range(1) != 0 ? amp::rpmsg::AddressIndex::slots_for(count) : 0);
  Pair p(true, std::span(slots));  // every send visible at once (polling peers would publish them in bursts)
  if (!p.started) state.SkipWithError("start");
  std::uint64_t received = 0;
  std::vector<amp::rpmsg::Endpoint> eps(count);
  std::vector<std::uint32_t> addrs;
  for (auto& ep : eps) {
    if (p.device->create_endpoint(ep, "", amp::rpmsg::kAddrAny, amp::rpmsg::kAddrAny,
                                  [&](amp::rpmsg::Endpoint&, const amp::rpmsg::Message&) { ++received; }) !=
        Status::kOk)
      state.SkipWithError("create_endpoint");
    addrs.push_back(ep.address());
  }
  // Cycle through the oldest eight (or all): the ones a list finds last.
  const std::size_t cycle = count < 8 ? count : 8;
  amp::rpmsg::Endpoint tx;
  (void)p.driver.create_endpoint(tx, "", amp::rpmsg::kAddrAny, amp::rpmsg::kAddrAny, nullptr);
  const std::array<std::byte, 16> payload{};
  std::size_t next = 0;
  for (auto _ : state) {
    (void)tx.send_to(addrs[next], payload, 0);
    next = next + 1 == cycle ? 0 : next + 1;
    (void)p.device->process();
  }
  if (received != static_cast<std::uint64_t>(state.iterations())) state.SkipWithError("a message was lost");
  state.SetItemsProcessed(static_cast<std::int64_t>(received));
  for (auto& ep : eps) ep.destroy();
}
BENCHMARK(BM_RpmsgDispatch)->ArgsProduct({{1, 8, 64, 256, 1024}, {1, 0}})->ArgNames({"endpoints", "indexed"});

}  // namespace

BENCHMARK_MAIN();
