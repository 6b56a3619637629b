// SPDX-License-Identifier: BSD-3-Clause
#include "amp/rpmsg/address_index.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <map>
#include <random>
#include <vector>

namespace amp::rpmsg {
namespace {

// The index never dereferences what it stores: distinct fake pointers stand for endpoints.
Endpoint* fake(std::uintptr_t n) {
  return reinterpret_cast<Endpoint*>((n + 1) * 16);
}

TEST(AddressIndex, SlotsForIsTwiceThePowerOfTwoAbove) {
  EXPECT_EQ(AddressIndex::slots_for(0), 2U);
  EXPECT_EQ(AddressIndex::slots_for(1), 2U);
  EXPECT_EQ(AddressIndex::slots_for(2), 4U);
  EXPECT_EQ(AddressIndex::slots_for(3), 8U);
  EXPECT_EQ(AddressIndex::slots_for(8), 16U);
  EXPECT_EQ(AddressIndex::slots_for(1024), 2048U);
}

TEST(AddressIndex, HoldsHalfItsSlotsAndRefusesMore) {
  std::array<AddressIndex::Slot, 16> slots{};
  AddressIndex index(slots);
  ASSERT_EQ(index.capacity(), 8U);
  for (std::uint32_t a = 0; a < 8; ++a) ASSERT_TRUE(index.insert(0x400 + a, fake(a))) << a;
  EXPECT_FALSE(index.insert(0x500, fake(99))) << "full";
  EXPECT_EQ(index.find(0x500), nullptr);
  EXPECT_EQ(index.size(), 8U);
  for (std::uint32_t a = 0; a < 8; ++a) EXPECT_EQ(index.find(0x400 + a), fake(a)) << a;
  ASSERT_TRUE(index.erase(0x403));
  EXPECT_TRUE(index.insert(0x500, fake(99))) << "room again";
  EXPECT_EQ(index.find(0x500), fake(99));
}

TEST(AddressIndex, ADuplicateOrANullEndpointChangesNothing) {
  std::array<AddressIndex::Slot, 8> slots{};
  AddressIndex index(slots);
  ASSERT_TRUE(index.insert(0x400, fake(1)));
  EXPECT_FALSE(index.insert(0x400, fake(2)));
  EXPECT_FALSE(index.insert(0x401, nullptr));
  EXPECT_EQ(index.find(0x400), fake(1));
  EXPECT_EQ(index.find(0x401), nullptr);
  EXPECT_EQ(index.size(), 1U);
  EXPECT_FALSE(index.erase(0x401));
}

TEST(AddressIndex, StorageTooSmallHoldsNothingAndOddSizesUseTheirPowerOfTwo) {
  std::array<AddressIndex::Slot, 1> one{};
  AddressIndex none(one);
  EXPECT_EQ(none.capacity(), 0U);
  EXPECT_FALSE(none.insert(1, fake(1)));
  EXPECT_EQ(none.find(1), nullptr);
  EXPECT_FALSE(none.erase(1));
  AddressIndex empty;
  EXPECT_EQ(empty.capacity(), 0U);
  EXPECT_EQ(empty.find(0), nullptr);
  std::array<AddressIndex::Slot, 13> odd{};
  AddressIndex eight(odd);
  EXPECT_EQ(eight.capacity(), 4U);
}

TEST(AddressIndex, EveryAddressIsFoundAmongCollisionsAndAtTheEdges) {
  // Addresses the allocator gives (consecutive), the reserved ones, and the extremes of 32 bits.
  std::array<AddressIndex::Slot, 64> slots{};
  AddressIndex index(slots);
  const std::vector<std::uint32_t> addrs = {
      0, 1, 53, 0x400, 0x401, 0x402, 0x403, 0x404, 0x405, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF};
  for (std::size_t i = 0; i < addrs.size(); ++i) ASSERT_TRUE(index.insert(addrs[i], fake(i)));
  for (std::size_t i = 0; i < addrs.size(); ++i) EXPECT_EQ(index.find(addrs[i]), fake(i)) << addrs[i];
  EXPECT_EQ(index.find(2), nullptr);
  EXPECT_EQ(index.find(0x406), nullptr);
}

TEST(AddressIndex, RandomInsertsAndErasesAgreeWithAMap) {
  // Tables small enough to be full often and to wrap: backward-shift deletion must keep every entry
  // reachable, whatever was erased before it.
  for (const std::size_t n : {2U, 4U, 16U, 256U}) {
    std::vector<AddressIndex::Slot> slots(n);
    AddressIndex index(slots);
    std::map<std::uint32_t, Endpoint*> model;
    std::mt19937 rng(static_cast<std::uint32_t>(n));
    // Few distinct keys, so that inserts, erases and lookups hit each other.
    std::uniform_int_distribution<std::uint32_t> key(0x400, 0x400 + static_cast<std::uint32_t>(n));
    for (std::uintptr_t step = 0; step < 20000; ++step) {
      const std::uint32_t k = key(rng);
      switch (rng() % 3) {
        case 0: {
          const bool fits = model.size() < n / 2 && model.count(k) == 0;
          ASSERT_EQ(index.insert(k, fake(step)), fits) << n << " step " << step;
          if (fits) model[k] = fake(step);
          break;
        }
        case 1:
          ASSERT_EQ(index.erase(k), model.erase(k) == 1) << n << " step " << step;
          break;
        default: {
          const auto it = model.find(k);
          ASSERT_EQ(index.find(k), it == model.end() ? nullptr : it->second) << n << " step " << step;
        }
      }
      ASSERT_EQ(index.size(), model.size());
    }
    for (const auto& [k, ep] : model) EXPECT_EQ(index.find(k), ep);
    index.clear();
    EXPECT_EQ(index.size(), 0U);
    for (const auto& [k, ep] : model) EXPECT_EQ(index.find(k), nullptr);
  }
}

}  // namespace
}  // namespace amp::rpmsg
