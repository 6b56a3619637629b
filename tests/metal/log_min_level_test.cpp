// SPDX-License-Identifier: BSD-3-Clause
// AMP_LOG_MIN_LEVEL: the messages below it are not compiled in (this file compiles errors only), whatever
// the run-time level says.
#define AMP_LOG_MIN_LEVEL 4  // LogLevel::kError

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "amp/metal/log.hpp"

namespace amp::metal {
namespace {

static_assert(static_cast<int>(LogLevel::kError) == AMP_LOG_MIN_LEVEL);

TEST(LogMinLevel, MessagesBelowItAreNotCompiledInAndTheirArgumentsNotEvaluated) {
  std::vector<std::string> got;
  FunctionLogSink sink([&](LogLevel, std::string_view m) { got.emplace_back(m); });
  const LogLevel saved = log_level();
  set_log_sink(&sink);
  set_log_level(LogLevel::kTrace);  // everything enabled at run time
  int evaluated = 0;
  AMP_LOG_DEBUG("debug %d", ++evaluated);
  AMP_LOG_INFO("info %d", ++evaluated);
  AMP_LOG_WARNING("warning %d", ++evaluated);
  EXPECT_EQ(evaluated, 0);
  AMP_LOG_ERROR("error %d", ++evaluated);
  EXPECT_EQ(evaluated, 1);
  log(LogLevel::kInfo, "a direct call is not a macro: %d", 2);  // the floor is the macros'
  set_log_sink(nullptr);
  set_log_level(saved);
  ASSERT_EQ(got.size(), 2U);
  EXPECT_EQ(got[0], "error 1");
  EXPECT_EQ(got[1], "a direct call is not a macro: 2");
}

}  // namespace
}  // namespace amp::metal
