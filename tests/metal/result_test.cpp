// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/result.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace amp {
namespace {

Result<int> half(int v) {
  if (v % 2 != 0) return fail(Status::kInvalidArgument);
  return v / 2;
}

Status chain(int v, int& out) {
  auto h = half(v);
  if (!h) return h.error();
  out = *h;
  return Status::kOk;
}

Status early_return(Status inner, bool& reached_end) {
  AMP_RETURN_IF_ERROR(inner);
  reached_end = true;
  return Status::kOk;
}

TEST(Result, HoldsValueOrError) {
  auto a = half(8);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(*a, 4);
  auto b = half(7);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error(), Status::kInvalidArgument);
  EXPECT_EQ(b.value_or(-1), -1);
}

TEST(Result, PropagatesThroughStatus) {
  int out = 0;
  EXPECT_EQ(chain(10, out), Status::kOk);
  EXPECT_EQ(out, 5);
  EXPECT_EQ(chain(3, out), Status::kInvalidArgument);
  EXPECT_EQ(out, 5);
}

TEST(Result, ReturnIfErrorStopsEarly) {
  bool reached = false;
  EXPECT_EQ(early_return(Status::kTimeout, reached), Status::kTimeout);
  EXPECT_FALSE(reached);
  EXPECT_EQ(early_return(Status::kOk, reached), Status::kOk);
  EXPECT_TRUE(reached);
}

TEST(Result, MoveOnlyAndNonTrivialValues) {
  Expected<std::unique_ptr<int>> p = std::make_unique<int>(7);
  ASSERT_TRUE(p);
  std::unique_ptr<int> owned = std::move(p).value();
  EXPECT_EQ(*owned, 7);

  Expected<std::string, std::string> s = unexpected(std::string("boom"));
  Expected<std::string, std::string> copy = s;
  ASSERT_FALSE(copy);
  EXPECT_EQ(copy.error(), "boom");
  copy = Expected<std::string, std::string>(std::string("fine"));
  ASSERT_TRUE(copy);
  EXPECT_EQ(*copy, "fine");
}

TEST(Result, VoidSpecialisation) {
  Expected<void> good;
  EXPECT_TRUE(good);
  Expected<void> bad = fail(Status::kClosed);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), Status::kClosed);
}

TEST(Result, EveryStatusHasAName) {
  for (int i = 0; i <= static_cast<int>(Status::kInternal); ++i) {
    const std::string name = to_string(static_cast<Status>(i));
    EXPECT_FALSE(name.empty());
    EXPECT_NE(name, "unknown status") << i;
  }
  EXPECT_STREQ(to_string(Status::kOutOfRange), "out of range");
}

}  // namespace
}  // namespace amp
