// SPDX-License-Identifier: BSD-3-Clause
// The bare-metal port's static registries of memory regions and devices.
#include <gtest/gtest.h>

#include <cstddef>
#include <string>
#include <vector>

#include "amp/metal/baremetal/board.hpp"
#include "amp/metal/baremetal/device.hpp"
#include "amp/metal/baremetal/irq.hpp"

namespace amp::metal::baremetal {
namespace {

std::byte g_shm[256];
std::byte g_regs[64];

// Names the registries may keep: they outlive every test (the registry stores string_views).
std::vector<std::string>& many_names() {
  static std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (std::size_t i = 0; i < kMaxRegions + kMaxDevices + 2; ++i) v.push_back("item" + std::to_string(i));
    return v;
  }();
  return names;
}

int g_sections = 0;  // critical sections entered (through the fake irq_save)
std::uintptr_t fake_irq_save() {
  ++g_sections;
  return 0;
}
void fake_irq_restore(std::uintptr_t) {}

class BaremetalRegistry : public ::testing::Test {
 protected:
  void SetUp() override {
    g_sections = 0;
    BoardHooks h;
    h.irq_save = fake_irq_save;
    h.irq_restore = fake_irq_restore;
    set_board_hooks(h);
  }
  void TearDown() override {
    set_board_hooks(BoardHooks{});
    for (const char* n : {"shm", "regs", "other", "mbox", "uart"}) {
      static_cast<void>(unregister_region(n));
      static_cast<void>(unregister_device(n));
    }
    for (const std::string& n : many_names()) {
      static_cast<void>(unregister_region(n));
      static_cast<void>(unregister_device(n));
    }
  }
};

TEST_F(BaremetalRegistry, RegionsRegisterFindAndUnregister) {
  const IoRegion shm(g_shm, 0x8000'0000);
  EXPECT_EQ(find_region("shm").error(), Status::kNotFound);
  ASSERT_EQ(register_region("shm", shm), Status::kOk);
  ASSERT_EQ(register_region("regs", IoRegion(g_regs, 0x4000'0000)), Status::kOk);
  EXPECT_GT(g_sections, 0) << "registry changes run inside critical sections";

  auto found = find_region("shm");
  ASSERT_TRUE(found);
  EXPECT_EQ(found->bytes().data(), g_shm);
  EXPECT_EQ(found->size(), sizeof g_shm);
  EXPECT_EQ(*found->device_address_of(16), 0x8000'0010U);
  auto regs = find_region("regs");
  ASSERT_TRUE(regs);
  EXPECT_EQ(regs->bytes().data(), g_regs);

  // Lookup compares the bytes of the name, not the pointer.
  const std::string dynamic_name = "sh" + std::string("m");
  EXPECT_TRUE(find_region(dynamic_name));
  EXPECT_EQ(find_region("sh").error(), Status::kNotFound);
  EXPECT_EQ(find_region("shm2").error(), Status::kNotFound);
  EXPECT_EQ(find_region("").error(), Status::kNotFound);

  EXPECT_EQ(unregister_region("shm"), Status::kOk);
  EXPECT_EQ(find_region("shm").error(), Status::kNotFound);
  EXPECT_EQ(unregister_region("shm"), Status::kNotFound);
  EXPECT_TRUE(find_region("regs")) << "other entries are untouched";
}

TEST_F(BaremetalRegistry, RegionErrors) {
  const IoRegion shm(g_shm, 0);
  EXPECT_EQ(register_region("", shm), Status::kInvalidArgument);
  ASSERT_EQ(register_region("shm", shm), Status::kOk);
  EXPECT_EQ(register_region("shm", IoRegion(g_regs, 0)), Status::kAlreadyExists);
  EXPECT_EQ(find_region("shm")->bytes().data(), g_shm) << "the first registration stays";
  EXPECT_EQ(unregister_region("nope"), Status::kNotFound);
}

TEST_F(BaremetalRegistry, RegionTableFullThenReusable) {
  const auto& names = many_names();
  for (std::size_t i = 0; i < kMaxRegions; ++i) {
    ASSERT_EQ(register_region(names[i], IoRegion(g_shm, i * 0x1000)), Status::kOk) << i;
  }
  EXPECT_EQ(register_region(names[kMaxRegions], IoRegion(g_shm, 0)), Status::kNoMemory);
  EXPECT_EQ(register_region(names[0], IoRegion(g_shm, 0)), Status::kAlreadyExists)
      << "a duplicate is reported as such even when the table is full";
  for (std::size_t i = 0; i < kMaxRegions; ++i) {
    auto r = find_region(names[i]);
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(*r->device_address_of(0), i * 0x1000) << i;
  }
  ASSERT_EQ(unregister_region(names[3]), Status::kOk);
  EXPECT_EQ(register_region(names[kMaxRegions], IoRegion(g_regs, 0x42)), Status::kOk);
  EXPECT_EQ(*find_region(names[kMaxRegions])->device_address_of(0), 0x42U);
  EXPECT_EQ(find_region(names[3]).error(), Status::kNotFound);
}

const IoRegion kMboxRegions[] = {IoRegion(g_regs, 0x4000'0000), IoRegion(g_shm, 0x8000'0000)};
const Device kMbox{"mbox", kMboxRegions, 7};
const Device kUart{"uart", std::span<const IoRegion>(kMboxRegions, 1)};

TEST_F(BaremetalRegistry, DevicesRegisterFindAndUnregister) {
  EXPECT_EQ(find_device("mbox").error(), Status::kNotFound);
  ASSERT_EQ(register_device(kMbox), Status::kOk);
  ASSERT_EQ(register_device(kUart), Status::kOk);

  auto mbox = find_device("mbox");
  ASSERT_TRUE(mbox);
  EXPECT_EQ(*mbox, &kMbox) << "the registry keeps the caller's static object";
  EXPECT_EQ((*mbox)->irq_vector, 7);
  EXPECT_EQ((*mbox)->regions.size(), 2U);
  auto uart = find_device("uart");
  ASSERT_TRUE(uart);
  EXPECT_EQ((*uart)->irq_vector, -1);

  auto r1 = find_device_region("mbox", 1);
  ASSERT_TRUE(r1);
  EXPECT_EQ(r1->bytes().data(), g_shm);
  EXPECT_EQ(kMbox.region(0)->bytes().data(), g_regs);
  EXPECT_EQ(find_device_region("mbox", 2).error(), Status::kOutOfRange);
  EXPECT_EQ(find_device_region("uart", 1).error(), Status::kOutOfRange);
  EXPECT_EQ(find_device_region("nope", 0).error(), Status::kNotFound);
  EXPECT_EQ(kMbox.region(5).error(), Status::kOutOfRange);

  EXPECT_EQ(unregister_device("mbox"), Status::kOk);
  EXPECT_EQ(find_device("mbox").error(), Status::kNotFound);
  EXPECT_EQ(unregister_device("mbox"), Status::kNotFound);
  EXPECT_TRUE(find_device("uart"));
}

TEST_F(BaremetalRegistry, DeviceErrors) {
  static const Device kNoName{"", kMboxRegions};
  static const Device kBadIrq{"other", {}, -2};
  static const Device kIrqTooBig{"other", {}, static_cast<int>(kMaxIrqVectors)};
  static const Device kLastIrq{"other", {}, static_cast<int>(kMaxIrqVectors) - 1};
  static const Device kMboxAgain{"mbox", {}};
  EXPECT_EQ(register_device(kNoName), Status::kInvalidArgument);
  EXPECT_EQ(register_device(kBadIrq), Status::kInvalidArgument);
  EXPECT_EQ(register_device(kIrqTooBig), Status::kOutOfRange);
  EXPECT_EQ(register_device(kLastIrq), Status::kOk);
  ASSERT_EQ(register_device(kMbox), Status::kOk);
  EXPECT_EQ(register_device(kMboxAgain), Status::kAlreadyExists);
  EXPECT_EQ(*find_device("mbox"), &kMbox);
  EXPECT_EQ(find_device("").error(), Status::kNotFound);
  EXPECT_EQ(unregister_device(""), Status::kNotFound);
}

TEST_F(BaremetalRegistry, DeviceTableFullThenReusable) {
  const auto& names = many_names();
  static std::vector<Device> devices;  // static: the registry keeps pointers to them
  devices.clear();
  devices.reserve(kMaxDevices + 1);
  for (std::size_t i = 0; i <= kMaxDevices; ++i)
    devices.push_back(Device{names[i], {}, static_cast<int>(i % 4)});
  for (std::size_t i = 0; i < kMaxDevices; ++i) ASSERT_EQ(register_device(devices[i]), Status::kOk) << i;
  EXPECT_EQ(register_device(devices[kMaxDevices]), Status::kNoMemory);
  for (std::size_t i = 0; i < kMaxDevices; ++i) {
    auto d = find_device(names[i]);
    ASSERT_TRUE(d) << i;
    EXPECT_EQ(*d, &devices[i]);
  }
  ASSERT_EQ(unregister_device(names[0]), Status::kOk);
  EXPECT_EQ(register_device(devices[kMaxDevices]), Status::kOk);
  EXPECT_EQ(*find_device(names[kMaxDevices]), &devices[kMaxDevices]);
  for (std::size_t i = 0; i <= kMaxDevices; ++i) static_cast<void>(unregister_device(names[i]));
}

TEST_F(BaremetalRegistry, RegionsAndDevicesHaveSeparateNamespaces) {
  ASSERT_EQ(register_region("mbox", IoRegion(g_shm, 0)), Status::kOk);
  ASSERT_EQ(register_device(kMbox), Status::kOk);
  EXPECT_TRUE(find_region("mbox"));
  EXPECT_TRUE(find_device("mbox"));
}

}  // namespace
}  // namespace amp::metal::baremetal
