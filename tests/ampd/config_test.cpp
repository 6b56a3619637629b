// SPDX-License-Identifier: BSD-3-Clause
// ampd's configuration file: what it accepts, and the error (file, line, key) for what it does not.
#include "config.hpp"

#include <gtest/gtest.h>

#include <string>

namespace amp::ampd {
namespace {

std::string error_of(std::string_view text) {
  auto c = parse_config(text, "test.toml");
  EXPECT_FALSE(c) << "accepted: " << text;
  return c ? std::string() : c.error().message;
}

TEST(AmpdConfig, AFullConfigurationIsRead) {
  auto c = parse_config(R"(
[ampd]
socket = "@ampd-test"
socket_mode = 0o660
socket_group = 100

[[remote]]
name = "r5"
firmware = "/usr/lib/amp/echo"
args = ["--service", "amp-echo"]
notify = "poll"
recovery = false

[[remote]]
name = "m4"
driver = "process"
firmware = "/usr/lib/amp/other"

[[allow]]
uid = 1001
remote = "r5"
services = ["amp-echo", "rpmsg-*"]
addresses = [[0x400, 0x4ff], [53, 53]]
create = ["client-*"]

[[allow]]
gid = 100
)",
                        "test.toml");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->socket, "@ampd-test");
  EXPECT_EQ(c->socket_mode, 0660U);
  EXPECT_EQ(c->socket_group, 100U);
  ASSERT_EQ(c->remotes.size(), 2U);
  EXPECT_EQ(c->remotes[0].name, "r5");
  EXPECT_EQ(c->remotes[0].firmware, "/usr/lib/amp/echo");
  EXPECT_EQ(c->remotes[0].args, (std::vector<std::string>{"--service", "amp-echo"}));
  EXPECT_EQ(c->remotes[0].notify, rpmsg::NotifyMode::kPoll);
  EXPECT_FALSE(c->remotes[0].recovery);
  EXPECT_EQ(c->remotes[1].notify, rpmsg::NotifyMode::kEventFd);
  EXPECT_TRUE(c->remotes[1].recovery);
  ASSERT_EQ(c->rules.size(), 2U);
  EXPECT_EQ(c->rules[0].uid, 1001U);
  EXPECT_FALSE(c->rules[0].gid);
  EXPECT_EQ(c->rules[0].remote, "r5");
  EXPECT_EQ(c->rules[0].services, (std::vector<std::string>{"amp-echo", "rpmsg-*"}));
  ASSERT_EQ(c->rules[0].addresses.size(), 2U);
  EXPECT_EQ(c->rules[0].addresses[0].first, 0x400U);
  EXPECT_EQ(c->rules[0].addresses[0].last, 0x4ffU);
  EXPECT_EQ(c->rules[0].create, std::vector<std::string>{"client-*"});
  EXPECT_EQ(c->rules[1].gid, 100U);
  EXPECT_TRUE(c->rules[1].services.empty());
}

TEST(AmpdConfig, AnEmptyFileIsADaemonWithNothingToServe) {
  auto c = parse_config("", "empty.toml");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->remotes.empty());
  EXPECT_TRUE(c->socket.empty());
  EXPECT_EQ(c->socket_mode, 0600U);
}

TEST(AmpdConfig, EveryMistakeNamesItsLineAndKey) {
  EXPECT_EQ(error_of("[ampd]\nsockt = \"/x\"\n"), "test.toml:2:1: unknown key 'sockt' in [ampd]");
  EXPECT_EQ(error_of("remotes = 1\n"), "test.toml:1:1: unknown key 'remotes' in the file");
  EXPECT_EQ(error_of("[ampd]\nsocket_mode = 0o1777\n"),
            "test.toml:2:15: socket_mode in [ampd] is 1023, not in 0..511");
  EXPECT_EQ(error_of("[ampd]\nsocket = 3\n"), "test.toml:2:10: socket in [ampd] must be a string");
  EXPECT_EQ(error_of("[[remote]]\nname = \"a\"\n"),
            "test.toml:1:1: remote 'a' needs a firmware (the program to run)");
  EXPECT_EQ(error_of("[[remote]]\nfirmware = \"/f\"\n"),
            "test.toml:1:1: [[remote]] 1 needs a name of 1 to 31 bytes");
  EXPECT_EQ(error_of("[[remote]]\nname = \"a\"\nfirmware = \"/f\"\ndriver = \"sysfs\"\n"),
            "test.toml:4:10: remote 'a': driver 'sysfs' is not one ampd can run yet (it can: process)");
  EXPECT_EQ(error_of("[[remote]]\nname = \"a\"\nfirmware = \"/f\"\nnotify = \"irq\"\n"),
            "test.toml:4:10: remote 'a': notify is 'irq', not eventfd, socket or poll");
  EXPECT_EQ(
      error_of("[[remote]]\nname = \"a\"\nfirmware = \"/f\"\n[[remote]]\nname = \"a\"\nfirmware = \"/g\"\n"),
      "test.toml:4:1: two remotes are named 'a'");
  EXPECT_EQ(error_of("[[remote]]\nname = \"a\"\nfirmware = \"/f\"\nargs = [1]\n"),
            "test.toml:4:9: args in [[remote]] 1 must be an array of strings");
  EXPECT_EQ(error_of("[[allow]]\nservices = [\"x\"]\n"), "test.toml:1:1: [[allow]] 1 needs a uid or a gid");
  EXPECT_EQ(error_of("[[allow]]\nuid = -1\n"),
            "test.toml:2:7: uid in [[allow]] 1 is -1, not in 0..4294967294");
  EXPECT_EQ(error_of("[[allow]]\nuid = 5\nremote = \"nope\"\n"),
            "test.toml:1:1: [[allow]] 1 names remote 'nope', which is not configured");
  EXPECT_EQ(error_of("[[allow]]\nuid = 5\naddresses = [[9, 3]]\n"),
            "test.toml:3:14: [[allow]] 1: address range [9, 3] is not first <= last < 0xffffffff");
  EXPECT_EQ(error_of("[[allow]]\nuid = 5\naddresses = [7]\n"),
            "test.toml:3:14: addresses in [[allow]] 1 must be an array of [first, last] pairs");
  EXPECT_EQ(error_of("remote = 3\n"), "test.toml:1:10: remote must be an array of tables ([[remote]])");
  const std::string syntax = error_of("[ampd\n");
  EXPECT_EQ(syntax.rfind("test.toml:1:", 0), 0U) << syntax;
}

}  // namespace
}  // namespace amp::ampd
