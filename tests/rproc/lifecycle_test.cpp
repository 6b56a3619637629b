// SPDX-License-Identifier: BSD-3-Clause
#include "amp/rproc/lifecycle.hpp"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

namespace amp::rproc {
namespace {

/// Records the calls it gets; each operation can be told to fail.
class FakeDriver final : public Driver {
 public:
  Status load(std::span<const std::byte> fw) noexcept override {
    calls.push_back("load:" + std::to_string(fw.size()));
    return fail_load;
  }
  Status start() noexcept override {
    calls.push_back("start");
    return fail_start;
  }
  Status stop() noexcept override {
    calls.push_back("stop");
    return fail_stop;
  }
  Status attach() noexcept override {
    calls.push_back("attach");
    return can_attach ? Status::kOk : Status::kNotSupported;
  }
  Status detach() noexcept override {
    calls.push_back("detach");
    return Status::kOk;
  }
  std::vector<std::string> calls;
  Status fail_load = Status::kOk;
  Status fail_start = Status::kOk;
  Status fail_stop = Status::kOk;
  bool can_attach = true;
};

class LifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    life_.set_listener([this](const Transition& t) {
      seen_.push_back(std::string(to_string(t.from)) + ">" + to_string(t.to));
      causes_.push_back(t.cause);
    });
  }
  FakeDriver driver_;
  Lifecycle life_{driver_};
  std::array<std::byte, 64> firmware_{};
  std::vector<std::string> seen_;
  std::vector<Status> causes_;
};

TEST_F(LifecycleTest, LoadStartStopAndLoadAgain) {
  EXPECT_EQ(life_.state(), State::kOffline);
  ASSERT_EQ(life_.load(firmware_), Status::kOk);
  ASSERT_EQ(life_.start(), Status::kOk);
  EXPECT_EQ(life_.state(), State::kRunning);
  ASSERT_EQ(life_.stop(), Status::kOk);
  ASSERT_EQ(life_.load(std::span(firmware_).first(10)), Status::kOk);
  EXPECT_EQ(seen_, (std::vector<std::string>{"offline>loaded", "loaded>running", "running>stopped",
                                             "stopped>loaded"}));
  EXPECT_EQ(driver_.calls, (std::vector<std::string>{"load:64", "start", "stop", "load:10"}));
}

TEST_F(LifecycleTest, TransitionsThatMakeNoSenseAreRefused) {
  EXPECT_EQ(life_.start(), Status::kBusy) << "nothing loaded";
  EXPECT_EQ(life_.stop(), Status::kBusy);
  EXPECT_EQ(life_.detach(), Status::kBusy);
  EXPECT_EQ(life_.report_crash(Status::kClosed), Status::kBusy);
  ASSERT_EQ(life_.load(firmware_), Status::kOk);
  EXPECT_EQ(life_.load(firmware_), Status::kBusy) << "already loaded";
  EXPECT_EQ(life_.attach(), Status::kBusy);
  ASSERT_EQ(life_.start(), Status::kOk);
  EXPECT_EQ(life_.start(), Status::kBusy);
  EXPECT_EQ(life_.load(firmware_), Status::kBusy) << "running";
  EXPECT_TRUE(driver_.calls.size() == 2) << "refused transitions never reach the driver";
}

TEST_F(LifecycleTest, DriverFailuresLeaveTheStateAlone) {
  driver_.fail_load = Status::kMalformed;
  EXPECT_EQ(life_.load(firmware_), Status::kMalformed);
  EXPECT_EQ(life_.state(), State::kOffline);
  driver_.fail_load = Status::kOk;
  ASSERT_EQ(life_.load(firmware_), Status::kOk);
  driver_.fail_start = Status::kIoError;
  EXPECT_EQ(life_.start(), Status::kIoError);
  EXPECT_EQ(life_.state(), State::kLoaded);
  EXPECT_EQ(seen_, std::vector<std::string>{"offline>loaded"});
}

TEST_F(LifecycleTest, AttachAndDetach) {
  ASSERT_EQ(life_.attach(), Status::kOk);
  EXPECT_EQ(life_.state(), State::kAttached);
  ASSERT_EQ(life_.detach(), Status::kOk);
  EXPECT_EQ(life_.state(), State::kDetached);
  ASSERT_EQ(life_.attach(), Status::kOk) << "a detached remote can be attached again";
  ASSERT_EQ(life_.stop(), Status::kOk);
  EXPECT_EQ(seen_, (std::vector<std::string>{"offline>attached", "attached>detached", "detached>attached",
                                             "attached>stopped"}));
  // A detached remote can be stopped, and its death is a crash that recovery leaves alone.
  {
    FakeDriver d;
    Lifecycle l(d);
    l.set_recovery(true);
    ASSERT_EQ(l.attach(), Status::kOk);
    ASSERT_EQ(l.detach(), Status::kOk);
    d.calls.clear();
    EXPECT_EQ(l.report_crash(Status::kClosed), Status::kClosed);
    EXPECT_EQ(l.state(), State::kCrashed);
    EXPECT_TRUE(d.calls.empty()) << "no recovery for a remote we had let go of";
    FakeDriver d2;
    Lifecycle l2(d2);
    ASSERT_EQ(l2.attach(), Status::kOk);
    ASSERT_EQ(l2.detach(), Status::kOk);
    ASSERT_EQ(l2.stop(), Status::kOk);
    EXPECT_EQ(l2.state(), State::kStopped);
  }
  FakeDriver plain;
  plain.can_attach = false;
  Lifecycle other(plain);
  EXPECT_EQ(other.attach(), Status::kNotSupported);
  EXPECT_EQ(other.state(), State::kOffline);
}

TEST_F(LifecycleTest, CrashWithoutRecoveryStaysCrashed) {
  ASSERT_EQ(life_.load(firmware_), Status::kOk);
  ASSERT_EQ(life_.start(), Status::kOk);
  EXPECT_EQ(life_.report_crash(Status::kClosed), Status::kClosed);
  EXPECT_EQ(life_.state(), State::kCrashed);
  EXPECT_EQ(causes_.back(), Status::kClosed);
  ASSERT_EQ(life_.load(firmware_), Status::kOk) << "a crashed remote can be loaded again by hand";
}

TEST_F(LifecycleTest, RecoveryReloadsAndRestartsUpToTheLimit) {
  life_.set_recovery(true, 2);
  ASSERT_EQ(life_.load(firmware_), Status::kOk);
  ASSERT_EQ(life_.start(), Status::kOk);
  driver_.calls.clear();
  seen_.clear();
  EXPECT_EQ(life_.report_crash(Status::kClosed), Status::kOk);
  EXPECT_EQ(life_.state(), State::kRunning);
  EXPECT_EQ(seen_, (std::vector<std::string>{"running>crashed", "crashed>loaded", "loaded>running"}));
  EXPECT_EQ(driver_.calls, (std::vector<std::string>{"stop", "load:64", "start"}));
  EXPECT_EQ(life_.report_crash(Status::kClosed), Status::kOk);
  EXPECT_EQ(life_.recoveries(), 2U);
  EXPECT_EQ(life_.report_crash(Status::kBroken), Status::kBroken) << "out of attempts";
  EXPECT_EQ(life_.state(), State::kCrashed);
  life_.reset_recoveries();
  ASSERT_EQ(life_.load(firmware_), Status::kOk);
  ASSERT_EQ(life_.start(), Status::kOk);
  EXPECT_EQ(life_.report_crash(Status::kClosed), Status::kOk) << "attempts available again";
}

TEST_F(LifecycleTest, FailedRecoveryIsReported) {
  life_.set_recovery(true);
  ASSERT_EQ(life_.load(firmware_), Status::kOk);
  ASSERT_EQ(life_.start(), Status::kOk);
  driver_.fail_load = Status::kIoError;
  EXPECT_EQ(life_.report_crash(Status::kClosed), Status::kIoError);
  EXPECT_EQ(life_.state(), State::kCrashed);
  driver_.fail_load = Status::kOk;
  driver_.fail_start = Status::kTimeout;
  ASSERT_EQ(life_.load(firmware_), Status::kOk);
  driver_.fail_start = Status::kOk;
  ASSERT_EQ(life_.start(), Status::kOk);
  driver_.fail_start = Status::kTimeout;
  EXPECT_EQ(life_.report_crash(Status::kClosed), Status::kTimeout);
  EXPECT_EQ(life_.state(), State::kLoaded) << "reloaded but not restarted";
}

TEST(LifecycleNames, MatchTheKernelsWhereTheyExist) {
  EXPECT_STREQ(to_string(State::kOffline), "offline");
  EXPECT_STREQ(to_string(State::kRunning), "running");
  EXPECT_STREQ(to_string(State::kCrashed), "crashed");
  EXPECT_STREQ(to_string(State::kAttached), "attached");
  EXPECT_STREQ(to_string(State::kDetached), "detached");
  EXPECT_STREQ(to_string(State::kLoaded), "loaded");
  EXPECT_STREQ(to_string(State::kStopped), "stopped");
}

}  // namespace
}  // namespace amp::rproc
