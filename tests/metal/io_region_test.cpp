// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/io_region.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <limits>
#include <thread>
#include <vector>

namespace amp::metal {
namespace {

constexpr DeviceAddress kBase = 0x3ed0'0000;
constexpr DeviceAddress kMax = std::numeric_limits<DeviceAddress>::max();

class IoRegionTest : public ::testing::Test {
 protected:
  alignas(64) std::array<std::byte, 256> mem_{};
  IoRegion region_{mem_, kBase};
};

TEST_F(IoRegionTest, TranslatesBetweenOffsetDeviceAddressAndPointer) {
  EXPECT_EQ(region_.size(), 256U);
  EXPECT_EQ(*region_.offset_of(kBase), 0U);
  EXPECT_EQ(*region_.offset_of(kBase + 255), 255U);
  EXPECT_EQ(*region_.device_address_of(0), kBase);
  EXPECT_EQ(*region_.device_address_of(100), kBase + 100);
  EXPECT_EQ(*region_.pointer_at(17), mem_.data() + 17);
  EXPECT_EQ(*region_.pointer_of(kBase + 17), mem_.data() + 17);
  EXPECT_EQ(*region_.offset_of_pointer(mem_.data() + 200), 200U);
  EXPECT_EQ(*region_.device_address_of_pointer(mem_.data() + 200), kBase + 200);
  auto s = region_.span_at(10, 20);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->data(), mem_.data() + 10);
  EXPECT_EQ(s->size(), 20U);
}

TEST_F(IoRegionTest, RangesMustFitWhole) {
  EXPECT_EQ(*region_.offset_of(kBase + 200, 56), 200U);
  EXPECT_EQ(region_.offset_of(kBase + 200, 57).error(), Status::kOutOfRange);
  EXPECT_EQ(*region_.device_address_of(0, 256), kBase);
  EXPECT_EQ(region_.device_address_of(1, 256).error(), Status::kOutOfRange);
  EXPECT_EQ(region_.pointer_at(250, 7).error(), Status::kOutOfRange);
  EXPECT_EQ(region_.span_at(0, 257).error(), Status::kOutOfRange);
  EXPECT_EQ(region_.offset_of_pointer(mem_.data() + 255, 2).error(), Status::kOutOfRange);
}

TEST_F(IoRegionTest, EndPositionIsValidOnlyForEmptyRanges) {
  EXPECT_EQ(*region_.offset_of(kBase + 256, 0), 256U);
  EXPECT_EQ(region_.offset_of(kBase + 256, 1).error(), Status::kOutOfRange);
  EXPECT_EQ(*region_.pointer_at(256, 0), mem_.data() + 256);
  EXPECT_EQ(region_.pointer_at(256, 1).error(), Status::kOutOfRange);
  EXPECT_EQ(region_.pointer_at(257, 0).error(), Status::kOutOfRange);
}

TEST_F(IoRegionTest, RejectsAddressesBelowAndAbove) {
  EXPECT_EQ(region_.offset_of(kBase - 1).error(), Status::kOutOfRange);
  EXPECT_EQ(region_.offset_of(0).error(), Status::kOutOfRange);
  EXPECT_EQ(region_.offset_of(kBase + 256).error(), Status::kOutOfRange);
  EXPECT_EQ(region_.offset_of(kMax).error(), Status::kOutOfRange);
  EXPECT_EQ(region_.pointer_of(kBase - 1).error(), Status::kOutOfRange);
  EXPECT_EQ(region_.device_address_of(256).error(), Status::kOutOfRange);
  EXPECT_EQ(region_.pointer_at(std::numeric_limits<std::size_t>::max()).error(), Status::kOutOfRange);
}

TEST_F(IoRegionTest, LengthsThatOverflowAreRejected) {
  const std::size_t huge = std::numeric_limits<std::size_t>::max();
  EXPECT_EQ(region_.offset_of(kBase + 1, huge).error(), Status::kOutOfRange);
  EXPECT_EQ(region_.pointer_at(1, huge).error(), Status::kOutOfRange);
  EXPECT_EQ(region_.device_address_of(1, huge).error(), Status::kOutOfRange);
  std::array<std::byte, 4> out{};
  EXPECT_EQ(region_.read(huge - 1, out), Status::kOutOfRange);
  EXPECT_EQ(region_.fill(2, std::byte{0}, huge - 1), Status::kOutOfRange);
}

TEST_F(IoRegionTest, PointersOutsideAreRejected) {
  std::array<std::byte, 4> other{};
  EXPECT_EQ(region_.offset_of_pointer(other.data()).error(), Status::kOutOfRange);
  EXPECT_EQ(region_.offset_of_pointer(mem_.data() + 256).error(), Status::kOutOfRange);
  EXPECT_EQ(*region_.offset_of_pointer(mem_.data() + 256, 0), 256U);
  EXPECT_EQ(region_.offset_of_pointer(nullptr).error(), Status::kOutOfRange);
  EXPECT_EQ(region_.device_address_of_pointer(other.data()).error(), Status::kOutOfRange);
}

TEST(IoRegion, EmptyRegionRefusesEverything) {
  IoRegion empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.offset_of(0).error(), Status::kOutOfRange);
  EXPECT_EQ(empty.pointer_at(0).error(), Status::kOutOfRange);
  EXPECT_EQ(empty.load<std::uint32_t>(0).error(), Status::kOutOfRange);
  std::byte b{};
  EXPECT_EQ(empty.offset_of_pointer(&b).error(), Status::kOutOfRange);
}

TEST(IoRegion, DeviceRangeAtTheTopOfTheAddressSpace) {
  std::array<std::byte, 16> mem{};
  const IoRegion top(mem, kMax - 15);  // answers to [kMax - 15, kMax]
  EXPECT_EQ(*top.offset_of(kMax), 15U);
  EXPECT_EQ(*top.device_address_of(15), kMax);
  EXPECT_EQ(top.offset_of(kMax, 2).error(), Status::kOutOfRange);
  const IoRegion past(mem, kMax - 7);  // the last 8 bytes answer to no address
  EXPECT_EQ(*past.device_address_of(7), kMax);
  EXPECT_EQ(past.device_address_of(8).error(), Status::kOverflow);
  EXPECT_EQ(past.device_address_of(6, 4).error(), Status::kOverflow);
}

TEST_F(IoRegionTest, TypedLoadsAndStores) {
  ASSERT_EQ(region_.store<std::uint8_t>(1, 0xab), Status::kOk);
  ASSERT_EQ(region_.store<std::uint16_t>(2, 0xbeef), Status::kOk);
  ASSERT_EQ(region_.store<std::uint32_t>(4, 0xdeadbeef, std::memory_order_relaxed), Status::kOk);
  ASSERT_EQ(region_.store<std::uint64_t>(8, 0x0123456789abcdefULL, std::memory_order_seq_cst), Status::kOk);
  EXPECT_EQ(*region_.load<std::uint8_t>(1), 0xab);
  EXPECT_EQ(*region_.load<std::uint16_t>(2), 0xbeef);
  EXPECT_EQ(*region_.load<std::uint32_t>(4, std::memory_order_relaxed), 0xdeadbeefU);
  EXPECT_EQ(*region_.load<std::uint64_t>(8, std::memory_order_seq_cst), 0x0123456789abcdefULL);
  // Little-endian host: the bytes are where the wire format expects them.
  EXPECT_EQ(mem_[4], std::byte{0xef});
  EXPECT_EQ(mem_[7], std::byte{0xde});
}

TEST_F(IoRegionTest, TypedAccessChecksBoundsAndAlignment) {
  EXPECT_EQ(region_.load<std::uint32_t>(253).error(), Status::kOutOfRange);
  EXPECT_EQ(region_.load<std::uint64_t>(252).error(), Status::kOutOfRange);
  EXPECT_EQ(region_.load<std::uint32_t>(256).error(), Status::kOutOfRange);
  EXPECT_EQ(region_.store<std::uint16_t>(255, 1), Status::kOutOfRange);
  EXPECT_EQ(region_.load<std::uint32_t>(2).error(), Status::kMisaligned);
  EXPECT_EQ(region_.store<std::uint64_t>(4, 1), Status::kMisaligned);
  EXPECT_EQ(region_.load<std::uint16_t>(1).error(), Status::kMisaligned);
  EXPECT_EQ(region_.atomic<std::uint32_t>(6).error(), Status::kMisaligned);
  EXPECT_EQ(region_.atomic<std::uint32_t>(256).error(), Status::kOutOfRange);
  // Nothing was written by the failed stores.
  for (std::byte b : mem_) EXPECT_EQ(b, std::byte{0});
}

TEST_F(IoRegionTest, AtomicReadModifyWriteAcrossThreads) {
  auto counter = region_.atomic<std::uint32_t>(64);
  ASSERT_TRUE(counter);
  constexpr int kPerThread = 10000;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this] {
      auto c = region_.atomic<std::uint32_t>(64);
      for (int i = 0; i < kPerThread; ++i) c->fetch_add(1, std::memory_order_relaxed);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter->load(), 4U * kPerThread);
  std::uint32_t expected = 4U * kPerThread;
  EXPECT_TRUE(counter->compare_exchange_strong(expected, 7));
  EXPECT_EQ(*region_.load<std::uint32_t>(64), 7U);
}

TEST_F(IoRegionTest, BlockReadWriteFill) {
  const std::array<std::byte, 5> in{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}, std::byte{5}};
  ASSERT_EQ(region_.write(251, in), Status::kOk);
  std::array<std::byte, 5> out{};
  ASSERT_EQ(region_.read(251, out), Status::kOk);
  EXPECT_EQ(out, in);
  EXPECT_EQ(region_.write(252, in), Status::kOutOfRange);
  EXPECT_EQ(region_.read(252, out), Status::kOutOfRange);
  ASSERT_EQ(region_.fill(0, std::byte{0x5a}, 251), Status::kOk);
  EXPECT_EQ(mem_[0], std::byte{0x5a});
  EXPECT_EQ(mem_[250], std::byte{0x5a});
  EXPECT_EQ(mem_[251], std::byte{1});
  EXPECT_EQ(region_.fill(200, std::byte{0}, 57), Status::kOutOfRange);
  EXPECT_EQ(mem_[200], std::byte{0x5a}) << "a failed fill must not write anything";
  EXPECT_EQ(region_.write(256, std::span<const std::byte>{}), Status::kOk);
  EXPECT_EQ(region_.write(257, std::span<const std::byte>{}), Status::kOutOfRange);
}

TEST_F(IoRegionTest, SubregionKeepsDeviceAddressingAndBounds) {
  auto sub = region_.subregion(64, 32);
  ASSERT_TRUE(sub);
  EXPECT_EQ(sub->size(), 32U);
  EXPECT_EQ(*sub->device_address_of(0), kBase + 64);
  EXPECT_EQ(*sub->offset_of(kBase + 64 + 31), 31U);
  EXPECT_EQ(sub->offset_of(kBase + 63).error(), Status::kOutOfRange);
  EXPECT_EQ(sub->offset_of(kBase + 96).error(), Status::kOutOfRange);
  EXPECT_EQ(*sub->pointer_at(0), mem_.data() + 64);
  EXPECT_EQ(sub->pointer_at(32, 1).error(), Status::kOutOfRange);
  EXPECT_EQ(region_.subregion(250, 7).error(), Status::kOutOfRange);
  EXPECT_EQ(region_.subregion(257, 0).error(), Status::kOutOfRange);
  EXPECT_TRUE(region_.subregion(256, 0));
}

// A paged region: 4 pages of 64 bytes, scattered in device-address space; pages 1 and 2 are contiguous.
class PagedIoRegionTest : public ::testing::Test {
 protected:
  static constexpr unsigned kShift = 6;
  alignas(64) std::array<std::byte, 256> mem_{};
  std::array<DeviceAddress, 4> pages_{0x9000, 0x2000, 0x2040, 0x100000};
  IoRegion region_ = *IoRegion::paged(mem_, pages_, kShift);
};

TEST_F(PagedIoRegionTest, TranslatesThroughThePageTable) {
  EXPECT_TRUE(region_.is_paged());
  EXPECT_EQ(*region_.offset_of(0x9000), 0U);
  EXPECT_EQ(*region_.offset_of(0x903f), 63U);
  EXPECT_EQ(*region_.offset_of(0x2000), 64U);
  EXPECT_EQ(*region_.offset_of(0x2050), 144U);
  EXPECT_EQ(*region_.offset_of(0x100010), 208U);
  EXPECT_EQ(*region_.device_address_of(0), 0x9000U);
  EXPECT_EQ(*region_.device_address_of(70), 0x2006U);
  EXPECT_EQ(*region_.device_address_of(255), 0x10003fU);
  EXPECT_EQ(*region_.pointer_of(0x2041), mem_.data() + 129);
}

TEST_F(PagedIoRegionTest, RangesMayCrossOnlyContiguousPages) {
  EXPECT_EQ(*region_.offset_of(0x2030, 0x40), 112U);  // page 1 -> page 2, contiguous
  EXPECT_EQ(*region_.device_address_of(120, 16), 0x2038U);
  EXPECT_EQ(region_.offset_of(0x9030, 0x20).error(), Status::kOutOfRange);  // page 0 -> 1: not contiguous
  EXPECT_EQ(region_.device_address_of(60, 8).error(), Status::kOutOfRange);
  EXPECT_EQ(region_.offset_of(0x2070, 0x20).error(), Status::kOutOfRange);    // page 2 -> 3
  EXPECT_EQ(region_.offset_of(0x100030, 0x11).error(), Status::kOutOfRange);  // past the end
}

TEST_F(PagedIoRegionTest, AddressesInNoPageAreRejected) {
  EXPECT_EQ(region_.offset_of(0x8fff).error(), Status::kOutOfRange);
  EXPECT_EQ(region_.offset_of(0x9040).error(), Status::kOutOfRange);
  EXPECT_EQ(region_.offset_of(0x2080).error(), Status::kOutOfRange);
  EXPECT_EQ(region_.offset_of(0).error(), Status::kOutOfRange);
  EXPECT_EQ(region_.offset_of(kMax).error(), Status::kOutOfRange);
  EXPECT_EQ(region_.device_address_of(256).error(), Status::kOutOfRange);
}

TEST_F(PagedIoRegionTest, EndPositionOfAPagedRegion) {
  EXPECT_EQ(*region_.offset_of(0x100040, 0), 256U);
  EXPECT_EQ(*region_.device_address_of(256, 0), 0x100040U);
}

TEST_F(PagedIoRegionTest, SubregionOfAPagedRegion) {
  auto sub = region_.subregion(100, 60);  // covers [100, 160): pages 1 and 2
  ASSERT_TRUE(sub);
  EXPECT_EQ(*sub->device_address_of(0), 0x2024U);
  EXPECT_EQ(*sub->offset_of(0x2024), 0U);
  EXPECT_EQ(*sub->offset_of(0x205f), 59U);
  EXPECT_EQ(sub->offset_of(0x2023).error(), Status::kOutOfRange);  // in page 1 but before the subregion
  EXPECT_EQ(sub->offset_of(0x2060).error(), Status::kOutOfRange);  // in page 2 but after it
  EXPECT_EQ(sub->offset_of(0x9000).error(), Status::kOutOfRange);  // another page of the parent
  EXPECT_EQ(*sub->pointer_of(0x2030), mem_.data() + 112);
}

// Found by fuzz_io_region: an empty window translates its one position both ways.
TEST_F(PagedIoRegionTest, EmptySubregionsTranslateTheirPosition) {
  for (std::size_t at : {std::size_t{64}, std::size_t{100}, std::size_t{256}}) {
    auto sub = region_.subregion(at, 0);
    ASSERT_TRUE(sub) << at;
    auto da = sub->device_address_of(0, 0);
    ASSERT_TRUE(da) << at;
    auto off = sub->offset_of(*da, 0);
    ASSERT_TRUE(off) << at;
    EXPECT_EQ(*off, 0U);
    EXPECT_EQ(sub->offset_of(*da, 1).error(), Status::kOutOfRange);
  }
}

// Found by fuzz_io_region: when pages alias, a range is found through whichever alias is contiguous.
TEST(IoRegion, AliasedPagesFindTheContiguousRun) {
  alignas(64) std::array<std::byte, 256> mem{};
  // Pages 0 and 2 both answer to 0x1000; only page 2 is followed by its neighbour 0x1040.
  const std::array<DeviceAddress, 4> pages{0x1000, 0x5000, 0x1000, 0x1040};
  auto r = IoRegion::paged(mem, pages, 6);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r->offset_of(0x1010, 8), 16U);      // the first alias serves a short range
  EXPECT_EQ(*r->offset_of(0x1030, 0x20), 176U);  // only the second alias runs on into 0x1040
  EXPECT_EQ(*r->device_address_of(176, 0x20), 0x1030U);
}

TEST(IoRegion, PagedRegionArgumentsAreValidated) {
  std::array<std::byte, 256> mem{};
  std::array<DeviceAddress, 3> too_few{0, 0x40, 0x80};
  EXPECT_EQ(IoRegion::paged(mem, too_few, 6).error(), Status::kInvalidArgument);
  std::array<DeviceAddress, 4> pages{0, 0x40, 0x80, 0xc0};
  EXPECT_EQ(IoRegion::paged(mem, pages, 0).error(), Status::kInvalidArgument);
  EXPECT_EQ(IoRegion::paged(mem, pages, 64).error(), Status::kInvalidArgument);
  std::array<DeviceAddress, 4> wraps{0, 0x40, 0x80, kMax - 10};
  EXPECT_EQ(IoRegion::paged(mem, wraps, 6).error(), Status::kInvalidArgument);
  EXPECT_TRUE(IoRegion::paged(mem, pages, 6));
}

}  // namespace
}  // namespace amp::metal
