// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/linux/shared_memory.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>

#include "metal/fake_sysfs_fixture.hpp"

namespace amp::metal {
namespace {

using testing::fake_byte;
using testing::FakeSysfs;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using testing::TempDir;

const std::size_t kPage = static_cast<std::size_t>(::getpagesize());

/// A POSIX shm name unique to this process and call, so parallel test runs do not collide.
std::string unique_posix_name() {
  static std::atomic<int> counter{0};
  return "amp-shm-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
}

/// Removes a POSIX shm object when the test ends, whatever happened.
struct PosixCleanup {
  std::string name;
  ~PosixCleanup() { (void)shm::unlink_posix(name); }
};

/// A file of `size` bytes holding fake_byte(position).
void write_pattern_file(const TempDir& dir, const std::string& rel, std::size_t size) {
  std::string data(size, '\0');
  for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<char>(fake_byte(i));
  dir.write(rel, data);
}

void expect_pattern(const SharedMemory& m, std::uint64_t file_pos) {
  for (std::size_t i = 0; i < m.size(); ++i) ASSERT_EQ(m.bytes()[i], fake_byte(file_pos + i)) << "byte " << i;
}

TEST(SharedMemory, EmptyByDefault) {
  SharedMemory m;
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.size(), 0U);
  EXPECT_EQ(m.fd(), -1);
  EXPECT_TRUE(m.region().empty());
}

TEST(SharedMemory, MemfdCreatesMapsAndSealsAgainstShrinking) {
  auto m = shm::create_memfd("amp-shm", 65536, 0x1000);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->size(), 65536U);
  EXPECT_EQ(m->device_address(), 0x1000U);
  EXPECT_EQ(m->description(), "memfd:amp-shm (65536 bytes)");
  ASSERT_GE(m->fd(), 0);
  EXPECT_NE(::fcntl(m->fd(), F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(m->bytes().data()) % kPage, 0U);

  // Fresh memory is zero and writable.
  EXPECT_EQ(m->bytes()[0], std::byte{0});
  EXPECT_EQ(m->bytes()[65535], std::byte{0});
  m->bytes()[65535] = std::byte{0x5A};
  EXPECT_EQ(m->bytes()[65535], std::byte{0x5A});

  const int seals = ::fcntl(m->fd(), F_GET_SEALS);
  ASSERT_GE(seals, 0);
  EXPECT_NE(seals & F_SEAL_SHRINK, 0);
  EXPECT_NE(::ftruncate(m->fd(), 4096), 0);
  EXPECT_EQ(errno, EPERM);

  auto zero = shm::create_memfd("amp-shm", 0);
  ASSERT_FALSE(zero);
  EXPECT_EQ(zero.error().status, Status::kInvalidArgument);
}

TEST(SharedMemory, TwoMappingsOfOneMemfdSeeEachOthersWrites) {
  auto a = shm::create_memfd("amp-shared", 2 * kPage, 0x80000000);
  ASSERT_TRUE(a) << a.error().message;
  auto b = shm::map_fd(UniqueFd(::dup(a->fd())), 2 * kPage, 0x80000000);
  ASSERT_TRUE(b) << b.error().message;
  ASSERT_NE(a->bytes().data(), b->bytes().data());
  ASSERT_NE(a->fd(), b->fd());

  ASSERT_EQ(a->region().store<std::uint32_t>(kPage + 8, 0xC0FFEEU), Status::kOk);
  auto seen = b->region().load<std::uint32_t>(kPage + 8);
  ASSERT_TRUE(seen);
  EXPECT_EQ(*seen, 0xC0FFEEU);
  std::memcpy(b->bytes().data(), "pong", 4);
  EXPECT_EQ(std::memcmp(a->bytes().data(), "pong", 4), 0);

  // Across threads too: a release store in one mapping is acquired through the other.
  std::thread writer([&] {
    (void)a->region().store<std::uint64_t>(64, 0x1122334455667788U);
    (void)a->region().store<std::uint32_t>(0, 1U);
  });
  for (;;) {
    auto flag = b->region().load<std::uint32_t>(0);
    ASSERT_TRUE(flag);
    if (*flag == 1U) break;
    std::this_thread::yield();
  }
  writer.join();
  auto v = b->region().load<std::uint64_t>(64, std::memory_order_relaxed);
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, 0x1122334455667788U);
}

TEST(SharedMemory, MapFdRefusesAnObjectTooSmall) {
  auto a = shm::create_memfd("amp-small", kPage);
  ASSERT_TRUE(a) << a.error().message;
  auto too_big = shm::map_fd(UniqueFd(::dup(a->fd())), 2 * kPage);
  ASSERT_FALSE(too_big);
  EXPECT_EQ(too_big.error().status, Status::kOutOfRange);
  EXPECT_THAT(too_big.error().message, HasSubstr("is " + std::to_string(kPage) + " bytes, too small"));
  auto past_end = shm::map_fd(UniqueFd(::dup(a->fd())), 16, 0, kPage - 8);
  ASSERT_FALSE(past_end);
  EXPECT_EQ(past_end.error().status, Status::kOutOfRange);

  auto invalid = shm::map_fd(UniqueFd(), kPage);
  ASSERT_FALSE(invalid);
  EXPECT_EQ(invalid.error().status, Status::kInvalidArgument);
  auto zero = shm::map_fd(UniqueFd(::dup(a->fd())), 0);
  ASSERT_FALSE(zero);
  EXPECT_EQ(zero.error().status, Status::kInvalidArgument);
  auto overflow = shm::map_fd(UniqueFd(::dup(a->fd())), 16, 0, ~std::uint64_t{0} - 4);
  ASSERT_FALSE(overflow);
  EXPECT_EQ(overflow.error().status, Status::kOverflow);
}

TEST(SharedMemory, MapFdWithAnUnalignedOffsetExposesTheExactWindow) {
  auto a = shm::create_memfd("amp-window", 2 * kPage);
  ASSERT_TRUE(a) << a.error().message;
  for (std::size_t i = 0; i < a->size(); ++i) a->bytes()[i] = fake_byte(i);
  auto w = shm::map_fd(UniqueFd(::dup(a->fd())), 100, 0x7000, kPage + 24);
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_EQ(w->size(), 100U);
  expect_pattern(*w, kPage + 24);
  w->bytes()[0] = std::byte{0xEE};
  EXPECT_EQ(a->bytes()[kPage + 24], std::byte{0xEE});
}

TEST(SharedMemory, MoveTransfersTheMapping) {
  auto a = shm::create_memfd("amp-move", kPage);
  ASSERT_TRUE(a) << a.error().message;
  std::byte* data = a->bytes().data();
  const int fd = a->fd();
  SharedMemory m = std::move(*a);
  EXPECT_TRUE(a->empty());
  EXPECT_EQ(a->fd(), -1);
  EXPECT_EQ(m.bytes().data(), data);
  EXPECT_EQ(m.fd(), fd);
  m.bytes()[10] = std::byte{1};
  SharedMemory n;
  n = std::move(m);
  EXPECT_EQ(n.bytes()[10], std::byte{1});
  EXPECT_TRUE(m.empty());  // NOLINT(bugprone-use-after-move): moved-from state is specified
}

TEST(SharedMemory, RegionTranslatesDeviceAddresses) {
  auto m = shm::create_memfd("amp-region", 0x4000, 0x3ed00000);
  ASSERT_TRUE(m) << m.error().message;
  const IoRegion r = m->region();
  EXPECT_EQ(r.size(), 0x4000U);
  auto p = r.pointer_of(0x3ed00010);
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, m->bytes().data() + 0x10);
  auto da = r.device_address_of_pointer(m->bytes().data() + 0x3FFC, 4);
  ASSERT_TRUE(da);
  EXPECT_EQ(*da, 0x3ed03FFCU);
  auto off = r.offset_of(0x3ed02000);
  ASSERT_TRUE(off);
  EXPECT_EQ(*off, 0x2000U);
  EXPECT_FALSE(r.pointer_of(0x3ed04000));
  EXPECT_FALSE(r.pointer_of(0x3ecfffff));
}

TEST(SharedMemory, PosixCreateOpenExclusiveAndUnlink) {
  const std::string name = unique_posix_name();
  PosixCleanup cleanup{name};
  auto created = shm::open_posix(name, 0x8000, OpenMode::kCreate, 0x100000);
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_EQ(created->size(), 0x8000U);
  EXPECT_EQ(created->device_address(), 0x100000U);
  EXPECT_EQ(created->description(), "posix:/" + name + " (32768 bytes)");
  EXPECT_GE(created->fd(), 0);
  std::memcpy(created->bytes().data() + 0x7FF0, "posix!", 6);

  // With or without the leading '/', the same object.
  auto opened = shm::open_posix("/" + name, 0x8000, OpenMode::kOpen);
  ASSERT_TRUE(opened) << opened.error().message;
  EXPECT_NE(opened->bytes().data(), created->bytes().data());
  EXPECT_EQ(std::memcmp(opened->bytes().data() + 0x7FF0, "posix!", 6), 0);
  auto either = shm::open_posix(name, 0x1000, OpenMode::kCreateOrOpen);
  ASSERT_TRUE(either) << either.error().message;
  EXPECT_EQ(std::memcmp(either->bytes().data(), opened->bytes().data(), 0x1000), 0);

  auto again = shm::open_posix(name, 0x8000, OpenMode::kCreate);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().status, Status::kAlreadyExists);
  EXPECT_THAT(again.error().message, HasSubstr("/" + name));

  auto too_big = shm::open_posix(name, 0x10000, OpenMode::kOpen);
  ASSERT_FALSE(too_big);
  EXPECT_EQ(too_big.error().status, Status::kOutOfRange);

  EXPECT_EQ(shm::unlink_posix("/" + name), Status::kOk);
  EXPECT_EQ(shm::unlink_posix(name), Status::kNotFound);
  // Mappings outlive the name.
  EXPECT_EQ(std::memcmp(opened->bytes().data() + 0x7FF0, "posix!", 6), 0);

  auto gone = shm::open_posix(name, 0x8000, OpenMode::kOpen);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().status, Status::kNotFound);
  EXPECT_THAT(gone.error().message, HasSubstr("create it first"));

  // kCreateOrOpen creates when missing.
  auto fresh = shm::open_posix(name, 0x2000, OpenMode::kCreateOrOpen);
  ASSERT_TRUE(fresh) << fresh.error().message;
  EXPECT_EQ(fresh->size(), 0x2000U);
  EXPECT_EQ(fresh->bytes()[0], std::byte{0});
}

TEST(SharedMemory, PosixNamesAreValidated) {
  const std::string bads[] = {"", "/", "a/b", "/a/b", "..", "/.", std::string(300, 'x')};
  for (const std::string& bad : bads) {
    auto r = shm::open_posix(bad, 4096, OpenMode::kCreateOrOpen);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().status, Status::kInvalidArgument) << bad;
    EXPECT_THAT(r.error().message, HasSubstr("invalid POSIX shared memory name"));
  }
  EXPECT_EQ(shm::unlink_posix("a/b"), Status::kInvalidArgument);
  auto zero = shm::open_posix(unique_posix_name(), 0, OpenMode::kCreate);
  ASSERT_FALSE(zero);
  EXPECT_EQ(zero.error().status, Status::kInvalidArgument);
}

TEST(SharedMemory, FileWithAlignedAndUnalignedOffsets) {
  TempDir dir;
  write_pattern_file(dir, "ram.bin", 4 * kPage);
  const auto path = dir.path() / "ram.bin";

  auto aligned = shm::open_file(path, kPage, kPage, OpenMode::kOpen, 0x20000000);
  ASSERT_TRUE(aligned) << aligned.error().message;
  EXPECT_EQ(aligned->size(), kPage);
  EXPECT_EQ(aligned->device_address(), 0x20000000U);
  expect_pattern(*aligned, kPage);

  auto unaligned = shm::open_file(path, 0x300, 2 * kPage - 0x100);  // straddles a page boundary
  ASSERT_TRUE(unaligned) << unaligned.error().message;
  EXPECT_EQ(unaligned->size(), 0x300U);
  expect_pattern(*unaligned, 2 * kPage - 0x100);
  unaligned->bytes()[0x100] = std::byte{0xAB};  // file offset 2 pages: shared with the other mappings
  auto whole = shm::open_file(path, 0);
  ASSERT_TRUE(whole) << whole.error().message;
  EXPECT_EQ(whole->size(), 4 * kPage);
  EXPECT_EQ(whole->bytes()[2 * kPage], std::byte{0xAB});
  EXPECT_THAT(whole->description(), StartsWith("file:" + path.string()));

  auto tail = shm::open_file(path, 0, 3 * kPage + 5);  // size 0: to the end
  ASSERT_TRUE(tail) << tail.error().message;
  EXPECT_EQ(tail->size(), kPage - 5);
  expect_pattern(*tail, 3 * kPage + 5);

  auto too_small = shm::open_file(path, 2 * kPage, 3 * kPage);
  ASSERT_FALSE(too_small);
  EXPECT_EQ(too_small.error().status, Status::kOutOfRange);
  EXPECT_THAT(too_small.error().message, HasSubstr("too small"));
  auto at_end = shm::open_file(path, 0, 4 * kPage);
  ASSERT_FALSE(at_end);
  EXPECT_EQ(at_end.error().status, Status::kOutOfRange);
  auto overflow = shm::open_file(path, 16, ~std::uint64_t{0} - 8);
  ASSERT_FALSE(overflow);
  EXPECT_EQ(overflow.error().status, Status::kOverflow);
  auto missing = shm::open_file(dir.path() / "nope.bin", 16);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().status, Status::kNotFound);
  EXPECT_THAT(missing.error().message, HasSubstr("nope.bin"));
}

TEST(SharedMemory, FileCreateModes) {
  TempDir dir;
  const auto path = dir.path() / "new.bin";
  auto created = shm::open_file(path, 100, 0x10, OpenMode::kCreate);
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_EQ(std::filesystem::file_size(path), 0x10U + 100U);
  created->bytes()[0] = std::byte{0x42};
  EXPECT_EQ((*dir.read("new.bin"))[0x10], '\x42');

  auto exclusive = shm::open_file(path, 100, 0, OpenMode::kCreate);
  ASSERT_FALSE(exclusive);
  EXPECT_EQ(exclusive.error().status, Status::kAlreadyExists);
  auto either = shm::open_file(path, 100, 0x10, OpenMode::kCreateOrOpen);
  ASSERT_TRUE(either) << either.error().message;
  EXPECT_EQ(either->bytes()[0], std::byte{0x42});
  auto zero_create = shm::open_file(dir.path() / "zero.bin", 0, 0, OpenMode::kCreate);
  ASSERT_FALSE(zero_create);
  EXPECT_EQ(zero_create.error().status, Status::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "zero.bin"));
}

TEST(SharedMemory, DevMemExposesTheExactPhysicalWindow) {
  TempDir dir;
  write_pattern_file(dir, "mem", 4 * kPage);  // stands for /dev/mem: file offset == physical address
  const auto dev_mem = dir.path() / "mem";

  auto m = shm::open_dev_mem(0x1080, 0x80, dev_mem);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->size(), 0x80U);
  EXPECT_EQ(m->device_address(), 0x1080U);
  EXPECT_EQ(m->fd(), -1);
  EXPECT_EQ(m->description(), "devmem:0x1080 (128 bytes)");
  expect_pattern(*m, 0x1080);
  auto p = m->region().pointer_of(0x10F8, 8);
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, m->bytes().data() + 0x78);
  EXPECT_FALSE(m->region().pointer_of(0x1100));
  EXPECT_FALSE(m->region().pointer_of(0x107F));

  std::memcpy(m->bytes().data(), "phys", 4);
  EXPECT_EQ(dir.read("mem")->substr(0x1080, 4), "phys");

  // A window crossing a page boundary.
  auto cross = shm::open_dev_mem(2 * kPage - 0x10, 0x20, dev_mem);
  ASSERT_TRUE(cross) << cross.error().message;
  expect_pattern(*cross, 2 * kPage - 0x10);

  auto beyond = shm::open_dev_mem(4 * kPage - 0x10, 0x20, dev_mem);
  ASSERT_FALSE(beyond);
  EXPECT_EQ(beyond.error().status, Status::kOutOfRange);
  auto zero = shm::open_dev_mem(0x1000, 0, dev_mem);
  ASSERT_FALSE(zero);
  EXPECT_EQ(zero.error().status, Status::kInvalidArgument);
  auto wrap = shm::open_dev_mem(~std::uint64_t{0} - 0x10, 0x20, dev_mem);
  ASSERT_FALSE(wrap);
  EXPECT_EQ(wrap.error().status, Status::kOverflow);
  auto missing = shm::open_dev_mem(0x1000, 0x10, dir.path() / "no-mem");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().status, Status::kNotFound);
  EXPECT_THAT(missing.error().message, HasSubstr("no-mem"));
}

TEST(SharedMemory, UioMapThroughAFakeTree) {
  FakeSysfs fake;
  fake.add_uio("uio0", "vring",
               {{"regs", "0x3ed00000\n", "0x1000\n", "0x0\n"}, {"buf", "0x3ed10040\n", "0x200\n", "0x40\n"}},
               2);
  auto dev = UioDevice::open_by_node("uio0", fake.roots());
  ASSERT_TRUE(dev) << dev.error().message;
  auto m = shm::open_uio(*dev, 1);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->size(), 0x200U);
  EXPECT_EQ(m->device_address(), 0x3ed10040U);
  EXPECT_EQ(m->description(), "uio:uio0/map1 (512 bytes)");
  expect_pattern(*m, kPage + 0x40);
}

TEST(SharedMemorySpec, ParsesNumbers) {
  struct Case {
    const char* text;
    std::uint64_t value;
  };
  for (const Case& c :
       {Case{"0", 0}, Case{"4096", 4096}, Case{"0x80000", 0x80000}, Case{"0X1f", 0x1f},
        Case{"64K", 64 * 1024}, Case{"64k", 64 * 1024}, Case{"2M", 2 << 20}, Case{"1G", 1ULL << 30},
        Case{"0x10K", 0x4000}, Case{"16383G", 16383ULL << 30}, Case{"0xffffffffffffffff", ~0ULL}}) {
    auto v = shm::parse_size(c.text);
    ASSERT_TRUE(v) << c.text << ": " << v.error().message;
    EXPECT_EQ(*v, c.value) << c.text;
  }
  for (const char* bad : {"", "K", "0x", "0xK", "12Q", "1.5M", "-1", " 1", "1 ", "0x1g0", "1KK", "0b101"}) {
    auto v = shm::parse_size(bad);
    ASSERT_FALSE(v) << bad;
    EXPECT_EQ(v.error().status, Status::kInvalidArgument) << bad;
    EXPECT_THAT(v.error().message, HasSubstr("expected decimal or 0x hex"));
  }
  for (const char* big :
       {"18446744073709551616", "0x10000000000000000", "17179869184G", "0xffffffffffffffffK"}) {
    auto v = shm::parse_size(big);
    ASSERT_FALSE(v) << big;
    EXPECT_EQ(v.error().status, Status::kOverflow) << big;
  }
}

TEST(SharedMemorySpec, OpensEveryForm) {
  FakeSysfs fake;
  fake.add_uio("uio0", "remoteproc-shm",
               {{"ctrl", "0x40000000\n", "0x1000\n", "0x0\n"}, {"shm", "0x40001080\n", "0x100\n", "0x80\n"}},
               2);
  fake.add_platform_device("3ed00000.shm", "uio_pdrv_genirq", "uio0");
  write_pattern_file(fake.dir(), "dev/mem", 2 * kPage);
  write_pattern_file(fake.dir(), "ram.bin", 3 * kPage);
  const auto roots = fake.roots();

  auto memfd = shm::open("memfd:ring:64K", roots);
  ASSERT_TRUE(memfd) << memfd.error().message;
  EXPECT_EQ(memfd->size(), 65536U);
  EXPECT_EQ(memfd->description(), "memfd:ring (65536 bytes)");

  const std::string name = unique_posix_name();
  PosixCleanup cleanup{name};
  auto posix = shm::open("posix:" + name + ":0x80000:create", roots);
  ASSERT_TRUE(posix) << posix.error().message;
  EXPECT_EQ(posix->size(), 0x80000U);
  auto posix_again = shm::open("posix:/" + name + ":0x80000:create", roots);
  ASSERT_FALSE(posix_again);
  EXPECT_EQ(posix_again.error().status, Status::kAlreadyExists);
  auto posix_open = shm::open("posix:/" + name + ":0x80000:open", roots);
  ASSERT_TRUE(posix_open) << posix_open.error().message;
  auto posix_default = shm::open("posix:" + name + ":4K", roots);
  ASSERT_TRUE(posix_default) << posix_default.error().message;
  auto posix_explicit = shm::open("posix:" + name + ":4K:create-or-open", roots);
  ASSERT_TRUE(posix_explicit) << posix_explicit.error().message;

  const std::string file = (fake.dir().path() / "ram.bin").string();
  auto whole = shm::open("file:" + file, roots);
  ASSERT_TRUE(whole) << whole.error().message;
  EXPECT_EQ(whole->size(), 3 * kPage);
  auto sized = shm::open("file:" + file + ":0x100", roots);
  ASSERT_TRUE(sized) << sized.error().message;
  EXPECT_EQ(sized->size(), 0x100U);
  expect_pattern(*sized, 0);
  auto offset = shm::open("file:" + file + ":0x100:" + std::to_string(kPage + 3), roots);
  ASSERT_TRUE(offset) << offset.error().message;
  EXPECT_EQ(offset->size(), 0x100U);
  expect_pattern(*offset, kPage + 3);
  auto to_end = shm::open("file:" + file + ":0:" + std::to_string(2 * kPage), roots);
  ASSERT_TRUE(to_end) << to_end.error().message;
  EXPECT_EQ(to_end->size(), kPage);

  auto devmem = shm::open("devmem:0x1080:0x80", roots);  // roots.dev / "mem"
  ASSERT_TRUE(devmem) << devmem.error().message;
  EXPECT_EQ(devmem->device_address(), 0x1080U);
  expect_pattern(*devmem, 0x1080);

  for (const char* spec : {"uio:uio0:1", "uio:uio0:shm", "uio:remoteproc-shm:shm", "uio:3ed00000.shm:1"}) {
    auto u = shm::open(spec, roots);
    ASSERT_TRUE(u) << spec << ": " << u.error().message;
    EXPECT_EQ(u->device_address(), 0x40001080U) << spec;
    EXPECT_EQ(u->size(), 0x100U) << spec;
    expect_pattern(*u, kPage + 0x80);
  }
  auto u0 = shm::open("uio:remoteproc-shm:0", roots);
  ASSERT_TRUE(u0) << u0.error().message;
  EXPECT_EQ(u0->device_address(), 0x40000000U);
}

TEST(SharedMemorySpec, BadSpecsSayWhatIsWrong) {
  FakeSysfs fake;
  fake.add_uio("uio0", "remoteproc-shm", {{"ctrl", "0x40000000\n", "0x1000\n", "0x0\n"}}, 1);
  struct Case {
    std::string spec;
    std::string why;
  };
  const Case cases[] = {
      {"", "no KIND: prefix"},
      {"memfd", "no KIND: prefix"},
      {"shm:foo:4K", "unknown kind 'shm'"},
      {"memfd:ring", "memfd needs NAME:SIZE"},
      {"memfd::4K", "memfd needs NAME:SIZE"},
      {"memfd:ring:4K:x", "memfd needs NAME:SIZE"},
      {"memfd:ring:lots", "SIZE: bad number 'lots'"},
      {"memfd:ring:0", "SIZE must not be 0"},
      {"memfd:ring:99999999999999999999", "does not fit in 64 bits"},
      {"posix:x", "posix needs NAME:SIZE[:MODE]"},
      {"posix:x:4K:sometimes", "unknown posix mode 'sometimes'"},
      {"posix:x:4K:open:extra", "posix needs NAME:SIZE[:MODE]"},
      {"posix:x:0", "SIZE must not be 0"},
      {"file:", "file needs PATH[:SIZE[:OFFSET]]"},
      {"file:/tmp/x:1:2:3", "file needs PATH[:SIZE[:OFFSET]]"},
      {"file:/tmp/x:1:zz", "OFFSET: bad number 'zz'"},
      {"devmem:0x1000", "devmem needs ADDR:SIZE"},
      {"devmem:nowhere:4K", "ADDR: bad number 'nowhere'"},
      {"devmem:0x1000:0", "SIZE must not be 0"},
      {"uio:uio0", "uio needs DEVICE:MAP"},
      {"uio::0", "uio needs DEVICE:MAP"},
      {"uio:uio0:", "uio needs DEVICE:MAP"},
  };
  for (const Case& c : cases) {
    auto r = shm::open(c.spec, fake.roots());
    ASSERT_FALSE(r) << c.spec;
    EXPECT_EQ(r.error().status, Status::kInvalidArgument) << c.spec;
    EXPECT_THAT(r.error().message, StartsWith("bad shared memory spec '" + c.spec + "': "));
    EXPECT_THAT(r.error().message, HasSubstr(c.why));
    EXPECT_THAT(r.error().message, HasSubstr("accepted: memfd:NAME:SIZE, posix:NAME:SIZE"));
  }

  // Well-formed specs naming things that do not exist fail with what is missing.
  auto no_map = shm::open("uio:uio0:data", fake.roots());
  ASSERT_FALSE(no_map);
  EXPECT_EQ(no_map.error().status, Status::kNotFound);
  EXPECT_THAT(no_map.error().message, HasSubstr("no map named 'data'"));
  auto no_dev = shm::open("uio:nothing:0", fake.roots());
  ASSERT_FALSE(no_dev);
  EXPECT_EQ(no_dev.error().status, Status::kNotFound);
  EXPECT_THAT(no_dev.error().message, HasSubstr("no UIO device named 'nothing'"));
  EXPECT_THAT(no_dev.error().message, HasSubstr("no platform device of that name"));
  auto no_node = shm::open("uio:uio9:0", fake.roots());
  ASSERT_FALSE(no_node);
  EXPECT_EQ(no_node.error().status, Status::kNotFound);
  FakeSysfs empty;
  auto no_module = shm::open("uio:uio0:0", empty.roots());
  ASSERT_FALSE(no_module);
  EXPECT_THAT(no_module.error().message, HasSubstr("is the uio module loaded?"));
}

}  // namespace
}  // namespace amp::metal
