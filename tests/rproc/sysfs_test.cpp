// SPDX-License-Identifier: BSD-3-Clause
// The kernel-remoteproc driver against a fake /sys/class/remoteproc tree and a fake firmware directory.
#include "amp/rproc/linux/sysfs.hpp"

#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

namespace amp::rproc {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
void put(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << s;
}

class SysfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ =
        fs::path(::testing::TempDir()) / ("amp-rproc-" + std::to_string(getpid()) + "-" +
                                          ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    roots_.sys = root_ / "sys";
    roots_.firmware_dir = root_ / "lib" / "firmware";
    fs::create_directories(roots_.firmware_dir);
    add("remoteproc0", "r5f_0", "offline");
    add("remoteproc1", "m4", "running");
    add("remoteproc10", "dsp", "detached");
  }
  void TearDown() override { fs::remove_all(root_); }
  void add(const std::string& node, const std::string& name, const std::string& state) {
    const auto d = roots_.sys / "class" / "remoteproc" / node;
    put(d / "name", name + "\n");
    put(d / "state", state + "\n");
    put(d / "firmware", "rproc-" + name + "-fw\n");
    put(d / "recovery", "enabled\n");
  }
  fs::path node(const std::string& n) { return roots_.sys / "class" / "remoteproc" / n; }
  fs::path root_;
  SysfsRoots roots_;
};

TEST_F(SysfsTest, FindsByNodeOrByNameInNumericOrder) {
  EXPECT_EQ(SysfsRemoteproc::list(roots_),
            (std::vector<std::string>{"remoteproc0", "remoteproc1", "remoteproc10"}));
  auto by_node = SysfsRemoteproc::open("remoteproc1", roots_);
  ASSERT_TRUE(by_node) << by_node.error().message;
  EXPECT_EQ(*by_node->name(), "m4");
  auto by_name = SysfsRemoteproc::open("dsp", roots_);
  ASSERT_TRUE(by_name);
  EXPECT_EQ(by_name->node(), "remoteproc10");
  EXPECT_EQ(*by_name->state(), State::kDetached);
  EXPECT_EQ(*by_name->firmware(), "rproc-dsp-fw");
}

TEST_F(SysfsTest, ClearErrorsForWhatIsMissing) {
  auto none = SysfsRemoteproc::open("gpu", roots_);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().status, Status::kNotFound);
  EXPECT_NE(none.error().message.find("remote processor 'gpu' not found"), std::string::npos);
  EXPECT_NE(none.error().message.find("remoteproc0, remoteproc1, remoteproc10"), std::string::npos);
  SysfsRoots empty;
  empty.sys = root_ / "nowhere";
  auto no_class = SysfsRemoteproc::open("remoteproc0", empty);
  ASSERT_FALSE(no_class);
  EXPECT_NE(no_class.error().message.find("is a remoteproc driver loaded?"), std::string::npos);
}

TEST_F(SysfsTest, StateNames) {
  EXPECT_EQ(*parse_kernel_state("offline"), State::kOffline);
  EXPECT_EQ(*parse_kernel_state("running"), State::kRunning);
  EXPECT_EQ(*parse_kernel_state("crashed"), State::kCrashed);
  EXPECT_EQ(*parse_kernel_state("attached"), State::kAttached);
  EXPECT_EQ(parse_kernel_state("suspended").error().status, Status::kNotSupported);
  EXPECT_EQ(parse_kernel_state("").error().status, Status::kNotSupported);
  put(node("remoteproc0") / "state", "deleted\n");
  auto r = SysfsRemoteproc::open("remoteproc0", roots_);
  EXPECT_EQ(r->state().error().status, Status::kNotSupported);
}

TEST_F(SysfsTest, WritesTheKernelsCommands) {
  auto r = SysfsRemoteproc::open("r5f_0", roots_);
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->set_firmware("app.elf"));
  EXPECT_EQ(slurp(node("remoteproc0") / "firmware"), "app.elf");
  ASSERT_TRUE(r->start());
  EXPECT_EQ(slurp(node("remoteproc0") / "state"), "start");
  ASSERT_TRUE(r->stop());
  EXPECT_EQ(slurp(node("remoteproc0") / "state"), "stop");
  ASSERT_TRUE(r->detach());
  EXPECT_EQ(slurp(node("remoteproc0") / "state"), "detach");
  ASSERT_TRUE(r->set_recovery(false));
  EXPECT_EQ(slurp(node("remoteproc0") / "recovery"), "disabled");
  EXPECT_EQ(r->set_firmware("").error().status, Status::kInvalidArgument);
  EXPECT_EQ(r->set_firmware("a\nb").error().status, Status::kInvalidArgument);
}

TEST_F(SysfsTest, InstallsFirmwareAtomicallyAndNamesIt) {
  auto r = SysfsRemoteproc::open("remoteproc0", roots_);
  const std::string image =
      "\x7f"
      "ELF and the rest";
  ASSERT_TRUE(r->install_firmware("amp.elf", std::as_bytes(std::span(image))));
  EXPECT_EQ(slurp(roots_.firmware_dir / "amp.elf"), image);
  EXPECT_FALSE(fs::exists(roots_.firmware_dir / "amp.elf.part"));
  EXPECT_EQ(slurp(node("remoteproc0") / "firmware"), "amp.elf");
  EXPECT_EQ(r->install_firmware("../escape.elf", std::as_bytes(std::span(image))).error().status,
            Status::kInvalidArgument);
  SysfsRoots bad = roots_;
  bad.firmware_dir = root_ / "no-such-dir";
  auto r2 = SysfsRemoteproc::open("remoteproc0", bad);
  auto err = r2->install_firmware("amp.elf", std::as_bytes(std::span(image)));
  ASSERT_FALSE(err);
  EXPECT_NE(err.error().message.find("no-such-dir"), std::string::npos);
}

TEST_F(SysfsTest, DriverRunsTheLifecycle) {
  SysfsDriver driver(*SysfsRemoteproc::open("remoteproc0", roots_));
  Lifecycle life(driver);
  const std::string image = "firmware bytes";
  ASSERT_EQ(life.load(std::as_bytes(std::span(image))), Status::kOk);
  EXPECT_EQ(slurp(roots_.firmware_dir / "amp-remoteproc0.elf"), image);
  EXPECT_EQ(slurp(node("remoteproc0") / "firmware"), "amp-remoteproc0.elf");
  ASSERT_EQ(life.start(), Status::kOk);
  EXPECT_EQ(slurp(node("remoteproc0") / "state"), "start");
  ASSERT_EQ(life.stop(), Status::kOk);
  EXPECT_EQ(slurp(node("remoteproc0") / "state"), "stop");
}

TEST_F(SysfsTest, AttachFollowsTheKernelsState) {
  SysfsDriver running(*SysfsRemoteproc::open("m4", roots_));
  EXPECT_EQ(running.attach(), Status::kOk);
  SysfsDriver detached(*SysfsRemoteproc::open("dsp", roots_));
  EXPECT_EQ(detached.attach(), Status::kOk);
  EXPECT_EQ(slurp(node("remoteproc10") / "state"), "start") << "a detached remote is re-attached by start";
  SysfsDriver offline(*SysfsRemoteproc::open("r5f_0", roots_));
  EXPECT_EQ(offline.attach(), Status::kBusy);
  EXPECT_NE(offline.last_error().find("offline"), std::string::npos);
}

TEST_F(SysfsTest, DriverReportsKernelRefusals) {
  auto r = SysfsRemoteproc::open("remoteproc0", roots_);
  fs::remove(node("remoteproc0") / "state");  // the attribute is gone: a write fails
  SysfsDriver driver(*r);
  EXPECT_EQ(driver.start(), Status::kNotFound);
  EXPECT_NE(driver.last_error().find("state"), std::string::npos);
}

}  // namespace
}  // namespace amp::rproc
