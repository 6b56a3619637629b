// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/log.hpp"

#include <gtest/gtest.h>

#include <array>
#include <climits>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace amp::metal {
namespace {

// A macro rather than a function so that the compiler checks each format string against its arguments.
#define fmt(...)                                                                   \
  ([&] {                                                                           \
    std::array<char, 128> buf{};                                                   \
    const std::size_t n = format(buf, __VA_ARGS__);                                \
    EXPECT_EQ(n, std::string(buf.data()).size()) << "no truncation expected here"; \
    return std::string(buf.data());                                                \
  }())

TEST(Format, Integers) {
  EXPECT_EQ(fmt("%d %i %u", -42, 7, 42U), "-42 7 42");
  EXPECT_EQ(fmt("%x %X %o", 0xbeefU, 0xbeefU, 8U), "beef BEEF 10");
  EXPECT_EQ(fmt("%lld %llu", LLONG_MIN, ULLONG_MAX), "-9223372036854775808 18446744073709551615");
  EXPECT_EQ(fmt("%ld %lu", -5L, 5UL), "-5 5");
  EXPECT_EQ(fmt("%zu %td", std::size_t{123}, std::ptrdiff_t{7}), "123 7");
  EXPECT_EQ(fmt("%hhu %hd", static_cast<unsigned char>(200), static_cast<short>(-1234)), "200 -1234");
  EXPECT_EQ(fmt("%d", INT_MIN), "-2147483648");
}

TEST(Format, SixtyFourBitValuesAroundTheThirtyTwoBitBoundary) {
  // Values past 32 bits take the 16-bits-at-a-time division (no 64-bit division on 32-bit cores).
  EXPECT_EQ(fmt("%llu %llu", 4294967295ULL, 4294967296ULL), "4294967295 4294967296");
  EXPECT_EQ(fmt("%llx %llX", 0x123456789abcdef0ULL, 0xfedcba9876543210ULL),
            "123456789abcdef0 FEDCBA9876543210");
  EXPECT_EQ(fmt("%llo", ULLONG_MAX), "1777777777777777777777");
  EXPECT_EQ(fmt("%llu", 10000000000000000000ULL), "10000000000000000000");
  EXPECT_EQ(fmt("%lld", -4294967296LL), "-4294967296");
}

TEST(Format, WidthPrecisionFlags) {
  EXPECT_EQ(fmt("[%5d]", 42), "[   42]");
  EXPECT_EQ(fmt("[%-5d]", 42), "[42   ]");
  EXPECT_EQ(fmt("[%05d]", -42), "[-0042]");
  EXPECT_EQ(fmt("[%08x]", 0xabcU), "[00000abc]");
  EXPECT_EQ(fmt("[%*d]", 4, 1), "[   1]");
  EXPECT_EQ(fmt("[%.3s]", "abcdef"), "[abc]");
  EXPECT_EQ(fmt("[%.*s]", 2, "abcdef"), "[ab]");
  EXPECT_EQ(fmt("[%-4s|%4s]", "a", "b"), "[a   |   b]");
}

TEST(Format, StringsCharsPointersPercent) {
  EXPECT_EQ(fmt("%s=%c", "key", 'v'), "key=v");
  const char* volatile null_string = nullptr;  // volatile: hide the null from the compiler's format check
  EXPECT_EQ(fmt("%s", null_string), "(null)");
  EXPECT_EQ(fmt("100%%"), "100%");
  EXPECT_EQ(fmt("%p", reinterpret_cast<void*>(0x1000)), "0x1000");
}

TEST(Format, TruncatesAndReportsFullLength) {
  std::array<char, 8> buf{};
  EXPECT_EQ(format(buf, "%s", "0123456789"), 10U);
  EXPECT_STREQ(buf.data(), "0123456");
  std::array<char, 1> one{'x'};
  EXPECT_EQ(format(one, "abc"), 3U);
  EXPECT_EQ(one[0], '\0');
  EXPECT_EQ(format(std::span<char>{}, "abc"), 3U);
}

class CapturingSink final : public LogSink {
 public:
  void write(LogLevel level, std::string_view message) noexcept override {
    std::lock_guard lock(mutex_);
    lines.emplace_back(level, std::string(message));
  }
  std::mutex mutex_;
  std::vector<std::pair<LogLevel, std::string>> lines;
};

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_level_ = log_level();
    set_log_sink(&sink_);
  }
  void TearDown() override {
    set_log_sink(nullptr);
    set_log_level(saved_level_);
  }
  CapturingSink sink_;
  LogLevel saved_level_{};
};

TEST_F(LogTest, LevelsFilterMessages) {
  set_log_level(LogLevel::kInfo);
  log(LogLevel::kDebug, "hidden %d", 1);
  log(LogLevel::kInfo, "shown %d", 2);
  log(LogLevel::kError, "shown %s", "too");
  ASSERT_EQ(sink_.lines.size(), 2U);
  EXPECT_EQ(sink_.lines[0], std::make_pair(LogLevel::kInfo, std::string("shown 2")));
  EXPECT_EQ(sink_.lines[1], std::make_pair(LogLevel::kError, std::string("shown too")));
  set_log_level(LogLevel::kOff);
  log(LogLevel::kError, "nothing");
  EXPECT_EQ(sink_.lines.size(), 2U);
}

TEST_F(LogTest, MacroDoesNotEvaluateArgumentsWhenDisabled) {
  set_log_level(LogLevel::kError);
  int evaluated = 0;
  AMP_LOG_DEBUG("x %d", ++evaluated);
  EXPECT_EQ(evaluated, 0);
  AMP_LOG_ERROR("x %d", ++evaluated);
  EXPECT_EQ(evaluated, 1);
  ASSERT_EQ(sink_.lines.size(), 1U);
  EXPECT_EQ(sink_.lines[0].second, "x 1");
}

TEST_F(LogTest, LongMessagesAreCutVisibly) {
  set_log_level(LogLevel::kTrace);
  const std::string long_text(1000, 'a');
  log(LogLevel::kWarning, "%s", long_text.c_str());
  ASSERT_EQ(sink_.lines.size(), 1U);
  EXPECT_EQ(sink_.lines[0].second.size(), kMaxLogMessage);
  EXPECT_EQ(sink_.lines[0].second.substr(kMaxLogMessage - 3), "...");
}

TEST_F(LogTest, FunctionSinkAndDefaultRestore) {
  set_log_level(LogLevel::kTrace);
  std::vector<std::string> got;
  FunctionLogSink fsink([&](LogLevel level, std::string_view m) {
    got.push_back(std::string(to_string(level)) + ":" + std::string(m));
  });
  set_log_sink(&fsink);
  log(LogLevel::kWarning, "w");
  set_log_sink(&sink_);
  log(LogLevel::kWarning, "x");
  ASSERT_EQ(got.size(), 1U);
  EXPECT_EQ(got[0], "warning:w");
  EXPECT_EQ(sink_.lines.size(), 1U);
}

TEST(LogLevelNames, AllNamed) {
  EXPECT_STREQ(to_string(LogLevel::kTrace), "trace");
  EXPECT_STREQ(to_string(LogLevel::kDebug), "debug");
  EXPECT_STREQ(to_string(LogLevel::kInfo), "info");
  EXPECT_STREQ(to_string(LogLevel::kWarning), "warning");
  EXPECT_STREQ(to_string(LogLevel::kError), "error");
  EXPECT_STREQ(to_string(LogLevel::kOff), "off");
}

}  // namespace
}  // namespace amp::metal
