// SPDX-License-Identifier: BSD-3-Clause
// amp's bare-metal firmware on the Cortex-M4 board (firmware/baremetal, board mps2-an386), run by the qemu
// rproc driver with its mps2-an386 profile (QemuBoard::mps2_an386: qemu-system-arm -M mps2-an386, 16 MiB of
// shared RAM at 0x21000000, nothing of QEMU's in it, the entry at e_entry with its Thumb bit). The driver
// spawns QEMU paused, loads the image into guest RAM, listens on the doorbell, lets the CPU run and brings
// the vdev up in the virtio driver role; this test is its client.
//
// Checked: every echo size, matrix products on both matrix services, the version line of each image, the
// start-up lines in the trace buffer, both fault kinds the test images can raise (an undefined instruction,
// a read of the MPU's stack guard) ending QEMU with status 1 and their lines in the trace, detach and attach,
// poll mode, and an idle guest costing no host CPU in interrupt mode (WFI without a periodic tick).
//
// Skipped (GTEST_SKIP, saying why) only when qemu-system-arm or the cross-compiled images are missing.
#include <sys/resource.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../rproc/qemu_client.hpp"
#include "amp/rproc/elf.hpp"
#include "amp/rproc/linux/qemu.hpp"
#include "amp/rproc/linux/qemu_process.hpp"
#include "matrix_protocol.hpp"

namespace amp::rproc {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using namespace qemu_test;

class Mps2An386 : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!find_qemu("qemu-system-arm", "qemu-system-arm"))
      GTEST_SKIP() << "qemu-system-arm is not installed (Debian: apt-get install qemu-system-arm)";
    for (const char* path :
         {AMP_FIRMWARE_MPS2_AN386, AMP_FIRMWARE_MPS2_AN386_TEST, AMP_FIRMWARE_MPS2_AN386_TEST2}) {
      if (std::strlen(path) == 0 || !fs::exists(path)) {
        GTEST_SKIP() << "the mps2-an386 firmware images were not built (arm-none-eabi-g++ missing: "
                        "apt-get install gcc-arm-none-eabi): '"
                     << path << "'";
      }
    }
  }

  void TearDown() override {
    if (remote_) (void)remote_->stop();
  }

  /// Loads and starts `image` under a new QEMU with the board's profile.
  void start(const char* image, bool poll = false) {
    QemuConfig c;
    c.board = QemuBoard::mps2_an386();
    c.poll = poll;
    c.timeout = 10s;
    remote_ = std::make_unique<QemuRemote>(std::move(c));
    remote_->on_link_up([this](rpmsg::Device& d) { client_.up(d); });
    remote_->on_link_down([this](rpmsg::Device& d) { client_.down(d); });
    auto started = remote_->start(read_file(image));
    ASSERT_TRUE(started) << started.error().message << said();
  }

  void expect_echo_every_size() {
    ASSERT_TRUE(client_.wait_service("amp-echo")) << "no amp-echo announced" << said();
    const std::uint32_t mtu = client_.mtu();
    ASSERT_EQ(mtu, rpmsg::kDefaultBufferSize - 16);
    for (std::uint32_t size = 1; size <= mtu; ++size) {
      std::vector<std::byte> msg(size);
      for (std::uint32_t i = 0; i < size; ++i) msg[i] = std::byte(static_cast<std::uint8_t>(size * 7 + i));
      auto reply = client_.exchange("amp-echo", msg);
      ASSERT_TRUE(reply) << "no echo of " << size << " bytes" << said();
      ASSERT_EQ(*reply, msg) << "the echo of " << size << " bytes differs";
    }
  }

  void expect_some_echoes(const std::string& when, int count = 20) {
    SCOPED_TRACE(when);
    for (int i = 0; i < count; ++i) {
      const std::string text = when + " #" + std::to_string(i);
      auto reply = client_.exchange("amp-echo", std::as_bytes(std::span(text)));
      ASSERT_TRUE(reply) << "no echo of '" << text << "'" << said();
      ASSERT_EQ(text_of(*reply), text);
    }
  }

  std::string version() {
    const char ask = '?';
    auto reply = client_.exchange("amp-version", std::as_bytes(std::span(&ask, 1)));
    return reply ? text_of(*reply) : std::string("(no reply)");
  }

  /// Sends `what` to amp-fault and checks that the guest's fault ended QEMU with status 1; the trace.
  std::string fault_with(const std::string& what) {
    EXPECT_TRUE(client_.wait_service("amp-fault")) << said();
    EXPECT_FALSE(client_.exchange("amp-fault", std::as_bytes(std::span(what)), 2s)) << "amp-fault replied";
    EXPECT_TRUE(remote_->wait_for(State::kCrashed, 10s)) << said();
    EXPECT_EQ(remote_->last_exit().rfind("QEMU exited with status 1", 0), 0U) << remote_->last_exit();
    return remote_->driver().trace();
  }

  std::string said() const {
    if (!remote_) return {};
    return "\n--- the firmware's trace ---\n" + remote_->driver().trace() + "--- QEMU's output ---\n" +
           remote_->driver().qemu_output() + "--- the console ---\n" + remote_->driver().console();
  }

  Client client_;
  std::unique_ptr<QemuRemote> remote_;
};

// The driver's profile is the one the firmware is linked for.
TEST_F(Mps2An386, TheDriversProfileIsTheFirmwaresBoard) {
  const QemuBoard b = QemuBoard::mps2_an386();
  EXPECT_EQ(b.name, "mps2-an386");
  EXPECT_EQ(b.machine, "mps2-an386");
  EXPECT_EQ(b.cpu, "cortex-m4");  // the only CPU the board takes
  EXPECT_EQ(b.elf_machine, elf::kMachineArm);
  EXPECT_EQ(b.ram_base, 0x2100'0000U);  // the PSRAM, replaced by the shared RAM
  EXPECT_EQ(b.ram_size, std::size_t{16} << 20);
  EXPECT_EQ(b.reserved, 0U);
  for (const char* path :
       {AMP_FIRMWARE_MPS2_AN386, AMP_FIRMWARE_MPS2_AN386_TEST, AMP_FIRMWARE_MPS2_AN386_TEST2}) {
    SCOPED_TRACE(path);
    auto fw = check_qemu_firmware(b, read_file(path), /*poll=*/true);
    ASSERT_TRUE(fw) << fw.error().message;
    EXPECT_EQ(fw->entry & 1U, 1U) << "a Thumb entry";
    EXPECT_GE(fw->entry, 0x2100'0000U + 48 * 4) << "the entry is after the vector table (48 words)";
    EXPECT_LT(fw->entry, 0x217F'F000U) << "the entry is in the image";
    EXPECT_EQ(fw->pool_da, 0x2180'0000U);
    EXPECT_EQ(fw->pool_size, 0x10'0000U);
    ASSERT_TRUE(fw->trace);
    EXPECT_EQ(fw->trace->da, 0x217F'F000U);
  }
  // The virt-a15 profile refuses it: its segments are outside that board's RAM.
  EXPECT_FALSE(check_qemu_firmware(QemuBoard::virt_a15(), read_file(AMP_FIRMWARE_MPS2_AN386), false));
}

TEST_F(Mps2An386, ServesEchoMatrixAndVersionAndIdlesWithoutCpu) {
  ASSERT_NO_FATAL_FAILURE(start(AMP_FIRMWARE_MPS2_AN386));
  for (const char* name : {"amp-echo", "amp-matrix", "rpmsg-openamp-demo-channel", "amp-version"})
    EXPECT_TRUE(client_.wait_service(name)) << name << " not announced" << said();
  EXPECT_FALSE(client_.has_service("amp-fault")) << "the release image has no test services";
  ASSERT_NO_FATAL_FAILURE(expect_echo_every_size());

  std::mt19937 rng(7);
  for (const char* service : {matrix::kAmpService, matrix::kOpenAmpService}) {
    SCOPED_TRACE(service);
    for (std::uint32_t n = 1; n <= matrix::kMaxSize; ++n) {
      matrix::Request req{};
      for (matrix::Matrix& op : req.operands) {
        op.size = n;
        for (std::uint32_t r = 0; r < n; ++r)
          for (std::uint32_t c = 0; c < n; ++c) op.elements[r][c] = static_cast<std::uint32_t>(rng() % 1000);
      }
      auto reply = client_.exchange(service, std::as_bytes(std::span(&req, 1)));
      ASSERT_TRUE(reply) << "no product for size " << n << said();
      ASSERT_EQ(reply->size(), sizeof(matrix::Matrix));
      matrix::Matrix got{};
      std::memcpy(&got, reply->data(), sizeof got);
      const matrix::Matrix want = matrix::multiply(req.operands[0], req.operands[1]);
      EXPECT_EQ(std::memcmp(&got, &want, sizeof got), 0) << "the product of size " << n << " is wrong";
    }
    const std::byte junk[5] = {};
    EXPECT_FALSE(client_.exchange(service, junk, 300ms)) << "a malformed request got a reply";
  }
  EXPECT_EQ(version(), "amp-firmware " AMP_FIRMWARE_VERSION " mps2-an386");

  const std::string trace = remote_->driver().trace();
  EXPECT_NE(trace.find("amp-firmware " AMP_FIRMWARE_VERSION " mps2-an386: doorbell on"), std::string::npos)
      << trace;
  EXPECT_NE(trace.find("rpmsg: up, vrings at 0x218"), std::string::npos) << trace;  // in vdev0buffer
  EXPECT_NE(remote_->driver().console().find("rpmsg: up"), std::string::npos) << said();

  // Idle: WFI, no tick. A guest that spun would cost QEMU a whole core.
  std::this_thread::sleep_for(200ms);
  const pid_t qemu = remote_->driver().pid();
  const auto before = cpu_of_process(qemu);
  std::this_thread::sleep_for(2s);
  const auto used = cpu_of_process(qemu) - before;
  EXPECT_LT(used, 100ms) << "QEMU used " << used.count() << " us of CPU over 2 s of an idle guest";
  ASSERT_NO_FATAL_FAILURE(expect_some_echoes("after idling"));

  ASSERT_TRUE(remote_->stop());
  EXPECT_EQ(remote_->driver().last_end(), "exited with status 0");
}

TEST_F(Mps2An386, TheTestImagesAreTest1AndTest2WithTheFaultService) {
  ASSERT_NO_FATAL_FAILURE(start(AMP_FIRMWARE_MPS2_AN386_TEST));
  EXPECT_TRUE(client_.wait_service("amp-fault")) << said();
  EXPECT_EQ(version(), "amp-firmware test-1 mps2-an386");
  ASSERT_TRUE(remote_->stop());
  ASSERT_NO_FATAL_FAILURE(start(AMP_FIRMWARE_MPS2_AN386_TEST2));
  EXPECT_TRUE(client_.wait_service("amp-fault")) << said();
  EXPECT_EQ(version(), "amp-firmware test-2 mps2-an386");
  ASSERT_NO_FATAL_FAILURE(expect_some_echoes("test-2"));
}

TEST_F(Mps2An386, AnUndefinedInstructionIsAUsageFaultThatEndsQemu) {
  ASSERT_NO_FATAL_FAILURE(start(AMP_FIRMWARE_MPS2_AN386_TEST));
  ASSERT_NO_FATAL_FAILURE(expect_some_echoes("before the fault"));
  const std::string trace = fault_with("!");
  EXPECT_NE(trace.find("amp-fault: a message from"), std::string::npos) << trace;
  // Exception 6 (UsageFault) with CFSR.UNDEFINSTR, the pc in the image, taken from the main loop.
  EXPECT_NE(trace.find("fault: undefined instruction at pc 0x210"), std::string::npos) << trace;
  EXPECT_NE(trace.find("(exception 6 in thread mode"), std::string::npos) << trace;
  EXPECT_NE(remote_->driver().console().find("fault: undefined instruction"), std::string::npos) << said();
}

TEST_F(Mps2An386, AReadOfTheStackGuardIsAMemManageFaultThatEndsQemu) {
  ASSERT_NO_FATAL_FAILURE(start(AMP_FIRMWARE_MPS2_AN386_TEST));
  const std::string trace = fault_with("data abort");
  EXPECT_NE(trace.find("reading 0x20000000"), std::string::npos) << trace;
  // Exception 4 (MemManage), DACCVIOL with MMFAR valid: the address is the guard's.
  EXPECT_NE(trace.find("fault: MPU data access violation at pc 0x210"), std::string::npos) << trace;
  EXPECT_NE(trace.find("(exception 4 in thread mode"), std::string::npos) << trace;
  EXPECT_NE(trace.find("address 0x20000000)"), std::string::npos) << trace;
}

TEST_F(Mps2An386, DetachAndAttachKeepTheFirmwareServing) {
  ASSERT_NO_FATAL_FAILURE(start(AMP_FIRMWARE_MPS2_AN386_TEST));
  ASSERT_NO_FATAL_FAILURE(expect_some_echoes("started"));
  const pid_t pid = remote_->driver().pid();
  for (int round = 1; round <= 2; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    ASSERT_TRUE(remote_->detach()) << remote_->driver().error();
    auto resets = [&] {
      const std::string trace = remote_->driver().trace();
      int n = 0;
      for (auto at = trace.find("rpmsg: vdev reset by the host"); at != std::string::npos;
           at = trace.find("rpmsg: vdev reset by the host", at + 1))
        ++n;
      return n;
    };
    for (int i = 0; i < 500 && resets() < round; ++i) std::this_thread::sleep_for(10ms);
    EXPECT_EQ(resets(), round) << said();
    ASSERT_TRUE(remote_->attach()) << remote_->driver().error();
    ASSERT_NO_FATAL_FAILURE(expect_some_echoes("attached again"));
  }
  EXPECT_EQ(remote_->driver().pid(), pid) << "one QEMU all along";
  EXPECT_EQ(client_.ups(), 3);
}

TEST_F(Mps2An386, ServesInPollMode) {
  ASSERT_NO_FATAL_FAILURE(start(AMP_FIRMWARE_MPS2_AN386_TEST2, /*poll=*/true));
  ASSERT_NO_FATAL_FAILURE(expect_some_echoes("poll mode", 50));
  EXPECT_EQ(version(), "amp-firmware test-2 mps2-an386");
  EXPECT_NE(remote_->driver().trace().find("doorbell off (poll mode)"), std::string::npos) << said();
}

}  // namespace
}  // namespace amp::rproc
