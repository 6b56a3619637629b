// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/linux/device.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

#include "amp/metal/linux/shared_memory.hpp"
#include "metal/fake_sysfs_fixture.hpp"

namespace amp::metal {
namespace {

using testing::fake_byte;
using testing::FakeSysfs;
using testing::FakeUioMapSpec;
using ::testing::HasSubstr;

class DeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // uio0: two maps, the second starting 0x80 bytes into its page (as the kernel reports an unaligned
    // region).
    fake_.add_uio(
        "uio0", "remoteproc-shm",
        {{"ctrl", "0x40000000\n", "0x1000\n", "0x0\n"}, {"shm", "0x40001080\n", "0x100\n", "0x80\n"}}, 2);
    fake_.add_uio("uio1", "mailbox", {}, 1);
    fake_.add_platform_device("3ed00000.shm", "uio_pdrv_genirq", "uio0");
    fake_.add_platform_device("3ed80000.ipi", "other");
    fake_.add_platform_device("3ef00000.free");
    fake_.add_driver("uio_pdrv_genirq");
  }

  FakeSysfs fake_;
};

TEST_F(DeviceTest, OpenByNodeReadsNameVersionAndMaps) {
  auto dev = UioDevice::open_by_node("uio0", fake_.roots());
  ASSERT_TRUE(dev) << dev.error().message;
  EXPECT_EQ(dev->node(), "uio0");
  EXPECT_EQ(dev->name(), "remoteproc-shm");
  EXPECT_EQ(dev->version(), "0.1.1");
  EXPECT_EQ(dev->dev_path(), fake_.roots().dev / "uio0");
  ASSERT_EQ(dev->maps().size(), 2U);
  const UioMap& m0 = dev->maps()[0];
  EXPECT_EQ(m0.index, 0U);
  EXPECT_EQ(m0.name, "ctrl");
  EXPECT_EQ(m0.addr, 0x40000000U);
  EXPECT_EQ(m0.size, 0x1000U);
  EXPECT_EQ(m0.offset, 0U);
  const UioMap& m1 = dev->maps()[1];
  EXPECT_EQ(m1.index, 1U);
  EXPECT_EQ(m1.name, "shm");
  EXPECT_EQ(m1.addr, 0x40001080U);
  EXPECT_EQ(m1.size, 0x100U);
  EXPECT_EQ(m1.offset, 0x80U);
}

TEST_F(DeviceTest, DeviceWithoutMapsHasNone) {
  auto dev = UioDevice::open_by_node("uio1", fake_.roots());
  ASSERT_TRUE(dev) << dev.error().message;
  EXPECT_EQ(dev->name(), "mailbox");
  EXPECT_TRUE(dev->maps().empty());
  auto m = dev->map("0");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().status, Status::kNotFound);
  EXPECT_THAT(m.error().message, HasSubstr("maps: none"));
}

TEST_F(DeviceTest, FindByName) {
  auto dev = UioDevice::find_by_name("mailbox", fake_.roots());
  ASSERT_TRUE(dev) << dev.error().message;
  EXPECT_EQ(dev->node(), "uio1");
  auto shm = UioDevice::find_by_name("remoteproc-shm", fake_.roots());
  ASSERT_TRUE(shm) << shm.error().message;
  EXPECT_EQ(shm->node(), "uio0");

  auto none = UioDevice::find_by_name("nope", fake_.roots());
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().status, Status::kNotFound);
  EXPECT_THAT(none.error().message, HasSubstr("no UIO device named 'nope'"));
  EXPECT_THAT(none.error().message, HasSubstr("uio0 'remoteproc-shm', uio1 'mailbox'"));
}

TEST_F(DeviceTest, UnknownNodeListsTheAvailableOnes) {
  auto dev = UioDevice::open_by_node("uio7", fake_.roots());
  ASSERT_FALSE(dev);
  EXPECT_EQ(dev.error().status, Status::kNotFound);
  EXPECT_THAT(dev.error().message, HasSubstr("UIO device 'uio7' not found"));
  EXPECT_THAT(dev.error().message, HasSubstr("available: uio0, uio1"));

  auto bad = UioDevice::open_by_node("../uio0", fake_.roots());
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().status, Status::kInvalidArgument);
}

TEST_F(DeviceTest, ListsNodesInNumericOrder) {
  fake_.add_uio("uio10", "ten", {}, 1);
  fake_.add_uio("uio2", "two", {}, 1);
  fake_.dir().mkdir("sys/class/uio/not-a-uio");
  EXPECT_THAT(list_uio_nodes(fake_.roots()), ::testing::ElementsAre("uio0", "uio1", "uio2", "uio10"));
}

TEST_F(DeviceTest, MapLookupByNameAndIndex) {
  auto dev = UioDevice::open_by_node("uio0", fake_.roots());
  ASSERT_TRUE(dev) << dev.error().message;
  auto by_name = dev->map("shm");
  ASSERT_TRUE(by_name) << by_name.error().message;
  EXPECT_EQ((*by_name)->index, 1U);
  auto by_index = dev->map("0");
  ASSERT_TRUE(by_index) << by_index.error().message;
  EXPECT_EQ((*by_index)->name, "ctrl");

  auto missing = dev->map("data");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().status, Status::kNotFound);
  EXPECT_THAT(missing.error().message, HasSubstr("no map named 'data'"));
  EXPECT_THAT(missing.error().message, HasSubstr("0 'ctrl', 1 'shm'"));
  auto out_of_range = dev->map("2");
  ASSERT_FALSE(out_of_range);
  EXPECT_EQ(out_of_range.error().status, Status::kNotFound);
}

TEST(DeviceNoUio, MissingUioClassSaysToLoadTheModule) {
  FakeSysfs fake;  // No /sys/class/uio at all.
  const std::string expected = "no UIO devices: " + (fake.roots().sys / "class/uio").string() +
                               " does not exist (is the uio module loaded? modprobe uio_pdrv_genirq)";
  auto by_node = UioDevice::open_by_node("uio0", fake.roots());
  ASSERT_FALSE(by_node);
  EXPECT_EQ(by_node.error().status, Status::kNotFound);
  EXPECT_EQ(by_node.error().message, expected);
  auto by_name = UioDevice::find_by_name("x", fake.roots());
  ASSERT_FALSE(by_name);
  EXPECT_EQ(by_name.error().status, Status::kNotFound);
  EXPECT_EQ(by_name.error().message, expected);
  EXPECT_TRUE(list_uio_nodes(fake.roots()).empty());
}

TEST(SysfsNumber, ParsesStrictly) {
  auto v = parse_sysfs_number("0x3ed00000\n");
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, 0x3ed00000U);
  v = parse_sysfs_number("0xFFFFFFFFFFFFFFFF");
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, ~std::uint64_t{0});
  v = parse_sysfs_number("4096\n");
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, 4096U);

  for (const char* bad :
       {"", "\n", "0x", "0x\n", "0xZZ\n", "0x10 \n", " 0x10", "0x10\n\n", "12a", "-1", "0x1g"}) {
    auto r = parse_sysfs_number(bad);
    ASSERT_FALSE(r) << "'" << bad << "'";
    EXPECT_EQ(r.error().status, Status::kMalformed) << "'" << bad << "'";
  }
  auto big = parse_sysfs_number("0x10000000000000000\n");
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().status, Status::kOverflow);
  auto big_dec = parse_sysfs_number("18446744073709551616");
  ASSERT_FALSE(big_dec);
  EXPECT_EQ(big_dec.error().status, Status::kOverflow);
}

TEST_F(DeviceTest, GarbageSysfsValuesAreClearErrors) {
  const std::string base = "sys/class/uio/uio0/maps/map1/";
  struct Case {
    std::string file;
    std::string content;  // empty optional = delete the file
    bool remove;
    Status status;
    std::string message_part;
  };
  const Case cases[] = {
      {"addr", "0xnothex\n", false, Status::kMalformed, "expected a number, got '0xnothex'"},
      {"size", "0x1ffffffffffffffff\n", false, Status::kOverflow, "does not fit in 64 bits"},
      {"offset", "", false, Status::kMalformed, "expected a number"},
      {"addr", "0xffffffffffffff00\n", false, Status::kMalformed, "passes the end of the address space"},
      {"size", "", true, Status::kNotFound, "open "},
      {"name", "", true, Status::kNotFound, "open "},
      {"name", "two\nlines\n", false, Status::kMalformed, "expected one line of text"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file + " = '" + c.content + "'");
    FakeSysfs fake;
    fake.add_uio("uio0", "x",
                 {{"ctrl", "0x40000000\n", "0x1000\n", "0x0\n"}, {"shm", "0x0\n", "0x1000\n", "0x0\n"}}, 2);
    const auto path = fake.dir().path() / base / c.file;
    if (c.remove) {
      std::filesystem::remove(path);
    } else {
      fake.dir().write(base + c.file, c.content);
    }
    auto dev = UioDevice::open_by_node("uio0", fake.roots());
    ASSERT_FALSE(dev);
    EXPECT_EQ(dev.error().status, c.status);
    EXPECT_THAT(dev.error().message, HasSubstr(path.string()));
    EXPECT_THAT(dev.error().message, HasSubstr(c.message_part));
  }
}

TEST_F(DeviceTest, MissingNameFileIsAnError) {
  std::filesystem::remove(fake_.dir().path() / "sys/class/uio/uio1/name");
  auto dev = UioDevice::open_by_node("uio1", fake_.roots());
  ASSERT_FALSE(dev);
  EXPECT_EQ(dev.error().status, Status::kNotFound);
  EXPECT_THAT(dev.error().message, HasSubstr("sys/class/uio/uio1/name"));
}

TEST_F(DeviceTest, MapsTheUioRegionsFromTheDeviceNode) {
  auto dev = UioDevice::open_by_node("uio0", fake_.roots());
  ASSERT_TRUE(dev) << dev.error().message;
  const std::size_t page = FakeSysfs::page();

  auto ctrl = shm::open_uio(*dev, 0);
  ASSERT_TRUE(ctrl) << ctrl.error().message;
  EXPECT_EQ(ctrl->size(), 0x1000U);
  EXPECT_EQ(ctrl->device_address(), 0x40000000U);
  EXPECT_EQ(ctrl->description(), "uio:uio0/map0 (4096 bytes)");
  for (std::size_t i = 0; i < ctrl->size(); ++i) ASSERT_EQ(ctrl->bytes()[i], fake_byte(i)) << i;

  // Map 1's data sits at 1 page + its sub-page offset 0x80 in the node.
  auto shm = shm::open_uio(*dev, 1);
  ASSERT_TRUE(shm) << shm.error().message;
  EXPECT_EQ(shm->size(), 0x100U);
  EXPECT_EQ(shm->device_address(), 0x40001080U);
  for (std::size_t i = 0; i < shm->size(); ++i) ASSERT_EQ(shm->bytes()[i], fake_byte(page + 0x80 + i)) << i;
  auto p = shm->region().pointer_of(0x40001090);
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, shm->bytes().data() + 0x10);

  // Writes go to the node (MAP_SHARED).
  const char msg[] = "hello uio";
  std::memcpy(shm->bytes().data(), msg, sizeof msg);
  auto file = fake_.dir().read("dev/uio0");
  ASSERT_TRUE(file);
  EXPECT_EQ(file->substr(page + 0x80, sizeof msg), std::string(msg, sizeof msg));
  EXPECT_EQ(static_cast<std::byte>((*file)[page + 0x80 + sizeof msg]), fake_byte(page + 0x80 + sizeof msg));

  auto none = shm::open_uio(*dev, 2);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().status, Status::kNotFound);
}

TEST_F(DeviceTest, UioMapLargerThanTheNodeIsRefused) {
  fake_.add_uio("uio3", "short", {{"big", "0x50000000\n", "0x100000\n", "0x0\n"}}, 1);
  auto dev = UioDevice::open_by_node("uio3", fake_.roots());
  ASSERT_TRUE(dev) << dev.error().message;
  auto m = shm::open_uio(*dev, 0);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().status, Status::kOutOfRange);
  EXPECT_THAT(m.error().message, HasSubstr("too small"));
}

TEST_F(DeviceTest, OpenIrqReadsCountAndWritesEnable) {
  // Stand-in for /dev/uio1: the kernel returns the interrupt count on read; here the file holds it.
  const std::uint32_t count = 42;
  fake_.dir().write("dev/uio1", std::string(reinterpret_cast<const char*>(&count), sizeof count));
  auto dev = UioDevice::open_by_node("uio1", fake_.roots());
  ASSERT_TRUE(dev) << dev.error().message;
  auto fd = dev->open_irq();
  ASSERT_TRUE(fd) << fd.error().message;
  std::uint32_t got = 0;
  ASSERT_EQ(::read(fd->get(), &got, sizeof got), static_cast<ssize_t>(sizeof got));
  EXPECT_EQ(got, 42U);
  EXPECT_NE(::fcntl(fd->get(), F_GETFD) & FD_CLOEXEC, 0);

  const std::uint32_t enable = 1;
  ASSERT_EQ(::pwrite(fd->get(), &enable, sizeof enable, 0), static_cast<ssize_t>(sizeof enable));
  auto file = fake_.dir().read("dev/uio1");
  ASSERT_TRUE(file);
  ASSERT_EQ(file->size(), sizeof enable);
  std::uint32_t written = 0;
  std::memcpy(&written, file->data(), sizeof written);
  EXPECT_EQ(written, 1U);

  std::filesystem::remove(fake_.dir().path() / "dev/uio1");
  auto gone = dev->open_irq();
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().status, Status::kNotFound);
  EXPECT_THAT(gone.error().message, HasSubstr("dev/uio1"));
}

TEST_F(DeviceTest, PlatformDeviceFindAndDriver) {
  auto d = PlatformDevice::find("3ed00000.shm", fake_.roots());
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->name(), "3ed00000.shm");
  EXPECT_EQ(d->sysfs_path(), fake_.roots().sys / "bus/platform/devices/3ed00000.shm");
  EXPECT_EQ(d->driver(), std::optional<std::string>("uio_pdrv_genirq"));
  auto free_dev = PlatformDevice::find("3ef00000.free", fake_.roots());
  ASSERT_TRUE(free_dev);
  EXPECT_EQ(free_dev->driver(), std::nullopt);

  auto missing = PlatformDevice::find("foo", fake_.roots());
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().status, Status::kNotFound);
  EXPECT_EQ(missing.error().message,
            "platform device 'foo' not found in " + (fake_.roots().sys / "bus/platform/devices").string());
  auto bad = PlatformDevice::find("..", fake_.roots());
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().status, Status::kInvalidArgument);
}

TEST_F(DeviceTest, PlatformDeviceUio) {
  auto d = PlatformDevice::find("3ed00000.shm", fake_.roots());
  ASSERT_TRUE(d) << d.error().message;
  auto u = d->uio();
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->node(), "uio0");
  EXPECT_EQ(u->name(), "remoteproc-shm");

  auto other = PlatformDevice::find("3ed80000.ipi", fake_.roots());
  ASSERT_TRUE(other);
  auto not_uio = other->uio();
  ASSERT_FALSE(not_uio);
  EXPECT_EQ(not_uio.error().status, Status::kNotFound);
  EXPECT_THAT(not_uio.error().message, HasSubstr("'3ed80000.ipi' is not bound to a UIO driver"));
  EXPECT_THAT(not_uio.error().message, HasSubstr("bound to 'other'"));
  EXPECT_THAT(not_uio.error().message, HasSubstr("uio_pdrv_genirq"));
}

TEST_F(DeviceTest, BindDriverUnbindsTheOldDriverFirst) {
  auto d = PlatformDevice::find("3ed80000.ipi", fake_.roots());
  ASSERT_TRUE(d) << d.error().message;
  auto r = d->bind_driver();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(fake_.dir().read("sys/bus/platform/devices/3ed80000.ipi/driver_override"), "uio_pdrv_genirq");
  EXPECT_EQ(fake_.dir().read("sys/bus/platform/drivers/other/unbind"), "3ed80000.ipi");
  EXPECT_EQ(fake_.dir().read("sys/bus/platform/drivers/uio_pdrv_genirq/bind"), "3ed80000.ipi");
}

TEST_F(DeviceTest, BindDriverOfAnUnboundDeviceDoesNotUnbind) {
  auto d = PlatformDevice::find("3ef00000.free", fake_.roots());
  ASSERT_TRUE(d) << d.error().message;
  auto r = d->bind_driver("uio_pdrv_genirq");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(fake_.dir().read("sys/bus/platform/devices/3ef00000.free/driver_override"), "uio_pdrv_genirq");
  EXPECT_EQ(fake_.dir().read("sys/bus/platform/drivers/other/unbind"), "");
  EXPECT_EQ(fake_.dir().read("sys/bus/platform/drivers/uio_pdrv_genirq/bind"), "3ef00000.free");
}

TEST_F(DeviceTest, BindDriverAlreadyBoundIsANoOp) {
  fake_.dir().write("sys/bus/platform/devices/3ed00000.shm/driver_override", "untouched");
  auto d = PlatformDevice::find("3ed00000.shm", fake_.roots());
  ASSERT_TRUE(d) << d.error().message;
  auto r = d->bind_driver("uio_pdrv_genirq");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(fake_.dir().read("sys/bus/platform/devices/3ed00000.shm/driver_override"), "untouched");
  EXPECT_EQ(fake_.dir().read("sys/bus/platform/drivers/uio_pdrv_genirq/bind"), "");
  EXPECT_EQ(fake_.dir().read("sys/bus/platform/drivers/uio_pdrv_genirq/unbind"), "");
}

TEST_F(DeviceTest, BindDriverErrors) {
  auto d = PlatformDevice::find("3ef00000.free", fake_.roots());
  ASSERT_TRUE(d) << d.error().message;
  std::filesystem::remove_all(fake_.dir().path() / "sys/bus/platform/drivers/uio_pdrv_genirq");
  auto r = d->bind_driver();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, Status::kNotFound);
  EXPECT_THAT(r.error().message, HasSubstr("UIO driver 'uio_pdrv_genirq' is not loaded"));
  EXPECT_THAT(r.error().message, HasSubstr("modprobe uio_pdrv_genirq"));
  EXPECT_EQ(fake_.dir().read("sys/bus/platform/devices/3ef00000.free/driver_override"), "");

  // A kernel without driver_override: the failing write names the file.
  std::filesystem::remove(fake_.dir().path() / "sys/bus/platform/devices/3ef00000.free/driver_override");
  auto no_override = d->bind_driver("other");
  ASSERT_FALSE(no_override);
  EXPECT_EQ(no_override.error().status, Status::kNotFound);
  EXPECT_THAT(no_override.error().message, HasSubstr("write 'other' to "));
  EXPECT_THAT(no_override.error().message, HasSubstr("3ef00000.free/driver_override"));
  EXPECT_EQ(fake_.dir().read("sys/bus/platform/drivers/other/bind"), "");

  auto bad_name = d->bind_driver("../x");
  ASSERT_FALSE(bad_name);
  EXPECT_EQ(bad_name.error().status, Status::kInvalidArgument);
}

}  // namespace
}  // namespace amp::metal
