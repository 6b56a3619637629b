// SPDX-License-Identifier: BSD-3-Clause
// The host's side of an rpmsg vdev in userspace, over a remote the kernel's remoteproc started: a fake sysfs
// tree with a remoteproc node (running) and a UIO device whose map is the remote's memory (a file filled
// with garbage, as real memory is). The "firmware" left its resource table in that memory, as a loaded ELF
// does; an emulated remote (a thread in the virtio device role over its own mapping, kicking the host
// through a UIO-protocol descriptor) serves echo. amp finds the table, places the vrings, writes them back,
// brings rpmsg up and exchanges messages; garbage in the table is refused with a clear error.
#include "amp/rproc/linux/vdev_host.hpp"

#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "amp/metal/linux/shared_memory.hpp"
#include "amp/metal/linux/unix_socket.hpp"
#include "amp/rproc/firmware_table.hpp"
#include "amp/rproc/lifecycle.hpp"
#include "amp/rproc/linux/sysfs.hpp"
#include "metal/fake_sysfs_fixture.hpp"

namespace amp::rproc {
namespace {

using namespace std::chrono_literals;
using metal::testing::FakeSysfs;

constexpr metal::DeviceAddress kMemBase = 0x3ed0'0000;  // the remote's memory (UIO map 0)
constexpr std::size_t kMemSize = 0x10'0000;
constexpr metal::DeviceAddress kTableDa = kMemBase + 0x200;    // where the ELF put .resource_table
constexpr metal::DeviceAddress kPoolDa = kMemBase + 0x1'0000;  // the "vdev0buffer" reserved memory
constexpr std::size_t kPoolSize = 0xf'0000;

/// The remote: rpmsg in the device role over its own mapping of the memory, polling its rings (as a
/// bare-metal main loop does), kicking the host by writing an interrupt count to the UIO stand-in.
class EmulatedRemote {
 public:
  EmulatedRemote(metal::SharedMemory memory, int irq_fd) : memory_(std::move(memory)), irq_fd_(irq_fd) {}
  ~EmulatedRemote() { stop(); }

  void start() {
    thread_ = std::thread([this] { run(); });
  }
  void stop() {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int result() const { return result_.load(); }

 private:
  class IrqKick final : public rpmsg::Notifier {
   public:
    explicit IrqKick(int fd) : fd_(fd) {}
    Status notify(std::uint32_t) noexcept override {
      const std::uint32_t count = ++count_;
      return ::send(fd_, &count, sizeof count, MSG_DONTWAIT | MSG_NOSIGNAL) == sizeof count
                 ? Status::kOk
                 : Status::kIoError;
    }

   private:
    int fd_;
    std::uint32_t count_ = 0;
  };

  void run() {
    // Room for either table (a firmware that declares its buffer sizes has 12 more bytes).
    auto table = memory_.region().subregion(kTableDa - kMemBase, sizeof(RpmsgSizedFirmwareTable));
    auto body = table ? virtio::find_vdev(*table) : Result<metal::IoRegion>(fail(Status::kNotFound));
    auto transport = body ? virtio::RscVdevTransport::open(*body) : fail(Status::kNotFound);
    if (!transport) {
      result_ = 1;
      return;
    }
    IrqKick kick(irq_fd_);
    rpmsg::DeviceConfig dc;
    dc.role = rpmsg::Role::kDevice;
    dc.shm = memory_.region();
    dc.transport = &*transport;
    dc.notifier = &kick;
    dc.wait_mode = rpmsg::WaitMode::kSpin;
    dc.start_timeout_ns = 10'000'000'000;
    rpmsg::Device dev;
    auto storage = std::make_unique<rpmsg::DeviceStorage<64>>();
    if (const Status st = dev.start(dc, *storage); !ok(st)) {
      std::fprintf(stderr, "emulated remote: start: %s\n", amp::to_string(st));
      result_ = 2;
      return;
    }
    rpmsg::Endpoint echo;
    if (!ok(dev.create_endpoint(echo, "amp-echo", rpmsg::kAddrAny, rpmsg::kAddrAny,
                                [](rpmsg::Endpoint& ep, const rpmsg::Message& m) {
                                  (void)ep.send_to(m.src, m.payload, 1'000'000'000);
                                }))) {
      result_ = 3;
      return;
    }
    while (!stopping_) {
      if (dev.process() == Status::kBroken) {
        result_ = 4;
        break;
      }
      char drain[64];
      while (::recv(irq_fd_, drain, sizeof drain, MSG_DONTWAIT) > 0) {  // the host's re-arm writes
      }
      std::this_thread::sleep_for(50us);
    }
    echo.destroy();
    dev.stop();
  }

  metal::SharedMemory memory_;
  int irq_fd_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> result_{0};
};

/// Binds to the remote's "amp-echo" through the name service and checks `count` echoes.
void expect_echoes(VdevHost& host, int count, const EmulatedRemote& emulated) {
  std::mutex m;
  std::condition_variable cv;
  rpmsg::Endpoint ep;
  bool bound = false;
  std::vector<std::string> echoes;
  rpmsg::Device& dev = host.device();
  dev.set_name_service_handler([&](rpmsg::Device& d, std::string_view name, std::uint32_t addr) {
    if (name != "amp-echo") return;
    const Status s =
        d.create_endpoint(ep, name, rpmsg::kAddrAny, addr, [&](rpmsg::Endpoint&, const rpmsg::Message& msg) {
          std::lock_guard lock(m);
          echoes.emplace_back(reinterpret_cast<const char*>(msg.payload.data()), msg.payload.size());
          cv.notify_all();
        });
    std::lock_guard lock(m);
    bound = ok(s);
    cv.notify_all();
  });
  {
    std::unique_lock lock(m);
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return bound; }))
        << "no announcement through the UIO interrupt; remote: " << emulated.result();
  }
  for (int i = 0; i < count; ++i) {
    const std::string text = "over uio " + std::to_string(i);
    ASSERT_EQ(ep.send(std::as_bytes(std::span(text)), 1'000'000'000), Status::kOk);
    std::unique_lock lock(m);
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return echoes.size() == static_cast<std::size_t>(i + 1); }));
    EXPECT_EQ(echoes.back(), text);
  }
  ep.destroy();
}

class VdevHostTest : public ::testing::Test {
 public:  // for the cases' set-up functions
  void SetUp() override {
    // The kernel's view: a running remoteproc, and the UIO device with the remote's memory.
    fake_.dir().write("sys/class/remoteproc/remoteproc0/name", "r5f_0\n");
    fake_.dir().write("sys/class/remoteproc/remoteproc0/state", "running\n");
    fake_.dir().write("sys/class/remoteproc/remoteproc0/firmware", "echo.elf\n");
    fake_.add_uio("uio0", "rproc-mem", {{"mem", "0x3ed00000\n", "0x100000\n", "0x0\n"}},
                  kMemSize / FakeSysfs::page());
    auto uio = metal::UioDevice::open_by_node("uio0", fake_.roots());
    ASSERT_TRUE(uio) << uio.error().message;
    uio_.emplace(std::move(*uio));
    auto mem = metal::shm::open_uio(*uio_, 0);
    ASSERT_TRUE(mem) << mem.error().message;
    memory_.emplace(std::move(*mem));
    auto mailbox = metal::shm::create_memfd("amp-test-mailbox", 0x1000, 0xff34'0000);
    ASSERT_TRUE(mailbox);
    mailbox_.emplace(std::move(*mailbox));
    auto other = metal::shm::create_memfd("amp-test-other", 0x10000, 0x5000'0000);
    ASSERT_TRUE(other);
    other_.emplace(std::move(*other));
    auto irq = metal::UnixSocket::pair();  // the UIO interrupt descriptor's stand-in
    ASSERT_TRUE(irq);
    irq_.emplace(std::move(*irq));
  }

  /// What the firmware's ELF put at kTableDa.
  template <class Table>
  void load_table(const Table& table) {
    ASSERT_TRUE(ok(memory_->region().write(kTableDa - kMemBase, std::as_bytes(std::span(&table, 1)))));
  }

  VdevHostConfig config() {
    VdevHostConfig c;
    c.memory = {memory_->region()};
    c.table_da = kTableDa;
    c.table_size = sizeof(RpmsgFirmwareTable);
    c.pool_da = kPoolDa;
    c.pool_size = kPoolSize;
    c.kick = &kick_;
    c.irq_fd = irq_->first.fd();
    c.timeout = 5s;
    return c;
  }

  std::unique_ptr<EmulatedRemote> remote() {
    auto mem = metal::shm::open_uio(*uio_, 0);  // the remote's own mapping, at another address
    EXPECT_TRUE(mem);
    EXPECT_NE(mem->bytes().data(), memory_->bytes().data());
    return std::make_unique<EmulatedRemote>(std::move(*mem), irq_->second.fd());
  }

  FakeSysfs fake_;
  std::optional<metal::UioDevice> uio_;
  std::optional<metal::SharedMemory> memory_;
  std::optional<metal::SharedMemory> mailbox_;
  std::optional<metal::SharedMemory> other_;
  std::optional<std::pair<metal::UnixSocket, metal::UnixSocket>> irq_;
  RegisterKick kick_{metal::IoRegion(), 0};
};

TEST_F(VdevHostTest, KernelStartedRemoteGetsRpmsgFromUserspace) {
  // The lifecycle part: the kernel runs it, amp attaches.
  auto rproc = SysfsRemoteproc::open("r5f_0", {fake_.roots().sys, fake_.dir().path() / "lib/firmware"});
  ASSERT_TRUE(rproc) << rproc.error().message;
  SysfsDriver driver(*rproc);
  Lifecycle lifecycle(driver);
  ASSERT_EQ(lifecycle.attach(), Status::kOk);

  load_table(rpmsg_firmware_table({.vring_num = 64}));  // vrings at ANY: the host places them
  kick_ = RegisterKick(mailbox_->region(), 0x10);
  auto emulated = remote();
  emulated->start();
  auto host = VdevHost::start(config());
  ASSERT_TRUE(host) << host.error().message;

  // The vrings went into the pool and were written back where the remote reads them.
  const RpmsgPlan& plan = (*host)->plan();
  for (std::size_t q = 0; q < 2; ++q) {
    EXPECT_GE(plan.vdev.vrings[q].da, kPoolDa);
    EXPECT_LT(plan.vdev.vrings[q].da, kPoolDa + kPoolSize);
  }
  auto table = memory_->region().subregion(kTableDa - kMemBase, sizeof(RpmsgFirmwareTable));
  ASSERT_TRUE(table);
  RpmsgFirmwareTable in_memory{};
  ASSERT_TRUE(ok(table->read(0, std::as_writable_bytes(std::span(&in_memory, 1)))));
  EXPECT_EQ(in_memory.vdev.vring[0].da, plan.vdev.vrings[0].da);
  EXPECT_EQ(in_memory.vdev.vring[1].da, plan.vdev.vrings[1].da);
  EXPECT_NE(in_memory.vdev.vring[0].notify_id, in_memory.vdev.vring[1].notify_id);
  EXPECT_GE(plan.buffers, kPoolDa);
  EXPECT_EQ(plan.buffers_size, 2U * 64 * rpmsg::kDefaultBufferSize);

  ASSERT_NO_FATAL_FAILURE(expect_echoes(**host, 50, *emulated));
  // The host kicked the remote through the mailbox register with a vring's notify id.
  auto doorbell = mailbox_->region().load<std::uint32_t>(0x10);
  ASSERT_TRUE(doorbell);
  EXPECT_TRUE(*doorbell == plan.vdev.vrings[0].notify_id || *doorbell == plan.vdev.vrings[1].notify_id);
  EXPECT_EQ((*host)->device().stats().rx_malformed, 0U);
  (*host)->close();
  ASSERT_TRUE(ok(table->read(0, std::as_writable_bytes(std::span(&in_memory, 1)))));
  EXPECT_EQ(in_memory.vdev.status, 0) << "close() resets the vdev";
  emulated->stop();
  EXPECT_EQ(emulated->result(), 0);
  ASSERT_EQ(lifecycle.detach(), Status::kOk);
  EXPECT_EQ(fake_.dir().read("sys/class/remoteproc/remoteproc0/state"), "detach");
}

// A firmware that declares its buffer sizes (VIRTIO_RPMSG_F_BUFSZ): the host sizes its pool for them and
// its driver takes them; a declaration amp cannot use is a clear error before anything starts.
TEST_F(VdevHostTest, AFirmwaresDeclaredBufferSizesSizeThePoolAndTheMtu) {
  load_table(rpmsg_firmware_table({.vring_num = 64}, {4096, 1024}));
  kick_ = RegisterKick(mailbox_->region(), 0x10);
  auto emulated = remote();
  emulated->start();
  VdevHostConfig c = config();
  c.table_size = sizeof(RpmsgSizedFirmwareTable);
  auto host = VdevHost::start(c);
  ASSERT_TRUE(host) << host.error().message;
  EXPECT_EQ((*host)->plan().buffers_size, 64U * 4096 + 64U * 1024);
  EXPECT_EQ((*host)->device().payload_size(), 1024U - rpmsg::kHeaderSize) << "the host sends in 1 KiB";
  ASSERT_NO_FATAL_FAILURE(expect_echoes(**host, 20, *emulated));
  (*host)->close();
  emulated->stop();
  EXPECT_EQ(emulated->result(), 0);
}

TEST_F(VdevHostTest, ABufferSizeDeclarationAmpCannotUseIsRefusedWithTheSizes) {
  load_table(rpmsg_firmware_table({.vring_num = 64}, {4096, 20}));
  VdevHostConfig c = config();
  c.table_size = sizeof(RpmsgSizedFirmwareTable);
  auto host = VdevHost::start(c);
  ASSERT_FALSE(host);
  EXPECT_EQ(host.error().status, Status::kMalformed);
  EXPECT_NE(host.error().message.find("declares buffers of 4096 and 20 bytes"), std::string::npos)
      << host.error().message;
}

TEST_F(VdevHostTest, FixedVringsAreUsedWhereTheFirmwareWantsThem) {
  load_table(rpmsg_firmware_table({.vring_num = 16, .tx_da = 0x3ed0'4000, .rx_da = 0x3ed0'8000}));
  kick_ = RegisterKick(mailbox_->region(), 0x10, 0x5a);
  auto emulated = remote();
  emulated->start();
  auto host = VdevHost::start(config());
  ASSERT_TRUE(host) << host.error().message;
  EXPECT_EQ((*host)->plan().vdev.vrings[0].da, 0x3ed0'4000U);
  EXPECT_EQ((*host)->plan().vdev.vrings[1].da, 0x3ed0'8000U);
  EXPECT_EQ((*host)->plan().buffers, kPoolDa) << "nothing else was taken from the pool";
  ASSERT_NO_FATAL_FAILURE(expect_echoes(**host, 5, *emulated));
  EXPECT_EQ(mailbox_->region().load<std::uint32_t>(0x10).value_or(0), 0x5aU) << "the doorbell's fixed value";
  (*host)->close();
  emulated->stop();
}

std::chrono::microseconds process_cpu_time() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return std::chrono::seconds(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         std::chrono::microseconds(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

TEST_F(VdevHostTest, DoorbellSocketBytesAreTheRemotesInterrupts) {
  // The remote's notifications as bytes on a socket (what an emulator's serial line carries): the host
  // discards them and processes its rings, with no UIO re-arm written back.
  load_table(rpmsg_firmware_table({.vring_num = 64}));
  kick_ = RegisterKick(mailbox_->region(), 0x10);
  auto emulated = remote();
  emulated->start();
  VdevHostConfig c = config();
  c.irq_source = IrqSource::kSocket;
  auto host = VdevHost::start(c);
  ASSERT_TRUE(host) << host.error().message;
  ASSERT_NO_FATAL_FAILURE(expect_echoes(**host, 20, *emulated));
  emulated->stop();
  EXPECT_EQ(emulated->result(), 0);
  char left = 0;
  EXPECT_LT(::recv(irq_->second.fd(), &left, 1, MSG_DONTWAIT), 0) << "the host wrote into the doorbell";

  // The remote's end goes: the source stops instead of reporting the end again and again.
  irq_->second = metal::UnixSocket(metal::UniqueFd());
  std::this_thread::sleep_for(50ms);
  const auto cpu0 = process_cpu_time();
  std::this_thread::sleep_for(300ms);
  const auto used = process_cpu_time() - cpu0;
  EXPECT_LT(used, 60ms) << "the host's thread is busy after the doorbell closed";
  (*host)->close();
}

TEST_F(VdevHostTest, GarbageAndMisfitsAreClearErrors) {
  struct Case {
    const char* what;
    std::function<void(VdevHostTest&, VdevHostConfig&)> setup;
    Status status;
    const char* message;
  };
  const Case cases[] = {
      {"no table: the memory's garbage", [](VdevHostTest&, VdevHostConfig&) {}, Status::kNotSupported,
       "resource table at 0x3ed00200 is bad"},
      {"table outside the memory",
       [](VdevHostTest& t, VdevHostConfig& c) {
         t.load_table(rpmsg_firmware_table());
         c.table_da = kMemBase + kMemSize - 8;
       },
       Status::kOutOfRange, "is not in the remote's memory"},
      {"vring count broken",
       [](VdevHostTest& t, VdevHostConfig&) {
         auto table = rpmsg_firmware_table();
         table.vdev.num_of_vrings = 0;
         t.load_table(table);
       },
       Status::kMalformed, "vdev has no vrings (entry 0)"},
      {"fixed vring outside the memory",
       [](VdevHostTest& t, VdevHostConfig&) { t.load_table(rpmsg_firmware_table({.tx_da = 0x1000'0000})); },
       Status::kOutOfRange, "resource table: "},
      {"fixed vring not in the pool's region",
       [](VdevHostTest& t, VdevHostConfig& c) {
         t.load_table(rpmsg_firmware_table({.vring_num = 16, .tx_da = 0x5000'0000}));
         c.memory.push_back(t.other_->region());  // memory of the remote's, but not where the buffers are
       },
       Status::kOutOfRange, "vring 0 at 0x50000000 is not in the memory that holds the host's pool"},
      {"pool too small",
       [](VdevHostTest& t, VdevHostConfig& c) {
         t.load_table(rpmsg_firmware_table());
         c.pool_size = 0x8000;
       },
       Status::kNoMemory, "has no room for"},
      {"pool over the table",
       [](VdevHostTest& t, VdevHostConfig& c) {
         t.load_table(rpmsg_firmware_table());
         c.pool_da = kMemBase;
       },
       Status::kInvalidArgument, "overlaps the resource table at 0x3ed00200"},
      {"pool outside the memory",
       [](VdevHostTest& t, VdevHostConfig& c) {
         t.load_table(rpmsg_firmware_table());
         c.pool_da = 0x1000;
       },
       Status::kOutOfRange, "the host's pool"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.what);
    // Garbage first, as memory holds before a firmware is loaded.
    std::vector<std::byte> junk(sizeof(RpmsgFirmwareTable));
    for (std::size_t i = 0; i < junk.size(); ++i) junk[i] = metal::testing::fake_byte(i);
    ASSERT_TRUE(ok(memory_->region().write(kTableDa - kMemBase, junk)));
    VdevHostConfig c = config();
    k.setup(*this, c);
    auto host = VdevHost::start(c);
    ASSERT_FALSE(host);
    EXPECT_EQ(host.error().status, k.status) << host.error().message;
    EXPECT_NE(host.error().message.find(k.message), std::string::npos) << host.error().message;
  }
}

}  // namespace
}  // namespace amp::rproc
