// SPDX-License-Identifier: BSD-3-Clause
#include "amp/rproc/resources.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "amp/virtio/ring.hpp"

namespace amp::rproc {
namespace {

using metal::DeviceAddress;
using metal::IoRegion;

constexpr DeviceAddress kRemoteBase = 0x3ED00000;  // the remote's memory, as it sees it
constexpr std::size_t kRemoteSize = 0x100000;
constexpr DeviceAddress kPoolBase = kRemoteBase + 0x80000;  // the second half: for the host to place things

class ResourcesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mem_.assign(kRemoteSize, std::byte{0});
    remote_ = IoRegion(std::span<std::byte>(mem_), kRemoteBase);
    regions_[0] = remote_;
  }
  /// Builds a table into table_ and parses it.
  template <class Build>
  ResourceTable make(Build build) {
    TableBuilder b(table_bytes_);
    build(b);
    auto size = b.finish();
    EXPECT_TRUE(size);
    table_region_ = IoRegion(std::span<std::byte>(table_bytes_.data(), *size), 0);
    auto t = ResourceTable::parse(table_region_);
    EXPECT_TRUE(t);
    return *t;
  }
  std::vector<std::byte> mem_;
  IoRegion remote_;
  std::array<IoRegion, 1> regions_{};
  alignas(8) std::array<std::byte, 1024> table_bytes_{};
  IoRegion table_region_;
};

TEST(DeviceMemoryPool, AlignsDeviceAddressesAndRunsOut) {
  std::vector<std::byte> mem(0x3000);
  DeviceMemoryPool pool(IoRegion(std::span<std::byte>(mem), 0x10010));  // deliberately not page aligned
  auto a = pool.allocate(0x100, 0x1000);
  ASSERT_TRUE(a);
  EXPECT_EQ(*a, 0x11000U);
  auto b = pool.allocate(8, 16);
  ASSERT_TRUE(b);
  EXPECT_EQ(*b, 0x11100U);
  EXPECT_EQ(pool.allocate(0x2000, 0x1000).error(), Status::kNoMemory);
  EXPECT_EQ(pool.allocate(0, 8).error(), Status::kInvalidArgument);
  EXPECT_EQ(pool.allocate(8, 3).error(), Status::kInvalidArgument);
  auto c = pool.allocate(0x1f00, 16);  // exactly the rest (0x3000 - 0x1100)
  ASSERT_TRUE(c);
  EXPECT_EQ(pool.allocate(1, 1).error(), Status::kNoMemory);
}

TEST_F(ResourcesTest, PlacesWhatTheFirmwareLeftToTheHostAndWritesItBack) {
  const std::array<virtio::QueueInfo, 2> rings{virtio::QueueInfo{metal::kAnyAddress, 0x1000, 256, 0},
                                               virtio::QueueInfo{kRemoteBase + 0x8000, 0x1000, 256, 0}};
  ResourceTable t = make([&](TableBuilder& b) {
    EXPECT_EQ(b.add_carveout("fw", kRemoteBase, kRemoteBase, 0x8000, 0),
              Status::kOk);  // fixed: must be in the remote's memory
    EXPECT_EQ(b.add_carveout("heap", kRscAddrAny, kRscAddrAny, 0x2000, 0), Status::kOk);
    EXPECT_EQ(b.add_trace("log", kRemoteBase + 0x7000, 0x400), Status::kOk);
    EXPECT_EQ(b.add_vdev(7, 1, rings, 0), Status::kOk);
  });
  DeviceMemoryPool pool(*remote_.subregion(0x80000, 0x80000));
  ResourceAssigner assign(t, regions_, pool);
  assign.set_first_notify_id(1);
  ASSERT_TRUE(assign.run());
  // The heap carveout went to the pool's start; the ANY vring after it, aligned; both written back.
  auto again = ResourceTable::parse(table_region_);
  ASSERT_TRUE(again);
  struct Check final : ResourceVisitor {
    Status on_carveout(std::uint32_t i, const Carveout& c) noexcept override {
      if (i == 1) heap = c;
      return Status::kOk;
    }
    Status on_vdev(std::uint32_t, const Vdev& v, metal::IoRegion) noexcept override {
      vdev = v;
      return Status::kOk;
    }
    Carveout heap;
    Vdev vdev;
  } check;
  ASSERT_TRUE(again->for_each(check));
  EXPECT_EQ(check.heap.da, kPoolBase);
  EXPECT_EQ(check.heap.pa, kPoolBase);
  EXPECT_EQ(check.vdev.vrings[0].da, kPoolBase + 0x2000);
  EXPECT_EQ(check.vdev.vrings[1].da, kRemoteBase + 0x8000) << "a fixed vring stays where it is";
  EXPECT_EQ(check.vdev.vrings[0].notify_id, 1U);
  EXPECT_EQ(check.vdev.vrings[1].notify_id, 2U);
  ASSERT_EQ(assign.vdevs().size(), 1U);
  EXPECT_EQ(assign.vdevs()[0].id, 7U);
  EXPECT_EQ(assign.vdevs()[0].vrings[0].da, kPoolBase + 0x2000);
  ASSERT_EQ(assign.traces().size(), 1U);
  EXPECT_EQ(assign.traces()[0].name.view(), "log");
  EXPECT_EQ(pool.used(), 0x2000 + virtio::RingLayout::compute(256, 0x1000)->size);
}

TEST_F(ResourcesTest, FixedAddressesOutsideTheRemotesMemoryAreRefused) {
  ResourceTable t = make([&](TableBuilder& b) {
    EXPECT_EQ(b.add_carveout("ok", kRemoteBase, kRemoteBase, 0x1000, 0), Status::kOk);
    EXPECT_EQ(b.add_carveout("bad", kRemoteBase + kRemoteSize - 0x800, 0, 0x1000, 0),
              Status::kOk);  // runs past the end
  });
  DeviceMemoryPool pool(*remote_.subregion(0x80000, 0x80000));
  ResourceAssigner assign(t, regions_, pool);
  auto r = assign.run();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().entry, 1U);
  EXPECT_EQ(r.error().status, Status::kOutOfRange);
}

TEST_F(ResourcesTest, DevmemTraceAndVringsOutsideAreRefused) {
  for (int which = 0; which < 3; ++which) {
    const std::array<virtio::QueueInfo, 1> far{virtio::QueueInfo{0x1000, 0x1000, 64, 0}};
    ResourceTable t = make([&](TableBuilder& b) {
      if (which == 0) {
        EXPECT_EQ(b.add_devmem("regs", 0xF0000000, 0xF0000000, 0x100, 0), Status::kOk);
      }
      if (which == 1) {
        EXPECT_EQ(b.add_trace("log", 0x100, 0x100), Status::kOk);
      }
      if (which == 2) {
        EXPECT_EQ(b.add_vdev(7, 1, far, 0), Status::kOk);
      }
    });
    DeviceMemoryPool pool(*remote_.subregion(0x80000, 0x80000));
    ResourceAssigner assign(t, regions_, pool);
    auto r = assign.run();
    ASSERT_FALSE(r) << which;
    EXPECT_EQ(r.error().status, Status::kOutOfRange) << which;
  }
}

TEST_F(ResourcesTest, AnExhaustedPoolIsAClearError) {
  ResourceTable t = make([&](TableBuilder& b) {
    EXPECT_EQ(b.add_carveout("big", kRscAddrAny, kRscAddrAny, 0x100000, 0), Status::kOk);
  });
  DeviceMemoryPool pool(*remote_.subregion(0x80000, 0x80000));
  ResourceAssigner assign(t, regions_, pool);
  auto r = assign.run();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, Status::kNoMemory);
  EXPECT_EQ(r.error().entry, 0U);
}

TEST_F(ResourcesTest, VendorEntriesGoToTheHandler) {
  const std::array<std::byte, 8> body{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4},
                                      std::byte{5}, std::byte{6}, std::byte{7}, std::byte{8}};
  ResourceTable t = make([&](TableBuilder& b) { EXPECT_EQ(b.add_vendor(200, body), Status::kOk); });
  DeviceMemoryPool pool(*remote_.subregion(0x80000, 0x80000));
  ResourceAssigner quiet(t, regions_, pool);
  EXPECT_TRUE(quiet.run()) << "without a handler, vendor entries are left alone";
  ResourceAssigner assign(t, regions_, pool);
  std::uint32_t seen_type = 0;
  std::size_t seen_size = 0;
  assign.set_vendor_handler([&](std::uint32_t, std::uint32_t type, metal::IoRegion b) {
    seen_type = type;
    seen_size = b.size();
    return Status::kNotSupported;
  });
  auto r = assign.run();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, Status::kNotSupported);
  EXPECT_EQ(seen_type, 200U);
  EXPECT_GE(seen_size, body.size());
}

TEST_F(ResourcesTest, TraceBuffersAreReadUpToTheirEnd) {
  const TraceBuffer trace{0, kRemoteBase + 0x7000, 16, {}};
  std::memcpy(mem_.data() + 0x7000, "hello\0garbage", 13);
  std::array<char, 32> out{};
  auto n = read_trace(regions_, trace, out);
  ASSERT_TRUE(n);
  EXPECT_EQ(std::string(out.data(), *n), "hello");
  std::memset(mem_.data() + 0x7000, 'x', 16);  // no NUL: the whole buffer
  n = read_trace(regions_, trace, out);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 16U);
  std::array<char, 4> small{};
  EXPECT_EQ(read_trace(regions_, trace, small).error(), Status::kTooLarge);
  const TraceBuffer outside{0, 0x1000, 16, {}};
  EXPECT_EQ(read_trace(regions_, outside, out).error(), Status::kOutOfRange);
}

}  // namespace
}  // namespace amp::rproc
