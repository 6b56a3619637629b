// SPDX-License-Identifier: BSD-3-Clause
// The bare-metal firmware's resource table (vdev, carveout, trace, doorbell): its bytes, field by field as
// Linux lays them out, and what ResourceTable::parse and RscVdevTransport make of it.
#include "amp/rproc/baremetal_table.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "amp/rproc/resource_table.hpp"
#include "amp/virtio/rsc_vdev.hpp"
#include "le_bytes.hpp"

namespace amp::rproc {
namespace {

using metal::IoRegion;
using Bytes = amp::testing::LeBytes;

// The board's values (firmware/baremetal/boards/virt-a15).
constexpr BaremetalFirmwareTable kTable = baremetal_firmware_table(
    {.vdev = {.vring_num = 64,
              .vring_align = 0x1000,
              .features = (1U << rpmsg::kFeatureNs) | (1U << virtio::kFeatureEventIdx)},
     .carveout_da = 0x4080'0000,
     .carveout_len = 0x10'0000,
     .trace_da = 0x407F'F000,
     .trace_len = 0x1000});

struct alignas(8) Copy {
  std::array<std::byte, sizeof(BaremetalFirmwareTable)> mem{};
  explicit Copy(const BaremetalFirmwareTable& t) { std::memcpy(mem.data(), &t, sizeof t); }
  IoRegion region() { return IoRegion(mem, 0x4010'0000); }
};

TEST(BaremetalTable, IsByteForByteLinuxsLayout) {
  const std::uint32_t features = (1U << rpmsg::kFeatureNs) | (1U << virtio::kFeatureEventIdx);
  Bytes want;
  want.u32(1).u32(4).u32(0).u32(0);         // ver, num, reserved[2]
  want.u32(32).u32(100).u32(156).u32(204);  // offset[4]
  // fw_rsc_vdev: type, id, notifyid, dfeatures, gfeatures, config_len, status, num_of_vrings, reserved[2]
  want.u32(kRscVdev).u32(7).u32(0).u32(features).u32(0).u32(0).u8(0).u8(2).u8(0).u8(0);
  want.u32(kRscAddrAny).u32(0x1000).u32(64).u32(0).u32(0);  // vring 0: da, align, num, notifyid, pa
  want.u32(kRscAddrAny).u32(0x1000).u32(64).u32(0).u32(0);  // vring 1
  // fw_rsc_carveout: type, da, pa, len, flags, reserved, name
  want.u32(kRscCarveout).u32(0x4080'0000).u32(0x4080'0000).u32(0x10'0000).u32(0).u32(0).name("vdev0buffer");
  // fw_rsc_trace: type, da, len, reserved, name
  want.u32(kRscTrace).u32(0x407F'F000).u32(0x1000).u32(0).name("amp-trace");
  // vendor: type, mode, state, the watchdog's ping and pong
  want.u32(128).u32(kDoorbellModeInterrupt).u32(kDoorbellStateIdle).u32(0).u32(0);
  ASSERT_EQ(want.v.size(), sizeof kTable);
  std::vector<std::byte> got(sizeof kTable);
  std::memcpy(got.data(), &kTable, sizeof kTable);
  EXPECT_EQ(got, want.v);
}

struct Recorder final : ResourceVisitor {
  std::vector<std::string> calls;
  Carveout carveout;
  Trace trace;
  Vdev vdev;
  IoRegion vdev_body;
  std::uint32_t vendor_type = 0;
  std::vector<std::uint8_t> vendor_body;

  Status on_carveout(std::uint32_t i, const Carveout& c) noexcept override {
    carveout = c;
    calls.push_back("carveout" + std::to_string(i));
    return Status::kOk;
  }
  Status on_devmem(std::uint32_t i, const Devmem&) noexcept override {
    calls.push_back("devmem" + std::to_string(i));
    return Status::kOk;
  }
  Status on_trace(std::uint32_t i, const Trace& t) noexcept override {
    trace = t;
    calls.push_back("trace" + std::to_string(i));
    return Status::kOk;
  }
  Status on_vdev(std::uint32_t i, const Vdev& v, IoRegion body) noexcept override {
    vdev = v;
    vdev_body = body;
    calls.push_back("vdev" + std::to_string(i));
    return Status::kOk;
  }
  Status on_vendor(std::uint32_t i, std::uint32_t type, IoRegion body) noexcept override {
    vendor_type = type;
    vendor_body.resize(body.size());
    EXPECT_EQ(body.read(0, std::as_writable_bytes(std::span(vendor_body))), Status::kOk);
    calls.push_back("vendor" + std::to_string(i));
    return Status::kOk;
  }
};

TEST(BaremetalTable, ParsesIntoItsFourEntries) {
  Copy c(kTable);
  auto rt = ResourceTable::parse(c.region());
  ASSERT_TRUE(rt) << to_string(rt.error().error) << " (entry " << rt.error().entry << ")";
  ASSERT_EQ(rt->entry_count(), 4U);
  EXPECT_EQ(rt->entry(0)->type, kRscVdev);
  EXPECT_EQ(rt->entry(0)->size, sizeof(FwRscVdev2));
  EXPECT_EQ(rt->entry(1)->type, kRscCarveout);
  EXPECT_EQ(rt->entry(1)->size, kRscCarveoutSize);
  EXPECT_EQ(rt->entry(2)->type, kRscTrace);
  EXPECT_EQ(rt->entry(2)->size, kRscTraceSize);
  EXPECT_EQ(rt->entry(3)->type, kRscVendorDoorbell);
  EXPECT_EQ(rt->entry(3)->offset, 204U);

  Recorder r;
  ASSERT_TRUE(rt->for_each(r));
  EXPECT_EQ(r.calls, (std::vector<std::string>{"vdev0", "carveout1", "trace2", "vendor3"}));

  EXPECT_EQ(r.vdev.id, rpmsg::kVirtioIdRpmsg);
  EXPECT_EQ(r.vdev.dfeatures, (1U << rpmsg::kFeatureNs) | (1U << virtio::kFeatureEventIdx));
  EXPECT_EQ(r.vdev.status, 0U);
  EXPECT_EQ(r.vdev.config_len, 0U);
  ASSERT_EQ(r.vdev.rings().size(), 2U);
  for (const virtio::QueueInfo& q : r.vdev.rings()) {
    EXPECT_EQ(q.da, metal::kAnyAddress);
    EXPECT_EQ(q.align, 0x1000U);
    EXPECT_EQ(q.num, 64U);
  }

  EXPECT_EQ(r.carveout.name.view(), "vdev0buffer");
  EXPECT_EQ(r.carveout.da, 0x4080'0000U);
  EXPECT_EQ(r.carveout.pa, 0x4080'0000U);
  EXPECT_EQ(r.carveout.len, 0x10'0000U);
  EXPECT_EQ(r.carveout.flags, 0U);

  EXPECT_EQ(r.trace.name.view(), "amp-trace");
  EXPECT_EQ(r.trace.da, 0x407F'F000U);
  EXPECT_EQ(r.trace.len, 0x1000U);

  // The vendor body runs to the table's end: mode and state.
  EXPECT_EQ(r.vendor_type, 128U);
  EXPECT_EQ(r.vendor_body,
            std::vector<std::uint8_t>(kDoorbellBodyWithWatchdog, 0));  // mode, state, ping, pong

  // The vdev opens as the virtio transport both sides use, and write-back lands in the right words.
  auto transport = virtio::RscVdevTransport::open(r.vdev_body);
  ASSERT_TRUE(transport);
  EXPECT_EQ(transport->device_id(), rpmsg::kVirtioIdRpmsg);
  EXPECT_EQ(transport->queue_count(), 2U);
  ASSERT_EQ(rt->set_vring_address(0, 1, 0x4080'8000), Status::kOk);
  ASSERT_EQ(rt->set_vring_notify_id(0, 1, 1), Status::kOk);
  BaremetalFirmwareTable back{};
  std::memcpy(&back, c.mem.data(), sizeof back);
  EXPECT_EQ(back.vdev.vring[1].da, 0x4080'8000U);
  EXPECT_EQ(back.vdev.vring[1].notify_id, 1U);
  EXPECT_EQ(back.vdev.vring[0].da, kRscAddrAny);
}

TEST(BaremetalTable, SpecChoosesPollModeAndTheCarveoutsPhysicalAddress) {
  constexpr BaremetalFirmwareTable t = baremetal_firmware_table(
      {.carveout_da = 0x1000, .carveout_pa = 0x8000'0000, .carveout_len = 0x2000, .doorbell_mode = 1});
  static_assert(t.carveout.pa == 0x8000'0000 && t.doorbell.mode == kDoorbellModePoll);
  Copy c(t);
  auto rt = ResourceTable::parse(c.region());
  ASSERT_TRUE(rt);
  Recorder r;
  ASSERT_TRUE(rt->for_each(r));
  EXPECT_EQ(r.carveout.da, 0x1000U);
  EXPECT_EQ(r.carveout.pa, 0x8000'0000U);
  EXPECT_EQ(r.vendor_body[0], 1U);
  // Default ring size and the name service only.
  EXPECT_EQ(r.vdev.rings()[0].num, 256U);
  EXPECT_EQ(r.vdev.dfeatures, 1U << rpmsg::kFeatureNs);
}

}  // namespace
}  // namespace amp::rproc
