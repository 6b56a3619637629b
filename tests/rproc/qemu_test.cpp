// SPDX-License-Identifier: BSD-3-Clause
// The qemu driver without amp's firmware: images built here (tests/rproc/elf32_image.hpp) for each way a
// firmware can be wrong, which load() refuses before any QEMU starts; fake QEMU programs (scripts written
// here) that fail, never connect or never answer QMP, which load() reports clearly, leaving nothing behind;
// and, with the real qemu-system-arm, tiny images (a WFI loop, a semihosting exit) that show the process
// side: a QEMU per load, paused until start, stopped cleanly, its end seen at once as a crash and recovered,
// detach and attach over the same memory, no host CPU when idle. The firmware's side (rpmsg with amp's
// bare-metal image) is qemu_firmware_test.cpp.
#include "amp/rproc/linux/qemu.hpp"
#include "qemu_client.hpp"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "amp/rpmsg/wire.hpp"
#include "amp/rproc/linux/qemu_process.hpp"
#include "amp/rproc/linux/qemu_qmp.hpp"
#include "amp/rproc/resource_table.hpp"
#include "amp/virtio/ring.hpp"
#include "amp/virtio/rsc_vdev.hpp"
#include "rproc/elf32_image.hpp"

namespace amp::rproc {
namespace {

using namespace std::chrono_literals;
using testing::Elf32Image;
namespace fs = std::filesystem;

constexpr std::uint32_t kImageBase = 0x4010'0000;
constexpr std::uint32_t kTableDa = kImageBase + 0x400;
constexpr std::uint32_t kTraceDa = kImageBase + 0x1000;
constexpr std::uint32_t kPoolDa = 0x4080'0000;
constexpr std::uint32_t kPoolSize = 0x10'0000;
constexpr const char* kBootText = "test image: booted\n";

/// ARM code: sleep forever (WFI; no interrupt is enabled, so QEMU idles).
const std::vector<std::uint32_t> kWfiLoop = {0xE320F003 /* wfi */, 0xEAFFFFFD /* b wfi */};
/// ARM code: semihosting SYS_EXIT with a reason other than ApplicationExit, so QEMU exits with status 1,
/// what a firmware's fault handler does.
const std::vector<std::uint32_t> kSemihostingExit = {
    0xE3A00018,  // mov r0, #0x18 (SYS_EXIT)
    0xE59F1000,  // ldr r1, [pc, #0] (the word after the svc)
    0xEF123456,  // svc #0x123456 (semihosting)
    0x00020023,  // ADP_Stopped_RunTimeErrorUnknown
    0xEAFFFFFE,  // b .
};

struct ImageSpec {
  std::vector<std::uint32_t> code = kWfiLoop;
  std::uint16_t machine = elf::kMachineArm;
  std::uint8_t elf_class = 1;
  std::uint8_t data_order = 1;
  std::uint32_t base = kImageBase;
  std::uint32_t entry = kImageBase;
  bool table = true;
  std::uint32_t table_da = kTableDa;
  bool vdev = true;
  bool pool = true;
  std::uint32_t pool_da = kPoolDa;
  const char* pool_name = kRpmsgPoolCarveout;
  bool trace = true;
  bool doorbell = true;
  std::size_t doorbell_body = 8;  // mode and state; 16 with the watchdog's ping and pong
  std::optional<std::pair<std::uint32_t, std::uint32_t>> extra_segment{};  // da, size
};

/// ARM code: writes 'x' to the virt board's UART at `uart` (0x0900'0000 the console, 0x0904'0000 the
/// doorbell) in a tight loop, forever.
std::vector<std::uint32_t> uart_spam(std::uint32_t uart) {
  return {
      0xE3000000,                                                // movw r0, #0 (the UARTs' low halves are 0)
      0xE3400000 | (uart >> 28) << 16 | ((uart >> 16) & 0xFFF),  // movt r0, #(uart >> 16)
      0xE3A01078,                                                // mov r1, #'x'
      0xE5801000,                                                // str r1, [r0]  (UARTDR)
      0xEAFFFFFD,                                                // b .-4
  };
}

/// ARM code at kImageBase that tries the host through semihosting: SYS_OPEN `secret` for reading and
/// SYS_READ 32 bytes of it into kProbeBufferDa; SYS_OPEN `created` for writing and SYS_WRITE 5 bytes to it;
/// SYS_SYSTEM `command`. Then it sleeps. Position-dependent data (parameter blocks, strings) follow the code.
constexpr std::uint32_t kProbeBufferDa = kImageBase + 0x8C;
std::vector<std::uint32_t> semihosting_probe(const std::string& secret, const std::string& created,
                                             const std::string& command) {
  std::vector<std::uint32_t> code = {
      0xE3A00001, 0xE28F1048, 0xEF123456,              // mov r0, #1 (SYS_OPEN); adr r1, open; svc
      0xE28F204C, 0xE5820000, 0xE3A00006, 0xE1A01002,  // adr r2, read; str r0, [r2]; mov r0, #6; mov r1, r2
      0xEF123456,                                      // svc (SYS_READ)
      0xE3A00001, 0xE28F1040, 0xEF123456,              // mov r0, #1; adr r1, create; svc (SYS_OPEN)
      0xE28F2044, 0xE5820000, 0xE3A00005, 0xE1A01002,  // adr r2, write; str r0, [r2]; mov r0, #5; mov r1, r2
      0xEF123456,                                      // svc (SYS_WRITE)
      0xE3A00012, 0xE28F1038, 0xEF123456,              // mov r0, #0x12 (SYS_SYSTEM); adr r1, system; svc
      0xE320F003, 0xEAFFFFFD,                          // wfi; b .-4
  };
  // 0x54 open {name, mode 0 "r", length}, 0x60 read {handle, buffer, 32}, 0x6C create {name, mode 4 "w",
  // length}, 0x78 write {handle, data, 5}, 0x84 system {command, length}, 0x8C the buffer (32 bytes of
  // '.'), 0xAC the strings.
  const std::uint32_t strings = kImageBase + 0xAC;
  const auto len = [](const std::string& t) { return static_cast<std::uint32_t>(t.size()); };
  const std::uint32_t secret_da = strings;
  const std::uint32_t created_da = secret_da + len(secret) + 1;
  const std::uint32_t command_da = created_da + len(created) + 1;
  for (std::uint32_t w : {secret_da, 0U, len(secret), 0U, kProbeBufferDa, 32U, created_da, 4U, len(created),
                          0U, command_da, 5U, command_da, len(command)})
    code.push_back(w);
  code.insert(code.end(), 8, 0x2E2E2E2E);  // "...."
  std::string text = secret + '\0' + created + '\0' + command + '\0';
  text.resize((text.size() + 3) / 4 * 4, '\0');
  std::vector<std::uint32_t> words(text.size() / 4);
  std::memcpy(words.data(), text.data(), text.size());
  code.insert(code.end(), words.begin(), words.end());
  return code;
}

/// A firmware image for virt-a15 as amp's contract wants it (or, per `spec`, not quite).
std::vector<std::byte> make_image(const ImageSpec& spec = {}) {
  Elf32Image img;
  img.machine = spec.machine;
  img.elf_class = spec.elf_class;
  img.data_order = spec.data_order;
  img.entry = spec.entry;
  std::vector<std::byte> bytes(0x2000);
  img.add_segment(spec.base, std::move(bytes), 0x3000);
  img.poke(spec.base, spec.code.data(), spec.code.size() * 4);
  std::vector<std::byte> table(0x300);
  TableBuilder t(table);
  if (spec.vdev) {
    const virtio::QueueInfo rings[2] = {{metal::kAnyAddress, 4096, 64, 0}, {metal::kAnyAddress, 4096, 64, 0}};
    EXPECT_EQ(t.add_vdev(rpmsg::kVirtioIdRpmsg, (1U << rpmsg::kFeatureNs) | (1U << virtio::kFeatureEventIdx),
                         rings, 0),
              Status::kOk);
  }
  if (spec.pool) {
    EXPECT_EQ(t.add_carveout(spec.pool_name, spec.pool_da, spec.pool_da, kPoolSize, 0), Status::kOk);
  }
  if (spec.trace) {
    EXPECT_EQ(t.add_trace(kAmpTraceName, kTraceDa, 4096), Status::kOk);
  }
  if (spec.doorbell) {
    const std::vector<std::byte> body(spec.doorbell_body);
    EXPECT_EQ(t.add_vendor(kRscVendorDoorbell, body), Status::kOk);
  }
  auto size = t.finish();
  EXPECT_TRUE(size);
  if (spec.table) {
    img.poke(spec.table_da, table.data(), *size);
    img.add_section(".resource_table", spec.table_da, static_cast<std::uint32_t>(*size));
  }
  img.poke(kTraceDa, kBootText, std::strlen(kBootText));
  if (spec.extra_segment)
    img.add_segment(spec.extra_segment->first, std::vector<std::byte>(16), spec.extra_segment->second);
  return img.build();
}

bool have_qemu() {
  return find_qemu("qemu-system-arm", "qemu-system-arm").has_value();
}

#define SKIP_WITHOUT_QEMU()                                                                         \
  do {                                                                                              \
    if (!have_qemu())                                                                               \
      GTEST_SKIP() << "qemu-system-arm is not installed (Debian: apt-get install qemu-system-arm)"; \
  } while (0)

/// A private directory for the RAM file and QEMU's runtime files, checked empty afterwards.
class QemuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = (fs::temp_directory_path() / "amp-qemu-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(dir.data()), nullptr);
    dir_ = dir;
    fs::create_directory(dir_ / "ram");
    fs::create_directory(dir_ / "run");
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  QemuConfig config() {
    QemuConfig c;
    c.ram_dir = (dir_ / "ram").string();
    c.runtime_dir = (dir_ / "run").string();
    c.qemu_timeout = 5s;
    c.timeout = 5s;
    return c;
  }

  /// What is left in the RAM and runtime directories.
  std::vector<std::string> leftovers() const {
    std::vector<std::string> found;
    for (const char* sub : {"ram", "run"}) {
      for (const auto& e : fs::recursive_directory_iterator(dir_ / sub)) {
        if (!e.is_directory()) found.push_back(e.path().string());
      }
    }
    return found;
  }

  /// A fake QEMU: a Python script that does `behaviour` (Python statements, with `doorbell` and `qmp` the
  /// paths QEMU was given).
  std::string fake_qemu(const std::string& name, const std::string& behaviour) {
    const fs::path path = dir_ / name;
    std::ofstream out(path);
    out << "#!/usr/bin/env python3\n"
           "import json, os, socket, sys, time\n"
           "args = sys.argv[1:]\n"
           "doorbell = qmp = console = console_socket = None\n"
           "for i, a in enumerate(args):\n"
           "    if a.startswith('socket,id=amp-db,path='): doorbell = a.split('path=', 1)[1]\n"
           "    if a.startswith('socket,id=amp-con,path='): console = a.split('path=', 1)[1]\n"
           "    if a == '-qmp': qmp = args[i + 1][len('unix:'):].split(',')[0]\n"
           "def connect_doorbell():\n"
           "    global console_socket\n"
           "    console_socket = socket.socket(socket.AF_UNIX)\n"
           "    console_socket.connect(console)\n"
           "    s = socket.socket(socket.AF_UNIX)\n"
           "    s.connect(doorbell)\n"
           "    return s\n"
        << behaviour;
    out.close();
    fs::permissions(path, fs::perms::owner_all);
    return path.string();
  }

  static void expect_no_child() {
    EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1) << "a child process is left";
    EXPECT_EQ(errno, ECHILD);
  }

  fs::path dir_;
};

/// load() refuses `image` with `status` and a message holding `message`, before any QEMU starts.
void expect_refused(QemuConfig config, const std::vector<std::byte>& image, Status status,
                    const std::string& message) {
  config.binary = "/nonexistent/qemu-system-arm";  // never needed: the image is checked first
  QemuDriver driver(config);
  EXPECT_EQ(driver.load(image), status) << driver.error();
  EXPECT_NE(driver.error().find(message), std::string::npos) << driver.error();
  EXPECT_EQ(driver.pid(), -1);
}

// --- Images the board cannot run: refused before QEMU. ---

TEST_F(QemuTest, ImageForAnotherMachineIsRefused) {
  expect_refused(config(), make_image({.machine = elf::kMachineX86_64}), Status::kNotSupported,
                 "firmware: built for EM_X86_64; the virt-a15 board (cortex-a15) runs EM_ARM");
}

TEST_F(QemuTest, BigEndianImageIsRefused) {
  expect_refused(config(), make_image({.data_order = 2}), Status::kNotSupported,
                 "firmware: a big-endian image; the virt-a15 board (cortex-a15) runs little-endian code");
}

TEST_F(QemuTest, SixtyFourBitImageIsRefused) {
  // The smallest valid 64-bit ELF executable for EM_ARM: a header, no segments, no sections.
  std::vector<std::byte> image(64);
  auto put = [&](std::size_t at, std::uint64_t v, std::size_t width) {
    for (std::size_t i = 0; i < width; ++i)
      image[at + i] = std::byte(static_cast<std::uint8_t>(v >> (8 * i)));
  };
  const std::uint8_t ident[] = {0x7F, 'E', 'L', 'F', 2, 1, 1};
  std::memcpy(image.data(), ident, sizeof ident);
  put(16, 2, 2);  // ET_EXEC
  put(18, elf::kMachineArm, 2);
  put(20, 1, 4);   // EV_CURRENT
  put(52, 64, 2);  // e_ehsize
  put(54, 56, 2);  // e_phentsize
  put(58, 64, 2);  // e_shentsize
  expect_refused(config(), image, Status::kNotSupported,
                 "firmware: a 64-bit ELF image; the virt-a15 board runs 32-bit EM_ARM code");
}

TEST_F(QemuTest, SegmentsOutsideGuestRamAreRefused) {
  // In QEMU's device tree, below RAM, past its end, straddling its end.
  expect_refused(config(), make_image({.base = 0x4000'0000, .entry = 0x4000'0000, .table_da = 0x4000'0400}),
                 Status::kOutOfRange,
                 "firmware: segment 0 (0x40000000..0x40002fff) is outside guest RAM's 0x40100000..0x43ffffff "
                 "(0x40000000..0x400fffff is QEMU's device tree)");
  expect_refused(config(), make_image({.extra_segment = std::pair{0x1000'0000U, 0x100U}}),
                 Status::kOutOfRange, "firmware: segment 1 (0x10000000..0x100000ff) is outside guest RAM");
  expect_refused(config(), make_image({.extra_segment = std::pair{0x43ff'ff00U, 0x200U}}),
                 Status::kOutOfRange, "firmware: segment 1 (0x43ffff00..0x440000ff) is outside guest RAM");
}

TEST_F(QemuTest, EachBoardHasItsOwnRam) {
  EXPECT_EQ(QemuBoard::named("virt-a15")->ram_base, 0x4000'0000U);
  EXPECT_EQ(QemuBoard::named("mps2-an386")->ram_base, 0x2100'0000U);
  EXPECT_FALSE(QemuBoard::named("virt"));
  // An image for virt-a15 is outside the Cortex-M4 board's 16 MiB, of which QEMU owns nothing.
  QemuConfig c = config();
  c.board = QemuBoard::mps2_an386();
  expect_refused(
      c, make_image(), Status::kOutOfRange,
      "firmware: segment 0 (0x40100000..0x40102fff) is outside guest RAM's 0x21000000..0x21ffffff");
}

TEST_F(QemuTest, EntryOutsideGuestRamIsRefused) {
  expect_refused(config(), make_image({.entry = 0x0000'1000}), Status::kOutOfRange,
                 "firmware: its entry point 0x1000 is outside guest RAM");
}

TEST_F(QemuTest, ImageWithoutResourceTableIsRefused) {
  expect_refused(config(), make_image({.table = false}), Status::kNotFound,
                 "firmware: no .resource_table section (a firmware for QEMU declares its rpmsg vdev and the "
                 "vdev0buffer carveout there)");
}

TEST_F(QemuTest, TableOutsideTheLoadedBytesIsRefused) {
  // In the segment's zero-filled part (memsz past filesz): the host's writes would not be where the image
  // says the table is.
  expect_refused(config(), make_image({.table_da = kImageBase + 0x2400}), Status::kOutOfRange,
                 "is not inside a loaded segment's bytes");
}

TEST_F(QemuTest, TableWithoutRpmsgVdevIsRefused) {
  expect_refused(config(), make_image({.vdev = false}), Status::kNotFound,
                 "firmware: its resource table has no rpmsg vdev with two vrings");
}

TEST_F(QemuTest, TableWithoutTheRpmsgPoolIsRefused) {
  expect_refused(config(), make_image({.pool = false}), Status::kNotFound,
                 "firmware: its resource table has no carveout named vdev0buffer: the host takes it for the "
                 "vrings and the rpmsg buffers");
  expect_refused(config(), make_image({.pool_name = "vdev0buffers"}), Status::kNotFound,
                 "no carveout named vdev0buffer");
}

TEST_F(QemuTest, RpmsgPoolOutsideRamOrOverTheImageIsRefused) {
  expect_refused(config(), make_image({.pool_da = 0x4400'0000}), Status::kOutOfRange,
                 "firmware: the vdev0buffer carveout (0x44000000..0x440fffff) is outside guest RAM");
  expect_refused(config(), make_image({.pool_da = kImageBase}), Status::kInvalidArgument,
                 "overlaps a segment of the image (0x40100000..0x40102fff)");
}

TEST_F(QemuTest, PollModeNeedsTheDoorbellEntry) {
  QemuConfig c = config();
  c.poll = true;
  expect_refused(c, make_image({.doorbell = false}), Status::kNotFound,
                 "has no amp doorbell entry (vendor type 128), so it cannot be told to poll");
}

// --- QEMU that is missing, fails or does not answer: clear errors, nothing left behind. ---

TEST_F(QemuTest, MissingQemuNamesItsPackage) {
  QemuConfig c = config();
  c.binary = (dir_ / "no-such-qemu").string();
  QemuDriver driver(c);
  EXPECT_EQ(driver.load(make_image()), Status::kNotFound);
  EXPECT_NE(driver.error().find("no-such-qemu is not an executable file"), std::string::npos)
      << driver.error();
  EXPECT_NE(driver.error().find("apt-get install qemu-system-arm"), std::string::npos) << driver.error();
  EXPECT_TRUE(leftovers().empty());
}

TEST_F(QemuTest, QemuNotInPathNamesItsPackage) {
  const char* old = std::getenv("PATH");
  const std::string saved = old != nullptr ? old : "";
  ::setenv("PATH", (dir_ / "run").c_str(), 1);  // an empty directory
  QemuDriver driver(config());
  const Status s = driver.load(make_image());
  ::setenv("PATH", saved.c_str(), 1);
  EXPECT_EQ(s, Status::kNotFound);
  EXPECT_NE(driver.error().find("QEMU: qemu-system-arm is not installed (not found in PATH) (Debian: apt-get "
                                "install qemu-system-arm)"),
            std::string::npos)
      << driver.error();
}

TEST_F(QemuTest, QemuThatFailsToStartSaysWhatItSaid) {
  QemuConfig c = config();
  c.binary = fake_qemu("failing-qemu",
                       "sys.stderr.write('qemu-system-arm: -machine virt: this QEMU cannot (fake)\\n')\n"
                       "sys.exit(1)\n");
  QemuDriver driver(c);
  EXPECT_EQ(driver.load(make_image()), Status::kIoError);
  EXPECT_NE(driver.error().find("QEMU did not start: it ended (QEMU exited with status 1): qemu-system-arm: "
                                "-machine virt: this QEMU cannot (fake)"),
            std::string::npos)
      << driver.error();
  EXPECT_EQ(driver.pid(), -1);
  EXPECT_TRUE(leftovers().empty()) << leftovers().front();
  expect_no_child();
}

TEST_F(QemuTest, RealQemuThatRefusesItsArgumentsSaysWhy) {
  SKIP_WITHOUT_QEMU();
  QemuConfig c = config();
  c.extra_args = {"-frobnicate"};
  QemuDriver driver(c);
  EXPECT_EQ(driver.load(make_image()), Status::kIoError);
  EXPECT_NE(driver.error().find("exited with status 1"), std::string::npos) << driver.error();
  EXPECT_NE(driver.error().find("-frobnicate"), std::string::npos) << driver.error();
  EXPECT_TRUE(leftovers().empty());
  expect_no_child();
}

TEST_F(QemuTest, QemuThatNeverConnectsTheDoorbellTimesOut) {
  QemuConfig c = config();
  c.qemu_timeout = 300ms;
  c.binary = fake_qemu("sleeping-qemu", "time.sleep(60)\n");
  QemuDriver driver(c);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(driver.load(make_image()), Status::kTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  EXPECT_NE(
      driver.error().find("QEMU did not start: it did not connect to its doorbell socket within 300 ms"),
      std::string::npos)
      << driver.error();
  EXPECT_TRUE(leftovers().empty());
  expect_no_child();
}

TEST_F(QemuTest, QmpSocketThatNeverAnswersTimesOut) {
  QemuConfig c = config();
  // One deadline covers the launch, the fake's Python start-up included: under a loaded machine (CI's
  // parallel tests and builds) that alone took more than 1.5 s.
  c.qemu_timeout = 3000ms;
  c.binary = fake_qemu("silent-qemu",
                       "db = connect_doorbell()\n"
                       "s = socket.socket(socket.AF_UNIX)\n"
                       "s.bind(qmp)\n"
                       "s.listen(1)\n"
                       "c, _ = s.accept()\n"
                       "time.sleep(60)\n");
  QemuDriver driver(c);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(driver.load(make_image()), Status::kTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 6s);
  EXPECT_NE(driver.error().find("QEMU did not start: QEMU's QMP socket "), std::string::npos)
      << driver.error();
  EXPECT_NE(driver.error().find("qmp.sock did not answer within 3000 ms (no greeting)"), std::string::npos)
      << driver.error();
  EXPECT_TRUE(leftovers().empty()) << leftovers().front();
  expect_no_child();
}

TEST_F(QemuTest, QmpSocketThatNeverAppearsTimesOut) {
  QemuConfig c = config();
  c.qemu_timeout = 3000ms;  // (as above: the fake's start-up counts)
  c.binary = fake_qemu("no-qmp-qemu", "db = connect_doorbell()\ntime.sleep(60)\n");
  QemuDriver driver(c);
  EXPECT_EQ(driver.load(make_image()), Status::kTimeout);
  EXPECT_NE(driver.error().find("qmp.sock did not appear within"), std::string::npos) << driver.error();
  EXPECT_TRUE(leftovers().empty());
  expect_no_child();
}

TEST_F(QemuTest, MachineThatIsNotPausedIsRefused) {
  // A QMP server that answers with ids, events in between and a stale answer first: only the answer to
  // the command counts.
  QemuConfig c = config();
  c.binary = fake_qemu(
      "running-qemu",
      "db = connect_doorbell()\n"
      "s = socket.socket(socket.AF_UNIX)\n"
      "s.bind(qmp)\n"
      "s.listen(1)\n"
      "c, _ = s.accept()\n"
      "f = c.makefile('rwb')\n"
      "def send(o):\n"
      "    f.write(json.dumps(o).encode() + b'\\r\\n')\n"
      "    f.flush()\n"
      "send({'QMP': {'version': {'qemu': {'micro': 0, 'minor': 2, 'major': 7}}, 'capabilities': []}})\n"
      "for line in f:\n"
      "    cmd = json.loads(line)\n"
      "    send({'event': 'RESUME', 'timestamp': {'seconds': 1, 'microseconds': 2}})\n"
      "    send({'return': {'status': 'stale'}, 'id': 999})\n"
      "    if cmd['execute'] == 'query-status':\n"
      "        send({'return': {'status': 'running', 'running': True}, 'id': cmd['id']})\n"
      "    else:\n"
      "        send({'return': {}, 'id': cmd['id']})\n");
  QemuDriver driver(c);
  EXPECT_EQ(driver.load(make_image()), Status::kIoError);
  EXPECT_NE(driver.error().find("its machine is 'running', not waiting to start (prelaunch)"),
            std::string::npos)
      << driver.error();
  EXPECT_TRUE(leftovers().empty());
  expect_no_child();
}

// --- The real QEMU, with the tiny images. ---

std::uint8_t vdev_status(const metal::IoRegion& ram) {
  auto table = ram.subregion(kTableDa - 0x4000'0000, 0x300);
  if (!table) return 0xFF;
  auto body = virtio::find_vdev(*table);
  if (!body) return 0xFF;
  auto transport = virtio::RscVdevTransport::open(*body);
  return transport ? transport->status() : 0xFF;
}

/// Word `index` of the doorbell entry's body in guest RAM (0 mode, 1 state, 2 ping, 3 pong).
std::uint32_t doorbell_word(const metal::IoRegion& ram, std::size_t index) {
  auto table = ram.subregion(kTableDa - 0x4000'0000, 0x300);
  if (!table) return 0xFFFF'FFFF;
  auto parsed = ResourceTable::parse(*table);
  if (!parsed) return 0xFFFF'FFFF;
  // The vendor entry is the last one.
  auto entry = parsed->entry(parsed->entry_count() - 1);
  return entry ? table->load<std::uint32_t>(entry->offset + 4 + 4 * index).value_or(0xFFFF'FFFF)
               : 0xFFFF'FFFF;
}

std::uint32_t doorbell_mode(const metal::IoRegion& ram) {
  return doorbell_word(ram, 0);
}

using qemu_test::cpu_of_process;
using qemu_test::cpu_of_self;

TEST_F(QemuTest, LoadPausesStartRunsStopEnds) {
  SKIP_WITHOUT_QEMU();
  QemuDriver driver(config());
  ASSERT_EQ(driver.load(make_image()), Status::kOk) << driver.error();
  const pid_t pid = driver.pid();
  ASSERT_GT(pid, 0);
  EXPECT_EQ(driver.machine_status().value_or("?"), "prelaunch");
  EXPECT_EQ(driver.trace(), kBootText) << "the image's trace buffer, read from guest RAM";
  EXPECT_EQ(doorbell_mode(driver.memory()), kDoorbellModeInterrupt);
  EXPECT_TRUE(leftovers().empty())
      << "nothing while QEMU runs: the RAM file is unlinked once QEMU has it, the sockets once connected: "
      << leftovers().front();
  // The guest may use semihosting to end QEMU only (target=gdb: its SYS_SYSTEM and SYS_OPEN do nothing here),
  // and QEMU runs in its sandbox.
  std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::string cmd((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
  std::replace(cmd.begin(), cmd.end(), '\0', ' ');
  EXPECT_NE(cmd.find("-semihosting-config enable=on,target=gdb"), std::string::npos) << cmd;
  EXPECT_EQ(cmd.find("target=native"), std::string::npos) << cmd;
  EXPECT_NE(cmd.find("-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny"), std::string::npos)
      << cmd;

  rpmsg::Device* up = nullptr;
  driver.on_link_up([&](rpmsg::Device& d) { up = &d; });
  ASSERT_EQ(driver.start(), Status::kOk) << driver.error();
  EXPECT_EQ(driver.machine_status().value_or("?"), "running");
  ASSERT_NE(up, nullptr);
  EXPECT_EQ(up, driver.device());
  const auto plan = driver.plan();
  ASSERT_TRUE(plan);
  for (std::size_t q = 0; q < 2; ++q) {
    EXPECT_GE(plan->vdev.vrings[q].da, kPoolDa) << "vrings in vdev0buffer";
    EXPECT_LT(plan->vdev.vrings[q].da, kPoolDa + kPoolSize);
  }
  EXPECT_GE(plan->buffers, kPoolDa);
  EXPECT_LE(plan->buffers + plan->buffers_size, kPoolDa + kPoolSize);
  EXPECT_NE(vdev_status(driver.memory()) & virtio::kStatusDriverOk, 0) << "DRIVER_OK is set for the firmware";

  ASSERT_EQ(driver.stop(), Status::kOk);
  EXPECT_EQ(driver.pid(), -1);
  EXPECT_EQ(::kill(pid, 0), -1) << "QEMU is gone";
  EXPECT_EQ(driver.last_end(), "exited with status 0") << "QEMU quit when asked";
  EXPECT_EQ(vdev_status(driver.memory()), 0) << "the vdev was reset before QEMU went";
  EXPECT_EQ(driver.trace(), kBootText) << "the last RAM stays readable";
  EXPECT_TRUE(leftovers().empty());
  expect_no_child();
}

TEST_F(QemuTest, EveryLoadIsANewQemu) {
  SKIP_WITHOUT_QEMU();
  QemuDriver driver(config());
  ASSERT_EQ(driver.load(make_image()), Status::kOk) << driver.error();
  const pid_t first = driver.pid();
  ASSERT_EQ(driver.start(), Status::kOk) << driver.error();
  ASSERT_EQ(driver.stop(), Status::kOk);
  ASSERT_EQ(driver.load(make_image()), Status::kOk) << driver.error();
  EXPECT_NE(driver.pid(), first);
  EXPECT_EQ(driver.machine_status().value_or("?"), "prelaunch");
  // A reload without a start replaces the paused QEMU.
  const pid_t second = driver.pid();
  ASSERT_EQ(driver.load(make_image()), Status::kOk) << driver.error();
  EXPECT_NE(driver.pid(), second);
  EXPECT_EQ(::kill(second, 0), -1);
  driver.shutdown();
  EXPECT_TRUE(leftovers().empty());
  expect_no_child();
}

TEST_F(QemuTest, PollModeIsWrittenIntoTheImage) {
  SKIP_WITHOUT_QEMU();
  QemuConfig c = config();
  c.poll = true;
  QemuDriver driver(c);
  ASSERT_EQ(driver.load(make_image()), Status::kOk) << driver.error();
  EXPECT_EQ(doorbell_mode(driver.memory()), kDoorbellModePoll);
  ASSERT_EQ(driver.start(), Status::kOk) << driver.error();
  EXPECT_EQ(doorbell_mode(driver.memory()), kDoorbellModePoll);
  ASSERT_EQ(driver.stop(), Status::kOk);
}

TEST_F(QemuTest, KilledQemuIsACrashAndRecoveryStartsANewOne) {
  SKIP_WITHOUT_QEMU();
  QemuRemote remote(config());
  std::mutex m;
  std::vector<std::string> seen;
  remote.on_transition([&](const Transition& t) {
    std::lock_guard lock(m);
    seen.push_back(std::string(to_string(t.from)) + "->" + to_string(t.to));
  });
  std::atomic<int> ups{0}, downs{0};
  remote.on_link_up([&](rpmsg::Device&) { ++ups; });
  remote.on_link_down([&](rpmsg::Device&) { ++downs; });
  remote.set_recovery(true, 2);
  ASSERT_TRUE(remote.start(make_image())) << remote.driver().error();
  const pid_t first = remote.driver().pid();
  {
    std::lock_guard lock(m);
    seen.clear();
  }
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  // The transitions are reported after the state changes: wait for the last one's report.
  for (int i = 0; i < 1000; ++i) {
    {
      std::lock_guard lock(m);
      if (seen.size() >= 3) break;
    }
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(remote.state(), State::kRunning);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_EQ(remote.last_exit(), "QEMU killed by signal 9 (Killed)");
  const pid_t second = remote.driver().pid();
  EXPECT_GT(second, 0);
  EXPECT_NE(second, first);
  EXPECT_EQ(remote.driver().machine_status().value_or("?"), "running");
  EXPECT_EQ(ups.load(), 2);
  EXPECT_EQ(downs.load(), 1);
  {
    std::lock_guard lock(m);
    EXPECT_EQ(seen, (std::vector<std::string>{"running->crashed", "crashed->loaded", "loaded->running"}));
  }
  EXPECT_EQ(remote.lifecycle().recoveries(), 1U);
  ASSERT_TRUE(remote.stop());
  EXPECT_TRUE(leftovers().empty());
  expect_no_child();
}

/// What a remote's on_down reported.
class DownReport {
 public:
  explicit DownReport(QemuRemote& remote) {
    remote.on_down([this](const std::string& how) {
      std::lock_guard lock(m_);
      how_ = how;
    });
  }
  /// The report, once it came (within 1 s), else "".
  std::string wait() {
    for (int i = 0; i < 100; ++i) {
      {
        std::lock_guard lock(m_);
        if (!how_.empty()) return how_;
      }
      std::this_thread::sleep_for(10ms);
    }
    std::lock_guard lock(m_);
    return how_;
  }

 private:
  std::mutex m_;
  std::string how_;
};

TEST_F(QemuTest, GuestSemihostingExitIsACrash) {
  SKIP_WITHOUT_QEMU();
  QemuRemote remote(config());
  DownReport down(remote);
  ASSERT_TRUE(remote.start(make_image({.code = kSemihostingExit}))) << remote.driver().error();
  ASSERT_TRUE(remote.wait_for(State::kCrashed, 5s)) << to_string(remote.state());
  EXPECT_EQ(remote.last_exit(),
            "QEMU exited with status 1 (the firmware ended it through semihosting: a guest fault)");
  EXPECT_EQ(down.wait(), remote.last_exit()) << "recovery is off: the remote stays down";
  EXPECT_EQ(remote.driver().device(), nullptr);
  EXPECT_EQ(remote.driver().trace(), kBootText) << "the dead guest's trace stays readable";
}

TEST_F(QemuTest, DetachLeavesQemuRunningAndAttachBringsANewVdevHost) {
  SKIP_WITHOUT_QEMU();
  QemuRemote remote(config());
  ASSERT_TRUE(remote.start(make_image())) << remote.driver().error();
  const pid_t pid = remote.driver().pid();
  rpmsg::Device* first = remote.driver().device();
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(remote.detach());
  EXPECT_EQ(remote.state(), State::kDetached);
  EXPECT_EQ(remote.driver().device(), nullptr);
  EXPECT_EQ(remote.driver().pid(), pid) << "QEMU keeps running";
  EXPECT_EQ(remote.driver().machine_status().value_or("?"), "running");
  EXPECT_EQ(vdev_status(remote.driver().memory()), 0) << "the vdev was reset";
  ASSERT_TRUE(remote.attach()) << remote.driver().error();
  EXPECT_EQ(remote.state(), State::kAttached);
  EXPECT_NE(remote.driver().device(), nullptr);
  EXPECT_NE(vdev_status(remote.driver().memory()) & virtio::kStatusDriverOk, 0);
  const auto plan = remote.driver().plan();
  ASSERT_TRUE(plan);
  EXPECT_GE(plan->vdev.vrings[0].da, kPoolDa) << "the vrings placed again, in the pool";
  EXPECT_EQ(remote.driver().pid(), pid);
  // A crash while detached is reported, and not recovered (it was not ours to restart).
  remote.set_recovery(true);
  ASSERT_TRUE(remote.detach());
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_TRUE(remote.wait_for(State::kCrashed, 5s));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(remote.state(), State::kCrashed);
  EXPECT_TRUE(leftovers().empty());
}

TEST_F(QemuTest, AttachWithoutADetachedQemuIsRefused) {
  QemuDriver driver(config());
  EXPECT_EQ(driver.attach(), Status::kNotFound);
  EXPECT_NE(driver.error().find("attaches to a firmware it detached from"), std::string::npos);
}

TEST_F(QemuTest, IdleInInterruptModeCostsNoHostCpu) {
  SKIP_WITHOUT_QEMU();
  QemuRemote remote(config());
  ASSERT_TRUE(remote.start(make_image())) << remote.driver().error();
  std::this_thread::sleep_for(300ms);  // start-up settles
  const pid_t qemu = remote.driver().pid();
  const auto host0 = cpu_of_self();
  const auto qemu0 = cpu_of_process(qemu);
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(2s);
  const auto wall =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
  const auto host = cpu_of_self() - host0;
  const auto guest = cpu_of_process(qemu) - qemu0;
  EXPECT_LT(host * 20, wall) << "the host used " << host.count() << " us of CPU in " << wall.count()
                             << " us idle";
  EXPECT_LT(guest * 20, wall) << "QEMU (a WFI guest) used " << guest.count() << " us of CPU in "
                              << wall.count();
  ASSERT_TRUE(remote.stop());
}

TEST_F(QemuTest, OnlyADoorbellEntryWithPingAndPongHasTheWatchdog) {
  auto without = check_qemu_firmware(QemuBoard::virt_a15(), make_image(), false);
  ASSERT_TRUE(without) << without.error().message;
  EXPECT_FALSE(without->watchdog);
  auto with = check_qemu_firmware(QemuBoard::virt_a15(), make_image({.doorbell_body = 16}), false);
  ASSERT_TRUE(with) << with.error().message;
  EXPECT_TRUE(with->watchdog);
}

TEST_F(QemuTest, AFirmwareThatNeverAnswersTheWatchdogIsACrash) {
  SKIP_WITHOUT_QEMU();
  // The WFI loop has the watchdog's words but never copies ping into pong: hung, as far as anyone can tell.
  QemuConfig c = config();
  c.watchdog = 300ms;
  QemuRemote remote(c);
  DownReport down(remote);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(remote.start(make_image({.doorbell_body = 16}))) << remote.driver().error();
  const pid_t pid = remote.driver().pid();
  EXPECT_EQ(doorbell_word(remote.driver().memory(), 2), 1U) << "the first ping is written at the start";
  ASSERT_TRUE(remote.wait_for(State::kCrashed, 5s)) << to_string(remote.state());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 300ms) << "the firmware had its whole period";
  EXPECT_EQ(
      remote.last_exit().rfind("the firmware stopped answering its watchdog: no answer to ping 1 for ", 0),
      0U)
      << remote.last_exit();
  EXPECT_NE(remote.last_exit().find("(pong 0); QEMU killed"), std::string::npos) << remote.last_exit();
  EXPECT_EQ(remote.driver().last_end(), "killed by signal 9 (Killed)");
  EXPECT_EQ(::kill(pid, 0), -1) << "QEMU is gone";
  EXPECT_EQ(down.wait(), remote.last_exit()) << "recovery is off: the remote stays down";
  EXPECT_EQ(remote.driver().device(), nullptr);
  EXPECT_TRUE(leftovers().empty());
  expect_no_child();
}

TEST_F(QemuTest, AFirmwareWithoutTheWatchdogWordsIsNotWatched) {
  SKIP_WITHOUT_QEMU();
  QemuConfig c = config();
  c.watchdog = 100ms;
  QemuRemote remote(c);
  ASSERT_TRUE(remote.start(make_image())) << remote.driver().error();
  const pid_t pid = remote.driver().pid();
  std::this_thread::sleep_for(800ms);  // 8 periods
  EXPECT_EQ(remote.state(), State::kRunning);
  EXPECT_EQ(remote.driver().pid(), pid);
  ASSERT_TRUE(remote.stop());
}

// --- A hostile guest: what it can do to the host is bounded. ---

TEST_F(QemuTest, AGuestCannotReachTheHostThroughSemihosting) {
  SKIP_WITHOUT_QEMU();
  // Semihosting is on for the firmware's exit; every other call goes to a debugger that is not there.
  const fs::path secret = dir_ / "secret";
  const fs::path created = dir_ / "created-by-the-guest";
  const fs::path mark = dir_ / "the-guest-ran-a-command";
  const std::string text = "not for the guest: 0123456789abcdef";
  std::ofstream(secret) << text;
  QemuRemote remote(config());
  ASSERT_TRUE(remote.start(
      make_image({.code = semihosting_probe(secret.string(), created.string(), "touch " + mark.string())})))
      << remote.driver().error();
  std::this_thread::sleep_for(500ms);
  const metal::IoRegion ram = remote.driver().memory();
  std::string buffer(32, '?');
  ASSERT_EQ(ram.read(kProbeBufferDa - 0x4000'0000, std::as_writable_bytes(std::span(buffer))), Status::kOk);
  EXPECT_EQ(buffer, std::string(32, '.')) << "SYS_READ gave the guest a host file's bytes";
  EXPECT_FALSE(fs::exists(created)) << "SYS_OPEN/SYS_WRITE made a file on the host";
  EXPECT_FALSE(fs::exists(mark)) << "SYS_SYSTEM ran a shell command on the host";
  ASSERT_TRUE(remote.stop());
  EXPECT_TRUE(leftovers().empty());
  expect_no_child();
}

TEST_F(QemuTest, AGuestThatFloodsItsConsoleCostsABoundedTailAndStopsCleanly) {
  SKIP_WITHOUT_QEMU();
  QemuRemote remote(config());
  ASSERT_TRUE(remote.start(make_image({.code = uart_spam(0x0900'0000)}))) << remote.driver().error();
  std::this_thread::sleep_for(1s);
  const std::string console = remote.driver().console();
  EXPECT_GT(console.size(), 1000U) << "the guest's flood did not reach the console";
  EXPECT_LE(console.size(), 16384U);
  EXPECT_EQ(console.find_first_not_of('x'), std::string::npos);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(remote.stop());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_EQ(remote.driver().last_end(), "exited with status 0") << "QMP quit works under the flood";
  EXPECT_TRUE(leftovers().empty());
  expect_no_child();
}

TEST_F(QemuTest, AGuestThatRingsTheDoorbellWithoutEndCannotHangTheHost) {
  SKIP_WITHOUT_QEMU();
  QemuRemote remote(config());
  ASSERT_TRUE(remote.start(make_image({.code = uart_spam(0x0904'0000)}))) << remote.driver().error();
  std::this_thread::sleep_for(1s);
  // The vdev host drains the doorbell and looks at rings that hold nothing: the operations still go.
  EXPECT_EQ(remote.driver().machine_status().value_or("?"), "running");
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(remote.detach()) << remote.driver().error();
  std::this_thread::sleep_for(300ms);  // detached: the driver's loop drains it
  ASSERT_TRUE(remote.stop());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 8s);
  EXPECT_TRUE(leftovers().empty());
  expect_no_child();
}

}  // namespace
}  // namespace amp::rproc
