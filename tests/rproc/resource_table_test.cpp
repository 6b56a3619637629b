// SPDX-License-Identifier: BSD-3-Clause
#include "amp/rproc/resource_table.hpp"

#include "amp/rproc/firmware_table.hpp"
#include "le_bytes.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

namespace amp::rproc {
namespace {

using metal::IoRegion;
using virtio::QueueInfo;
using Bytes = amp::testing::LeBytes;

// The representative table: a carveout, a trace and an rpmsg vdev with two rings, as a Linux/OpenAMP
// firmware declares them. Layout: header 0..16, offsets 16..28, carveout 28..84, trace 84..132, vdev
// 132..200.
constexpr std::size_t kCarveoutAt = 28;
constexpr std::size_t kTraceAt = 84;
constexpr std::size_t kVdevAt = 132;
constexpr std::size_t kGoldenSize = 200;
constexpr std::array<QueueInfo, 2> kRings{QueueInfo{metal::kAnyAddress, 0x1000, 256, 1},
                                          QueueInfo{0x3000'0000, 16, 64, 2}};

struct alignas(8) Table {
  std::array<std::byte, 512> mem{};
  std::size_t size = 0;
  IoRegion region() { return IoRegion(std::span(mem).first(size), 0x1000'0000); }
  void set32(std::size_t pos, std::uint32_t v) {
    for (std::size_t i = 0; i < 4; ++i) mem[pos + i] = static_cast<std::byte>(v >> (8 * i));
  }
  std::uint32_t get32(std::size_t pos) const {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < 4; ++i)
      v |= std::uint32_t{static_cast<std::uint8_t>(mem[pos + i])} << (8 * i);
    return v;
  }
};

Table golden() {
  Table t;
  TableBuilder b(t.mem);
  EXPECT_EQ(b.add_carveout("text", 0x1000'0000, kRscAddrAny, 0x8000, 0), Status::kOk);
  EXPECT_EQ(b.add_trace("trace0", kRscAddrAny, 0x1000), Status::kOk);
  EXPECT_EQ(b.add_vdev(7, 1, kRings, 0), Status::kOk);
  auto size = b.finish();
  EXPECT_TRUE(size.has_value());
  t.size = size.value_or(0);
  return t;
}

std::vector<std::byte> golden_bytes() {
  Bytes b;
  b.u32(1).u32(3).u32(0).u32(0);                                              // ver, num, reserved[2]
  b.u32(kCarveoutAt).u32(kTraceAt).u32(kVdevAt);                              // offset[3]
  b.u32(kRscCarveout);                                                        // fw_rsc_carveout
  b.u32(0x1000'0000).u32(0xFFFFFFFF).u32(0x8000).u32(0).u32(0).name("text");  // da pa len flags reserved name
  b.u32(kRscTrace);                                                           // fw_rsc_trace
  b.u32(0xFFFFFFFF).u32(0x1000).u32(0).name("trace0");                        // da len reserved name
  b.u32(kRscVdev);                                                            // fw_rsc_vdev
  b.u32(7).u32(0).u32(1).u32(0).u32(0);                  // id notifyid dfeatures gfeatures config_len
  b.u8(0).u8(2).u8(0).u8(0);                             // status num_of_vrings reserved[2]
  b.u32(0xFFFFFFFF).u32(0x1000).u32(256).u32(1).u32(0);  // vring 0: da align num notifyid pa
  b.u32(0x3000'0000).u32(16).u32(64).u32(2).u32(0);      // vring 1
  return b.v;
}

TEST(ResourceTable, GoldenBytes) {
  static_assert(kRscCarveoutSize == 56 && kRscTraceSize == 48 && kRscVdevMinSize == 28);
  Table t = golden();
  const auto expected = golden_bytes();
  ASSERT_EQ(t.size, kGoldenSize);
  ASSERT_EQ(expected.size(), kGoldenSize);
  for (std::size_t i = 0; i < kGoldenSize; ++i) {
    EXPECT_EQ(t.mem[i], expected[i]) << "byte " << i;
  }
}

// Records what it is shown.
struct Recorder final : ResourceVisitor {
  std::vector<std::string> calls;
  Carveout carveout;
  Devmem devmem;
  Trace trace;
  Vdev vdev;
  IoRegion vdev_body;
  std::uint32_t vendor_type = 0;
  std::vector<std::uint8_t> vendor_body;
  std::string fail_on;
  Status fail_with = Status::kOk;

  Status result(const std::string& what) {
    calls.push_back(what);
    return what == fail_on ? fail_with : Status::kOk;
  }
  Status on_carveout(std::uint32_t i, const Carveout& c) noexcept override {
    carveout = c;
    return result("carveout" + std::to_string(i));
  }
  Status on_devmem(std::uint32_t i, const Devmem& d) noexcept override {
    devmem = d;
    return result("devmem" + std::to_string(i));
  }
  Status on_trace(std::uint32_t i, const Trace& tr) noexcept override {
    trace = tr;
    return result("trace" + std::to_string(i));
  }
  Status on_vdev(std::uint32_t i, const Vdev& v, IoRegion body) noexcept override {
    vdev = v;
    vdev_body = body;
    return result("vdev" + std::to_string(i));
  }
  Status on_vendor(std::uint32_t i, std::uint32_t type, IoRegion body) noexcept override {
    vendor_type = type;
    vendor_body.resize(body.size());
    EXPECT_EQ(body.read(0, std::as_writable_bytes(std::span(vendor_body))), Status::kOk);
    return result("vendor" + std::to_string(i));
  }
};

TEST(ResourceTable, ParsesAndVisitsTheGoldenTable) {
  Table t = golden();
  auto rt = ResourceTable::parse(t.region());
  ASSERT_TRUE(rt) << to_string(rt.error().error);
  ASSERT_EQ(rt->entry_count(), 3U);
  EXPECT_EQ(rt->entry(0)->offset, kCarveoutAt);
  EXPECT_EQ(rt->entry(1)->type, kRscTrace);
  EXPECT_EQ(rt->entry(2)->size, 68U);
  EXPECT_EQ(rt->entry(3).error(), Status::kNotFound);

  Recorder r;
  ASSERT_TRUE(rt->for_each(r));
  EXPECT_EQ(r.calls, (std::vector<std::string>{"carveout0", "trace1", "vdev2"}));
  EXPECT_EQ(r.carveout.da, 0x1000'0000U);
  EXPECT_EQ(r.carveout.pa, kRscAddrAny);
  EXPECT_EQ(r.carveout.len, 0x8000U);
  EXPECT_EQ(r.carveout.name.view(), "text");
  EXPECT_EQ(r.trace.da, kRscAddrAny);
  EXPECT_EQ(r.trace.len, 0x1000U);
  EXPECT_EQ(r.trace.name.view(), "trace0");
  EXPECT_EQ(r.vdev.id, 7U);
  EXPECT_EQ(r.vdev.dfeatures, 1U);
  EXPECT_EQ(r.vdev.config_len, 0U);
  ASSERT_EQ(r.vdev.rings().size(), 2U);
  EXPECT_EQ(r.vdev.rings()[0].da, metal::kAnyAddress);
  EXPECT_EQ(r.vdev.rings()[0].align, 0x1000U);
  EXPECT_EQ(r.vdev.rings()[0].num, 256U);
  EXPECT_EQ(r.vdev.rings()[1].da, 0x3000'0000U);
  EXPECT_EQ(r.vdev.rings()[1].notify_id, 2U);

  // The vdev body is exactly the entry, and the virtio transport opens it.
  EXPECT_EQ(r.vdev_body.size(), 64U);
  EXPECT_EQ(*r.vdev_body.device_address_of(0), 0x1000'0000U + kVdevAt + 4);
  auto transport = virtio::RscVdevTransport::open(r.vdev_body);
  ASSERT_TRUE(transport);
  EXPECT_EQ(transport->device_id(), 7U);
  EXPECT_EQ(transport->queue(1)->num, 64U);
}

// The compile-time table a firmware puts in its .resource_table section: its bytes, and what parse sees.
TEST(FirmwareTable, IsTheRpmsgVdevTableLinuxExpects) {
  constexpr RpmsgFirmwareTable kTable = rpmsg_firmware_table({.vring_num = 64, .rx_da = 0x3000'0000});
  Bytes want;
  want.u32(1).u32(1).u32(0).u32(0).u32(24).u32(0);          // header, offset[0], pad
  want.u32(kRscVdev).u32(7).u32(0).u32(1).u32(0).u32(0);    // type, id, notifyid, dfeatures (NS), gf, cfg
  want.u8(0).u8(2).u8(0).u8(0);                             // status, num_of_vrings, reserved
  want.u32(kRscAddrAny).u32(0x1000).u32(64).u32(0).u32(0);  // vring 0
  want.u32(0x3000'0000).u32(0x1000).u32(64).u32(0).u32(0);  // vring 1
  ASSERT_EQ(want.v.size(), sizeof kTable);
  std::vector<std::byte> got(sizeof kTable);
  std::memcpy(got.data(), &kTable, sizeof kTable);
  EXPECT_EQ(got, want.v);

  Table t;
  std::memcpy(t.mem.data(), &kTable, sizeof kTable);
  t.size = sizeof kTable;
  auto rt = ResourceTable::parse(t.region());
  ASSERT_TRUE(rt) << to_string(rt.error().error);
  Recorder r;
  ASSERT_TRUE(rt->for_each(r));
  EXPECT_EQ(r.calls, (std::vector<std::string>{"vdev0"}));
  EXPECT_EQ(r.vdev.id, rpmsg::kVirtioIdRpmsg);
  ASSERT_EQ(r.vdev.rings().size(), 2U);
  EXPECT_EQ(r.vdev.rings()[0].da, metal::kAnyAddress);
  EXPECT_EQ(r.vdev.rings()[1].da, 0x3000'0000U);
  EXPECT_EQ(r.vdev.rings()[1].num, 64U);
}

// A firmware that declares its buffer sizes (VIRTIO_RPMSG_F_BUFSZ): bit 1 offered, an 11-byte config space
// that is the declaration, which a driver reads back through the vdev.
TEST(FirmwareTable, DeclaresItsBufferSizesInTheVdevsConfigSpace) {
  constexpr RpmsgSizedFirmwareTable kTable = rpmsg_firmware_table({.vring_num = 64}, {4096, 1024});
  Bytes want;
  want.u32(1).u32(1).u32(0).u32(0).u32(24).u32(0);         // header, offset[0], pad
  want.u32(kRscVdev).u32(7).u32(0).u32(3).u32(0).u32(11);  // type, id, notifyid, NS | BUFSZ, gf, config_len
  want.u8(0).u8(2).u8(0).u8(0);
  want.u32(kRscAddrAny).u32(0x1000).u32(64).u32(0).u32(0);
  want.u32(kRscAddrAny).u32(0x1000).u32(64).u32(0).u32(0);
  want.u8(1).u8(11).u8(0).u32(4096).u32(1024).u8(0);  // version, le16 size, txbuf_size, rxbuf_size, padding
  ASSERT_EQ(want.v.size(), sizeof kTable);
  std::vector<std::byte> got(sizeof kTable);
  std::memcpy(got.data(), &kTable, sizeof kTable);
  EXPECT_EQ(got, want.v);

  Table t;
  std::memcpy(t.mem.data(), &kTable, sizeof kTable);
  t.size = sizeof kTable;
  auto rt = ResourceTable::parse(t.region());
  ASSERT_TRUE(rt) << to_string(rt.error().error);
  Recorder r;
  ASSERT_TRUE(rt->for_each(r));
  auto vdev = virtio::RscVdev::open(r.vdev_body);
  ASSERT_TRUE(vdev);
  std::byte config[rpmsg::kBufferSizesConfigSize];
  ASSERT_EQ(vdev->read_config(0, config), Status::kOk);
  auto sizes = rpmsg::decode_buffer_sizes(config);
  ASSERT_TRUE(sizes);
  EXPECT_EQ(sizes->tx, 4096U);
  EXPECT_EQ(sizes->rx, 1024U);
}

TEST(ResourceTable, DevmemAndVendorEntries) {
  Table t;
  TableBuilder b(t.mem);
  const std::array<std::byte, 5> blob{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}, std::byte{5}};
  ASSERT_EQ(b.add_vendor(kRscVendorStart + 2, blob), Status::kOk);
  ASSERT_EQ(b.add_devmem("regs", 0x4000'0000, 0x4000'0000, 0x1000, 0), Status::kOk);
  ASSERT_EQ(b.add_vendor(kRscVendorEnd - 1, {}), Status::kOk);
  t.size = *b.finish();
  EXPECT_EQ(t.size, 16U + 12 + 12 + 56 + 4);  // the 5-byte body padded to 8
  auto rt = ResourceTable::parse(t.region());
  ASSERT_TRUE(rt) << to_string(rt.error().error);
  Recorder r;
  r.fail_on = "none";
  ASSERT_TRUE(rt->for_each(r));
  EXPECT_EQ(r.calls, (std::vector<std::string>{"vendor0", "devmem1", "vendor2"}));
  EXPECT_EQ(r.devmem.pa, 0x4000'0000U);
  EXPECT_EQ(r.devmem.name.view(), "regs");
  EXPECT_EQ(r.vendor_type, kRscVendorEnd - 1);  // the last one
  EXPECT_TRUE(r.vendor_body.empty());           // it ends at the table's end
  // The first vendor body reaches up to the devmem entry: its 5 bytes and the padding.
  EXPECT_EQ(rt->entry(0)->size, 12U);
  Recorder first;
  first.fail_on = "vendor0";
  first.fail_with = Status::kBusy;
  EXPECT_FALSE(rt->for_each(first));
  EXPECT_EQ(first.vendor_type, kRscVendorStart + 2);
  EXPECT_EQ(first.vendor_body, (std::vector<std::uint8_t>{1, 2, 3, 4, 5, 0, 0, 0}));
}

TEST(ResourceTable, EmptyTable) {
  Table t;
  TableBuilder b(t.mem);
  t.size = *b.finish();
  EXPECT_EQ(t.size, 16U);
  auto rt = ResourceTable::parse(t.region());
  ASSERT_TRUE(rt);
  EXPECT_EQ(rt->entry_count(), 0U);
  Recorder r;
  EXPECT_TRUE(rt->for_each(r));
  EXPECT_TRUE(r.calls.empty());
  ResourceTable none;
  EXPECT_EQ(none.entry_count(), 0U);
  EXPECT_TRUE(none.for_each(r));
}

TEST(ResourceTable, HandlerErrorStopsTheWalk) {
  Table t = golden();
  auto rt = ResourceTable::parse(t.region());
  ASSERT_TRUE(rt);
  Recorder r;
  r.fail_on = "trace1";
  r.fail_with = Status::kNoMemory;
  auto res = rt->for_each(r);
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().error, RscError::kHandler);
  EXPECT_EQ(res.error().entry, 1U);
  EXPECT_EQ(res.error().status, Status::kNoMemory);
  EXPECT_EQ(r.calls, (std::vector<std::string>{"carveout0", "trace1"}));  // the vdev was not visited
}

TEST(ResourceTable, WriteBack) {
  Table t = golden();
  auto rt = ResourceTable::parse(t.region());
  ASSERT_TRUE(rt);
  ASSERT_EQ(rt->set_carveout_address(0, 0x1000'0000, 0x8800'0000), Status::kOk);
  EXPECT_EQ(t.get32(kCarveoutAt + 4), 0x1000'0000U);
  EXPECT_EQ(t.get32(kCarveoutAt + 8), 0x8800'0000U);
  ASSERT_EQ(rt->set_trace_address(1, 0x2000), Status::kOk);
  EXPECT_EQ(t.get32(kTraceAt + 4), 0x2000U);
  ASSERT_EQ(rt->set_vring_address(2, 0, 0x9000'0000), Status::kOk);
  EXPECT_EQ(t.get32(kVdevAt + 4 + 24), 0x9000'0000U);
  ASSERT_EQ(rt->set_vring_notify_id(2, 1, 5), Status::kOk);
  EXPECT_EQ(t.get32(kVdevAt + 4 + 24 + 20 + 12), 5U);

  // The table stays valid and shows the new values.
  auto again = ResourceTable::parse(t.region());
  ASSERT_TRUE(again);
  Recorder r;
  ASSERT_TRUE(again->for_each(r));
  EXPECT_EQ(r.carveout.pa, 0x8800'0000U);
  EXPECT_EQ(r.trace.da, 0x2000U);
  EXPECT_EQ(r.vdev.rings()[0].da, 0x9000'0000U);
  EXPECT_EQ(r.vdev.rings()[1].notify_id, 5U);
  EXPECT_EQ(r.vdev.rings()[1].da, 0x3000'0000U);  // untouched

  // Refusals, and nothing written by them.
  const auto before = t.mem;
  EXPECT_EQ(rt->set_carveout_address(1, 0, 0), Status::kInvalidArgument);  // a trace
  EXPECT_EQ(rt->set_carveout_address(3, 0, 0), Status::kNotFound);
  EXPECT_EQ(rt->set_carveout_address(0, kRscAddrAny, 0), Status::kOutOfRange);
  EXPECT_EQ(rt->set_carveout_address(0, 0, 0x1'0000'0000), Status::kOutOfRange);
  EXPECT_EQ(rt->set_trace_address(0, 0), Status::kInvalidArgument);
  EXPECT_EQ(rt->set_trace_address(1, 0x1'0000'0000), Status::kOutOfRange);
  EXPECT_EQ(rt->set_vring_address(2, 2, 0), Status::kNotFound);
  EXPECT_EQ(rt->set_vring_address(0, 0, 0), Status::kInvalidArgument);
  EXPECT_EQ(rt->set_vring_address(2, 0, kRscAddrAny), Status::kOutOfRange);
  EXPECT_EQ(rt->set_vring_notify_id(9, 0, 0), Status::kNotFound);
  EXPECT_EQ(t.mem, before);

  // A peer that raised num_of_vrings after parse cannot make us write past the recorded entry.
  t.mem[kVdevAt + 4 + 21] = std::byte{3};
  EXPECT_EQ(rt->set_vring_address(2, 2, 0x1000), Status::kMalformed);
  EXPECT_EQ(t.mem[kVdevAt + 4 + 21], std::byte{3});
  EXPECT_EQ(t.size, kGoldenSize);
}

// --- Validation: each failure, made by corrupting a built table. ---

void expect_refused(Table& t, RscError error, std::uint32_t entry) {
  auto rt = ResourceTable::parse(t.region());
  ASSERT_FALSE(rt) << "expected " << to_string(error);
  EXPECT_EQ(rt.error().error, error) << to_string(rt.error().error) << " instead of " << to_string(error);
  EXPECT_EQ(rt.error().entry, entry);
  EXPECT_EQ(rt.error().status, to_status(error));
}

constexpr std::uint32_t kHeader = RscFailure::kNoEntry;

TEST(ResourceTableValidation, Header) {
  Table t = golden();
  t.size = 15;
  expect_refused(t, RscError::kTableTooSmall, kHeader);
  t = golden();
  t.set32(0, 2);
  expect_refused(t, RscError::kBadVersion, kHeader);
  t.set32(0, 0);
  expect_refused(t, RscError::kBadVersion, kHeader);
  EXPECT_EQ(to_status(RscError::kBadVersion), Status::kNotSupported);

  t = golden();
  t.set32(4, 47);  // offsets up to 16 + 188 = 204 > 200
  expect_refused(t, RscError::kOffsetsOutside, kHeader);
  t.set32(4, 0xFFFFFFFF);  // no wrap-around
  expect_refused(t, RscError::kOffsetsOutside, kHeader);
  t.set32(4, 4);  // a fourth offset: the array now ends at 32, after the carveout's start
  expect_refused(t, RscError::kOffsetInHeader, 0);

  Table many;
  many.size = 16 + 4 * (kMaxEntries + 1);
  many.set32(0, 1);
  many.set32(4, kMaxEntries + 1);
  expect_refused(many, RscError::kTooManyEntries, kHeader);

  // The same table one byte off 4-byte alignment.
  alignas(8) std::array<std::byte, kGoldenSize + 1> shifted{};
  t = golden();
  std::memcpy(shifted.data() + 1, t.mem.data(), kGoldenSize);
  auto rt = ResourceTable::parse(IoRegion(std::span(shifted).subspan(1), 0));
  ASSERT_FALSE(rt);
  EXPECT_EQ(rt.error().error, RscError::kTableMisaligned);
  EXPECT_EQ(rt.error().status, Status::kMisaligned);
}

TEST(ResourceTableValidation, Offsets) {
  Table t = golden();
  t.set32(16 + 4, kGoldenSize);  // the trace's offset: at the end, no room for the type word
  expect_refused(t, RscError::kOffsetOutside, 1);
  t.set32(16 + 4, 0xFFFFFFFC);  // offset + 4 would wrap in 32 bits
  expect_refused(t, RscError::kOffsetOutside, 1);
  t = golden();
  t.set32(16 + 8, kVdevAt - 2);
  expect_refused(t, RscError::kOffsetMisaligned, 2);
  t = golden();
  t.set32(16, 24);  // inside the offset array
  expect_refused(t, RscError::kOffsetInHeader, 0);
  t.set32(16, 0);  // the header
  expect_refused(t, RscError::kOffsetInHeader, 0);
}

TEST(ResourceTableValidation, EntryBodyPastTheEnd) {
  Table t = golden();
  t.size = kGoldenSize - 4;  // the vdev's last vring word is cut off
  expect_refused(t, RscError::kVringsTruncated, 2);
  t.size = kVdevAt + 4 + 23;  // the vdev's header is cut off
  expect_refused(t, RscError::kEntryTruncated, 2);

  Table c;
  TableBuilder b(c.mem);
  ASSERT_EQ(b.add_trace("t", 0, 16), Status::kOk);
  ASSERT_EQ(b.add_carveout("c", 0, 0, 16, 0), Status::kOk);
  c.size = *b.finish();
  c.size -= 1;  // the carveout's name loses its last byte
  expect_refused(c, RscError::kEntryTruncated, 1);
  c.size = 24 + 47;  // the trace's name loses its last byte
  expect_refused(c, RscError::kEntryTruncated, 0);
}

TEST(ResourceTableValidation, VdevConfigPastTheEnd) {
  Table t;
  TableBuilder b(t.mem);
  ASSERT_EQ(b.add_vdev(7, 1, kRings, 8), Status::kOk);
  t.size = *b.finish();
  ASSERT_EQ(t.size, 16U + 4 + 4 + 24 + 40 + 8);
  ASSERT_TRUE(ResourceTable::parse(t.region()));
  t.size -= 1;
  expect_refused(t, RscError::kConfigTruncated, 0);
  t.size += 1;
  t.set32(20 + 4 + 16, 0xFFFFFFFF);  // config_len near 4 GiB: no overflow, still past the end
  expect_refused(t, RscError::kConfigTruncated, 0);
}

TEST(ResourceTableValidation, VdevVrings) {
  const std::size_t num_of_vrings = kVdevAt + 4 + 21;
  const std::size_t ring0 = kVdevAt + 4 + 24;
  const std::size_t ring1 = ring0 + 20;
  Table t = golden();
  t.mem[num_of_vrings] = std::byte{3};  // a third ring past the table's end
  expect_refused(t, RscError::kVringsTruncated, 2);
  t.mem[num_of_vrings] = std::byte{0};
  expect_refused(t, RscError::kZeroVrings, 2);
  t.mem[num_of_vrings] = std::byte{kMaxVrings + 1};
  expect_refused(t, RscError::kTooManyVrings, 2);
  EXPECT_EQ(to_status(RscError::kTooManyVrings), Status::kNotSupported);

  for (const std::uint32_t num : {0U, 3U, 255U, 65536U, 0x8000'0001U}) {
    t = golden();
    t.set32(ring0 + 8, num);
    expect_refused(t, RscError::kBadVringNum, 2);
  }
  t = golden();
  t.set32(ring0 + 8, kMaxVringNum);
  EXPECT_TRUE(ResourceTable::parse(t.region()));
  for (const std::uint32_t align : {0U, 1U, 2U, 12U, 0x1001U}) {
    t = golden();
    t.set32(ring1 + 4, align);
    expect_refused(t, RscError::kBadVringAlign, 2);
  }
  t = golden();
  t.set32(ring1 + 4, 4);
  EXPECT_TRUE(ResourceTable::parse(t.region()));
}

TEST(ResourceTableValidation, UnknownTypes) {
  for (const std::uint32_t type : {4U, 127U, 512U, 0xFFFFFFFFU}) {
    Table t = golden();
    t.set32(kTraceAt, type);
    expect_refused(t, RscError::kUnknownType, 1);
  }
  EXPECT_EQ(to_status(RscError::kUnknownType), Status::kNotSupported);
}

TEST(ResourceTableValidation, NamesMustBeTerminated) {
  Table t = golden();
  std::memset(t.mem.data() + kCarveoutAt + 4 + 20, 'a', kRscNameSize);
  expect_refused(t, RscError::kNameNotTerminated, 0);
  t = golden();
  std::memset(t.mem.data() + kTraceAt + 4 + 12, 'b', kRscNameSize);
  expect_refused(t, RscError::kNameNotTerminated, 1);
  t.mem[kTraceAt + 4 + 12 + kRscNameSize - 1] = std::byte{0};  // 31 characters and a NUL: fine
  auto rt = ResourceTable::parse(t.region());
  ASSERT_TRUE(rt);
  Recorder r;
  ASSERT_TRUE(rt->for_each(r));
  EXPECT_EQ(r.trace.name.view(), std::string(31, 'b'));
}

TEST(ResourceTableValidation, OverlappingEntries) {
  Table t = golden();
  t.set32(16 + 4, kCarveoutAt);  // the trace's offset now names the carveout too
  t.set32(kCarveoutAt, kRscCarveout);
  expect_refused(t, RscError::kOverlap, 1);

  // A vdev whose config grows into the entry after it.
  Table v;
  TableBuilder b(v.mem);
  ASSERT_EQ(b.add_vdev(7, 1, kRings, 0), Status::kOk);
  ASSERT_EQ(b.add_trace("t", 0, 16), Status::kOk);
  v.size = *b.finish();
  ASSERT_TRUE(ResourceTable::parse(v.region()));
  v.set32(24 + 4 + 16, 4);
  expect_refused(v, RscError::kOverlap, 0);

  // An offset into the middle of another entry (whose bytes happen to read as a carveout).
  t = golden();
  t.set32(16 + 8, kCarveoutAt + 28);
  expect_refused(t, RscError::kOverlap, 0);
}

TEST(ResourceTableValidation, ErrorsHaveDistinctDescriptions) {
  std::vector<std::string> seen;
  for (int e = static_cast<int>(RscError::kNone); e <= static_cast<int>(RscError::kHandler); ++e) {
    const std::string s = to_string(static_cast<RscError>(e));
    EXPECT_FALSE(s.empty());
    for (const auto& other : seen) EXPECT_NE(s, other);
    seen.push_back(s);
    EXPECT_EQ(to_status(static_cast<RscError>(e)) == Status::kOk, e == static_cast<int>(RscError::kNone));
  }
}

TEST(ResourceTableValidation, EntriesChangedAfterParse) {
  Table v;
  TableBuilder b(v.mem);
  ASSERT_EQ(b.add_vdev(7, 1, kRings, 0), Status::kOk);
  ASSERT_EQ(b.add_carveout("c", 0, 0, 16, 0), Status::kOk);
  v.size = *b.finish();
  auto rt = ResourceTable::parse(v.region());
  ASSERT_TRUE(rt);
  v.set32(24 + 4 + 16, 4);  // config_len grows into the carveout after parse
  Recorder r;
  auto res = rt->for_each(r);
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().error, RscError::kChanged);
  EXPECT_EQ(res.error().entry, 0U);
  EXPECT_EQ(res.error().status, Status::kBroken);
  EXPECT_TRUE(r.calls.empty());
  v.set32(24 + 4 + 16, 0);
  std::memset(v.mem.data() + 24 + 4 + 24 + 40 + 4 + 20, 'x', kRscNameSize);  // the carveout's name
  res = rt->for_each(r);
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().error, RscError::kNameNotTerminated);
  EXPECT_EQ(res.error().entry, 1U);
  EXPECT_EQ(r.calls, (std::vector<std::string>{"vdev0"}));
}

// --- Builder. ---

TEST(TableBuilder, TooSmallBuffersFailWithoutWritingOutside) {
  for (std::size_t cap = 0; cap < kGoldenSize; ++cap) {
    std::array<std::byte, kGoldenSize + 8> mem{};
    mem.fill(std::byte{0xEE});
    TableBuilder b{std::span(mem).first(cap)};
    (void)b.add_carveout("text", 0x1000'0000, kRscAddrAny, 0x8000, 0);
    (void)b.add_trace("trace0", kRscAddrAny, 0x1000);
    (void)b.add_vdev(7, 1, kRings, 0);
    auto size = b.finish();
    ASSERT_FALSE(size) << cap;
    EXPECT_EQ(size.error(), Status::kNoMemory);
    for (std::size_t i = cap; i < mem.size(); ++i) ASSERT_EQ(mem[i], std::byte{0xEE}) << cap << " " << i;
  }
  std::array<std::byte, kGoldenSize> exact{};
  TableBuilder b(exact);
  ASSERT_EQ(b.add_carveout("text", 0x1000'0000, kRscAddrAny, 0x8000, 0), Status::kOk);
  ASSERT_EQ(b.add_trace("trace0", kRscAddrAny, 0x1000), Status::kOk);
  ASSERT_EQ(b.add_vdev(7, 1, kRings, 0), Status::kOk);
  EXPECT_EQ(b.finish().value_or(0), kGoldenSize);
}

TEST(TableBuilder, RefusesWhatParseWouldRefuse) {
  const std::array<QueueInfo, 1> bad_num{QueueInfo{0, 16, 100, 0}};
  const std::array<QueueInfo, 1> bad_align{QueueInfo{0, 2, 64, 0}};
  const std::array<QueueInfo, 1> high_da{QueueInfo{0x1'0000'0000, 16, 64, 0}};
  const std::array<QueueInfo, kMaxVrings + 1> too_many{};
  struct Case {
    const char* what;
    Status expected;
    Status (*add)(TableBuilder&);
  };
  const std::array<Case, 8> cases{{
      {"32-char name", Status::kInvalidArgument,
       [](TableBuilder& b) { return b.add_carveout(std::string(32, 'n'), 0, 0, 0, 0); }},
      {"32-char trace name", Status::kInvalidArgument,
       [](TableBuilder& b) { return b.add_trace(std::string(32, 'n'), 0, 0); }},
      {"no vrings", Status::kInvalidArgument, [](TableBuilder& b) { return b.add_vdev(7, 0, {}, 0); }},
      {"vring num", Status::kInvalidArgument, nullptr},
      {"vring align", Status::kInvalidArgument, nullptr},
      {"vring da", Status::kOutOfRange, nullptr},
      {"vendor type 127", Status::kInvalidArgument, [](TableBuilder& b) { return b.add_vendor(127, {}); }},
      {"vendor type 512", Status::kInvalidArgument, [](TableBuilder& b) { return b.add_vendor(512, {}); }},
  }};
  for (std::size_t i = 0; i < cases.size(); ++i) {
    std::array<std::byte, 256> mem{};
    TableBuilder b(mem);
    Status s = Status::kOk;
    if (i == 3) s = b.add_vdev(7, 0, bad_num, 0);
    if (i == 4) s = b.add_vdev(7, 0, bad_align, 0);
    if (i == 5) s = b.add_vdev(7, 0, high_da, 0);
    if (cases[i].add != nullptr) s = cases[i].add(b);
    EXPECT_EQ(s, cases[i].expected) << cases[i].what;
    // The first failure sticks.
    EXPECT_EQ(b.add_trace("ok", 0, 0), cases[i].expected) << cases[i].what;
    EXPECT_EQ(b.finish().error(), cases[i].expected) << cases[i].what;
  }
  std::array<std::byte, 512> mem{};
  TableBuilder b(mem);
  EXPECT_EQ(b.add_vdev(7, 0, too_many, 0), Status::kInvalidArgument);
  TableBuilder ok_b(mem);
  EXPECT_EQ(ok_b.add_carveout(std::string(31, 'n'), 0, 0, 0, 0), Status::kOk);
}

TEST(TableBuilder, EntryLimit) {
  std::array<std::byte, 4096> mem{};
  TableBuilder b(mem);
  for (std::uint32_t i = 0; i < kMaxEntries; ++i) ASSERT_EQ(b.add_vendor(kRscVendorStart, {}), Status::kOk);
  EXPECT_EQ(b.add_vendor(kRscVendorStart, {}), Status::kNoMemory);
  EXPECT_EQ(b.entry_count(), kMaxEntries);
}

TEST(TableBuilder, PadsOddSizesAndKeepsOffsetsAligned) {
  Table t;
  TableBuilder b(t.mem);
  const std::array<QueueInfo, 1> ring{QueueInfo{metal::kAnyAddress, 16, 8, 0}};
  ASSERT_EQ(b.add_vdev({7, 3, 1, 3, ring}), Status::kOk);  // 28 + 20 + 3 bytes of config
  ASSERT_EQ(b.add_trace("after", 0, 64), Status::kOk);
  t.size = *b.finish();
  EXPECT_EQ(t.get32(16), 24U);
  EXPECT_EQ(t.get32(20), 24U + 52);  // 51 padded to 52
  auto rt = ResourceTable::parse(t.region());
  ASSERT_TRUE(rt) << to_string(rt.error().error);
  Recorder r;
  ASSERT_TRUE(rt->for_each(r));
  EXPECT_EQ(r.vdev.notify_id, 3U);
  EXPECT_EQ(r.vdev.config_len, 3U);
  EXPECT_EQ(r.vdev_body.size(), 24U + 20 + 3);
  EXPECT_EQ(r.trace.name.view(), "after");
}

}  // namespace
}  // namespace amp::rproc
