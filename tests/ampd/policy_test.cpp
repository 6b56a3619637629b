// SPDX-License-Identifier: BSD-3-Clause
// ampd's access rules: ampd's own user and root may do everything, anyone else what a rule grants.
#include "policy.hpp"

#include <gtest/gtest.h>

namespace amp::ampd {
namespace {

constexpr uid_t kOwner = 1000;

Policy policy() {
  Rule a;
  a.uid = 2000;
  a.remote = "r5";
  a.services = {"amp-echo", "rpmsg-*"};
  a.addresses = {{0x400, 0x4ff}};
  a.create = {"client-*"};
  Rule b;
  b.gid = 300;
  b.services = {"public"};
  return Policy({a, b}, kOwner);
}

TEST(AmpdPolicy, TheOwnerAndRootMayDoEverything) {
  const Policy p = policy();
  for (uid_t uid : {uid_t{0}, kOwner}) {
    const Credentials c{1, uid, 5};
    EXPECT_TRUE(p.may_open_service(c, "any", "anything"));
    EXPECT_TRUE(p.may_open_address(c, "any", 0x1234));
    EXPECT_TRUE(p.may_create(c, "any", "x"));
    EXPECT_TRUE(p.may_see(c, "any"));
  }
}

TEST(AmpdPolicy, OthersGetWhatTheirRulesGrantOnTheRemotesTheyName) {
  const Policy p = policy();
  const Credentials user{1, 2000, 5};
  EXPECT_TRUE(p.may_open_service(user, "r5", "amp-echo"));
  EXPECT_TRUE(p.may_open_service(user, "r5", "rpmsg-tty"));
  EXPECT_FALSE(p.may_open_service(user, "r5", "amp-echo2"));
  EXPECT_FALSE(p.may_open_service(user, "m4", "amp-echo")) << "the rule names r5 only";
  EXPECT_TRUE(p.may_open_address(user, "r5", 0x400));
  EXPECT_TRUE(p.may_open_address(user, "r5", 0x4ff));
  EXPECT_FALSE(p.may_open_address(user, "r5", 0x500));
  EXPECT_FALSE(p.may_open_address(user, "r5", 0x3ff));
  EXPECT_TRUE(p.may_create(user, "r5", "client-1"));
  EXPECT_FALSE(p.may_create(user, "r5", "amp-echo"));
  EXPECT_TRUE(p.may_see(user, "r5"));
  EXPECT_FALSE(p.may_see(user, "m4"));

  const Credentials group{1, 3000, 300};
  EXPECT_TRUE(p.may_open_service(group, "m4", "public"));
  EXPECT_FALSE(p.may_open_service(group, "m4", "amp-echo"));
  EXPECT_FALSE(p.may_open_address(group, "m4", 0x400));
  EXPECT_TRUE(p.may_see(group, "m4"));

  const Credentials stranger{1, 4000, 400};
  EXPECT_FALSE(p.may_open_service(stranger, "r5", "amp-echo"));
  EXPECT_FALSE(p.may_create(stranger, "r5", "client-1"));
  EXPECT_FALSE(p.may_see(stranger, "r5"));
}

}  // namespace
}  // namespace amp::ampd
