// SPDX-License-Identifier: BSD-3-Clause
// The qemu driver with amp's bare-metal firmware (firmware/baremetal), end to end, on each board (virt-a15:
// a Cortex-A15; mps2-an386: a Cortex-M4): the test images (version "test-1" and "test-2", with the amp-fault
// service) loaded and started under qemu-system-arm; every echo size on amp-echo, matrix products on both
// matrix services, the version line; a second image; QEMU killed and a guest fault, each recovered into a new
// QEMU; detach and attach with echoes after each; poll mode; and no host CPU while idle in interrupt mode.
//
// Skipped (GTEST_SKIP, saying why) only when qemu-system-arm or the cross-compiled images are missing.
#include <signal.h>
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
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <ostream>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "amp/rproc/linux/qemu.hpp"
#include "amp/rproc/linux/qemu_process.hpp"
#include "matrix_protocol.hpp"
#include "qemu_client.hpp"

#ifndef AMP_QEMU_FIRMWARE_TEST
#define AMP_QEMU_FIRMWARE_TEST ""
#endif
#ifndef AMP_QEMU_FIRMWARE_TEST2
#define AMP_QEMU_FIRMWARE_TEST2 ""
#endif
#ifndef AMP_QEMU_M4_FIRMWARE_TEST
#define AMP_QEMU_M4_FIRMWARE_TEST ""
#endif
#ifndef AMP_QEMU_M4_FIRMWARE_TEST2
#define AMP_QEMU_M4_FIRMWARE_TEST2 ""
#endif

namespace amp::rproc {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using namespace qemu_test;

/// A board and its two test images.
struct BoardImages {
  const char* board;
  const char* test1;
  const char* test2;
};

void PrintTo(const BoardImages& b, std::ostream* os) {
  *os << b.board;
}

class QemuFirmwareTest : public ::testing::TestWithParam<BoardImages> {
 protected:
  void SetUp() override {
    if (!find_qemu("qemu-system-arm", "qemu-system-arm"))
      GTEST_SKIP() << "qemu-system-arm is not installed (Debian: apt-get install qemu-system-arm)";
    for (const char* path : {GetParam().test1, GetParam().test2}) {
      if (std::strlen(path) == 0 || !fs::exists(path)) {
        GTEST_SKIP() << "the bare-metal firmware images were not built (arm-none-eabi-g++ missing: "
                        "apt-get install gcc-arm-none-eabi): '"
                     << path << "'";
      }
    }
    test1_ = read_file(GetParam().test1);
    test2_ = read_file(GetParam().test2);
  }

  QemuConfig config() {
    QemuConfig c;
    c.board = QemuBoard::named(GetParam().board).value();
    c.timeout = 10s;
    return c;
  }

  /// What amp-version answers with image `version`.
  std::string version_line(const char* version) const {
    return std::string("amp-firmware ") + version + " " + GetParam().board;
  }

  /// A remote whose link-ups and link-downs feed `client_`.
  std::unique_ptr<QemuRemote> make_remote(QemuConfig c) {
    auto remote = std::make_unique<QemuRemote>(std::move(c));
    remote_ = remote.get();
    remote->on_link_up([this](rpmsg::Device& d) { client_.up(d); });
    remote->on_link_down([this](rpmsg::Device& d) { client_.down(d); });
    return remote;
  }

  /// Every payload size 1..MTU on amp-echo, each echo checked byte for byte.
  void expect_echo_every_size(const char* when) {
    SCOPED_TRACE(when);
    ASSERT_TRUE(client_.wait_service("amp-echo")) << "no amp-echo announced";
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

  void expect_some_echoes(const char* when, int count = 20) {
    SCOPED_TRACE(when);
    for (int i = 0; i < count; ++i) {
      const std::string text = std::string(when) + " #" + std::to_string(i);
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

  /// What the firmware and QEMU said, for failure messages.
  std::string said() const {
    if (remote_ == nullptr) return {};
    return "\n--- the firmware's trace ---\n" + remote_->driver().trace() + "--- QEMU's output ---\n" +
           remote_->driver().qemu_output() + "--- the console ---\n" + remote_->driver().console();
  }

  std::vector<std::byte> test1_;
  std::vector<std::byte> test2_;
  Client client_;
  QemuRemote* remote_ = nullptr;
};

TEST_P(QemuFirmwareTest, ServesEchoMatrixAndVersionThenRunsASecondImage) {
  auto remote = make_remote(config());
  ASSERT_TRUE(remote->start(test1_)) << remote->driver().error();
  ASSERT_NO_FATAL_FAILURE(expect_echo_every_size("test-1"));

  // Products of random matrices of every size, on amp's service and OpenAMP's.
  std::mt19937 rng(42);
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
    // A request of the wrong length is refused without a reply, and the service goes on.
    const std::byte junk[5] = {};
    EXPECT_FALSE(client_.exchange(service, junk, 300ms)) << "a malformed request got a reply";
  }
  EXPECT_EQ(version(), version_line("test-1"));
  EXPECT_NE(remote->driver().trace().find("amp-firmware test-1"), std::string::npos)
      << remote->driver().trace();
  const pid_t first = remote->driver().pid();
  ASSERT_TRUE(remote->stop());
  EXPECT_EQ(::kill(first, 0), -1) << "QEMU is gone after stop";
  EXPECT_EQ(remote->driver().last_end(), "exited with status 0");

  // The second image, in a new QEMU, answers with its own version.
  ASSERT_TRUE(remote->start(test2_)) << remote->driver().error();
  EXPECT_NE(remote->driver().pid(), first);
  EXPECT_EQ(version(), version_line("test-2"));
  ASSERT_NO_FATAL_FAILURE(expect_some_echoes("test-2"));
  ASSERT_TRUE(remote->stop());
}

TEST_P(QemuFirmwareTest, KilledQemuAndGuestFaultAreCrashesThatRecover) {
  auto remote = make_remote(config());
  remote->set_recovery(true, 5);
  std::mutex m;
  std::vector<std::string> crashes;
  remote->on_transition([&](const Transition& t) {
    if (t.to != State::kCrashed) return;
    std::lock_guard lock(m);
    crashes.push_back(remote->last_exit());
  });
  auto wait_crashes = [&](std::size_t n) {
    for (int i = 0; i < 1000; ++i) {
      {
        std::lock_guard lock(m);
        if (crashes.size() >= n) return true;
      }
      std::this_thread::sleep_for(10ms);
    }
    return false;
  };
  ASSERT_TRUE(remote->start(test1_)) << remote->driver().error();
  ASSERT_NO_FATAL_FAILURE(expect_some_echoes("before the kill"));

  const pid_t first = remote->driver().pid();
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  ASSERT_TRUE(wait_crashes(1));
  ASSERT_TRUE(remote->wait_for(State::kRunning, 10s));
  {
    std::lock_guard lock(m);
    EXPECT_EQ(crashes[0], "QEMU killed by signal 9 (Killed)");
  }
  EXPECT_NE(remote->driver().pid(), first);
  ASSERT_NO_FATAL_FAILURE(expect_some_echoes("after the kill's recovery"));

  // The guest faults (an undefined instruction): its handler logs and ends QEMU through semihosting.
  const pid_t second = remote->driver().pid();
  const char poke = '!';
  ASSERT_TRUE(client_.wait_service("amp-fault"));
  EXPECT_FALSE(client_.exchange("amp-fault", std::as_bytes(std::span(&poke, 1)), 2s)) << "amp-fault replied";
  ASSERT_TRUE(wait_crashes(2)) << said();
  {
    std::lock_guard lock(m);
    EXPECT_EQ(crashes[1].rfind("QEMU exited with status 1", 0), 0U) << crashes[1];
  }
  ASSERT_TRUE(remote->wait_for(State::kRunning, 10s));
  EXPECT_NE(remote->driver().pid(), second);
  ASSERT_NO_FATAL_FAILURE(expect_some_echoes("after the fault's recovery"));
  EXPECT_EQ(version(), version_line("test-1"));
  EXPECT_EQ(remote->lifecycle().recoveries(), 2U);
  ASSERT_TRUE(remote->stop());
}

TEST_P(QemuFirmwareTest, AHungFirmwareIsCaughtByTheWatchdogAndRecovers) {
  QemuConfig c = config();
  c.watchdog = 1s;
  auto remote = make_remote(c);
  remote->set_recovery(true, 2);
  std::mutex m;
  std::vector<std::string> crashes;
  std::string trace_at_crash;
  remote->on_transition([&](const Transition& t) {
    if (t.to != State::kCrashed) return;
    std::lock_guard lock(m);
    crashes.push_back(remote->last_exit());
    trace_at_crash = remote->driver().trace();  // the hung guest's memory, before the recovery's load
  });
  ASSERT_TRUE(remote->start(test1_)) << remote->driver().error();
  ASSERT_NO_FATAL_FAILURE(expect_some_echoes("before the hang"));
  const pid_t first = remote->driver().pid();
  // The handler loops forever: the CPU runs, QEMU lives, nothing answers.
  const std::string_view hang = "hang";
  ASSERT_TRUE(client_.wait_service("amp-fault"));
  EXPECT_FALSE(client_.exchange("amp-fault", std::as_bytes(std::span(hang)), 500ms)) << "amp-fault replied";
  for (int i = 0; i < 1000; ++i) {
    {
      std::lock_guard lock(m);
      if (!crashes.empty()) break;
    }
    std::this_thread::sleep_for(10ms);
  }
  {
    std::lock_guard lock(m);
    ASSERT_EQ(crashes.size(), 1U) << said();
    EXPECT_EQ(crashes[0].rfind("the firmware stopped answering its watchdog: no answer to ping ", 0), 0U)
        << crashes[0];
    EXPECT_NE(trace_at_crash.find("amp-fault: a message from"), std::string::npos) << trace_at_crash;
    EXPECT_NE(trace_at_crash.find("looping forever"), std::string::npos) << trace_at_crash;
  }
  ASSERT_TRUE(remote->wait_for(State::kRunning, 10s));
  EXPECT_EQ(::kill(first, 0), -1) << "the hung QEMU is gone";
  EXPECT_NE(remote->driver().pid(), first);
  ASSERT_NO_FATAL_FAILURE(expect_some_echoes("after the watchdog's recovery"));
  EXPECT_EQ(remote->lifecycle().recoveries(), 1U);
  ASSERT_TRUE(remote->stop());
}

TEST_P(QemuFirmwareTest, GuestFaultIsInTheTrace) {
  auto remote = make_remote(config());  // no recovery: the dead guest's memory stays to be read
  ASSERT_TRUE(remote->start(test1_)) << remote->driver().error();
  ASSERT_TRUE(client_.wait_service("amp-fault"));
  const char poke = '!';
  EXPECT_FALSE(client_.exchange("amp-fault", std::as_bytes(std::span(&poke, 1)), 2s)) << "amp-fault replied";
  ASSERT_TRUE(remote->wait_for(State::kCrashed, 10s)) << said();
  const std::string trace = remote->driver().trace();
  EXPECT_NE(trace.find("amp-fault: a message from"), std::string::npos) << trace;
  EXPECT_NE(trace.find("fault: "), std::string::npos) << trace;
  EXPECT_EQ(remote->last_exit().rfind("QEMU exited with status 1", 0), 0U) << remote->last_exit();
}

TEST_P(QemuFirmwareTest, DetachAndAttachKeepTheFirmwareServing) {
  auto remote = make_remote(config());
  ASSERT_TRUE(remote->start(test1_)) << remote->driver().error();
  ASSERT_NO_FATAL_FAILURE(expect_some_echoes("started"));
  const pid_t pid = remote->driver().pid();
  for (int round = 1; round <= 2; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    ASSERT_TRUE(remote->detach()) << remote->driver().error();
    EXPECT_EQ(remote->driver().pid(), pid) << "QEMU keeps running while detached";
    EXPECT_EQ(remote->driver().machine_status().value_or("?"), "running");
    // The reset and the kick after it reach the firmware, which lets go of the vrings and says so.
    auto resets = [&] {
      const std::string trace = remote->driver().trace();
      int n = 0;
      for (auto at = trace.find("rpmsg: vdev reset by the host"); at != std::string::npos;
           at = trace.find("rpmsg: vdev reset by the host", at + 1))
        ++n;
      return n;
    };
    for (int i = 0; i < 500 && resets() < round; ++i) std::this_thread::sleep_for(10ms);
    EXPECT_EQ(resets(), round) << said();
    ASSERT_TRUE(remote->attach()) << remote->driver().error();
    ASSERT_NO_FATAL_FAILURE(expect_some_echoes("attached again"));
  }
  EXPECT_EQ(remote->driver().pid(), pid);
  EXPECT_EQ(client_.ups(), 3);
  ASSERT_TRUE(remote->stop());
}

TEST_P(QemuFirmwareTest, PollModeServesToo) {
  QemuConfig c = config();
  c.poll = true;
  auto remote = make_remote(c);
  ASSERT_TRUE(remote->start(test1_)) << remote->driver().error();
  ASSERT_NO_FATAL_FAILURE(expect_some_echoes("poll mode", 50));
  EXPECT_EQ(version(), version_line("test-1"));
  ASSERT_TRUE(remote->stop());
}

TEST_P(QemuFirmwareTest, IdleInInterruptModeCostsNoCpu) {
  // With a watchdog every 500 ms / 4: its pings wake both sides, but nothing spins, and the firmware
  // answers every one (the remote is not taken for hung).
  QemuConfig c = config();
  c.watchdog = 500ms;
  auto remote = make_remote(c);
  ASSERT_TRUE(remote->start(test1_)) << remote->driver().error();
  ASSERT_NO_FATAL_FAILURE(expect_some_echoes("before idling"));
  std::this_thread::sleep_for(200ms);
  const pid_t qemu = remote->driver().pid();
  const auto host0 = cpu_of_self();
  const auto qemu0 = cpu_of_process(qemu);
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(2s);
  const auto wall =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
  const auto host = cpu_of_self() - host0;
  const auto guest = cpu_of_process(qemu) - qemu0;
  // Under 5% of the wall time: no thread of the host spins, and the idle guest sleeps in WFI.
  EXPECT_LT(host * 20, wall) << "the host used " << host.count() << " us of CPU in " << wall.count() << " us";
  EXPECT_LT(guest * 20, wall) << "QEMU used " << guest.count() << " us of CPU in " << wall.count() << " us";
  EXPECT_EQ(remote->state(), State::kRunning);
  EXPECT_EQ(remote->driver().pid(), qemu) << "the watchdog took an idle firmware for hung";
  ASSERT_NO_FATAL_FAILURE(expect_some_echoes("after idling", 5));
  ASSERT_TRUE(remote->stop());
}

INSTANTIATE_TEST_SUITE_P(
    Boards, QemuFirmwareTest,
    ::testing::Values(BoardImages{"virt-a15", AMP_QEMU_FIRMWARE_TEST, AMP_QEMU_FIRMWARE_TEST2},
                      BoardImages{"mps2-an386", AMP_QEMU_M4_FIRMWARE_TEST, AMP_QEMU_M4_FIRMWARE_TEST2}),
    [](const ::testing::TestParamInfo<BoardImages>& param) {
      std::string name = param.param.board;
      for (char& c : name)
        if (c == '-') c = '_';
      return name;
    });

}  // namespace
}  // namespace amp::rproc
