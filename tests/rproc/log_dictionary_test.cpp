// SPDX-License-Identifier: BSD-3-Clause
// Dictionary logging end to end on this PC: this file's AMP_LOG lines are recorded (AMP_LOG_DICTIONARY=1),
// their formats land in this program's amp_log_fmt section, and LogDictionary renders the records from it.
// What the rendering must give is what metal::format() gives for the same format and arguments.
#define AMP_LOG_DICTIONARY 1

#include "amp/rproc/linux/log_dictionary.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "amp/metal/log.hpp"

extern "C" const char __start_amp_log_fmt[];  // NOLINT: the linker's names for the section's bounds
extern "C" const char __stop_amp_log_fmt[];   // NOLINT

namespace amp::rproc {
namespace {

using metal::LogLevel;

/// This program's dictionary, as a host would take it from an image.
LogDictionary own_dictionary() {
  return LogDictionary(std::vector<char>(__start_amp_log_fmt, __stop_amp_log_fmt),
                       reinterpret_cast<std::uintptr_t>(__start_amp_log_fmt), sizeof(void*) * 8);
}

/// A 32-bit image's dictionary of `bytes` at `base`.
LogDictionary dictionary_of(std::string_view bytes, std::uint64_t base = 0x100) {
  return LogDictionary(std::vector<char>(bytes.begin(), bytes.end()), base, 32);
}

/// Records `fmt` with `args` (AMP_LOG_DICT_ENCODE) and renders the record; also formats it with
/// metal::format(); both must agree.
#define EXPECT_ROUND_TRIP(fmt, ...)                                                    \
  do {                                                                                 \
    char record[metal::kMaxLogMessage + 1];                                            \
    const std::size_t n = AMP_LOG_DICT_ENCODE(record, fmt __VA_OPT__(, ) __VA_ARGS__); \
    char text[512];                                                                    \
    metal::format(text, fmt __VA_OPT__(, ) __VA_ARGS__);                               \
    const auto got = own_dictionary().render(std::string_view(record, n));             \
    ASSERT_TRUE(got) << record;                                                        \
    EXPECT_EQ(*got, text) << "record: " << record;                                     \
  } while (0)

TEST(LogDictionary, EveryConversionRendersAsTheFormatterWouldHaveFormattedIt) {
  EXPECT_ROUND_TRIP("no arguments at all");
  EXPECT_ROUND_TRIP("%d %d %i", 0, -1, 2147483647);
  EXPECT_ROUND_TRIP("%d", -2147483647 - 1);
  EXPECT_ROUND_TRIP("%u %x %X %o", 4294967295U, 0xdeadbeefU, 0xabcU, 8U);
  EXPECT_ROUND_TRIP("[%08x] [%-6d] [%6d] [%06d]", 0x1fU, -12, -12, -12);
  EXPECT_ROUND_TRIP("%lld %llu %llx", -9223372036854775807LL - 1, 18446744073709551615ULL, 0x123456789abcULL);
  EXPECT_ROUND_TRIP("%ld %lu %zu", -5L, 123456789UL, std::size_t{42});
  // What %hh and %h show of a value: its low 8 or 16 bits (the values are of their types, as -Wformat wants).
  EXPECT_ROUND_TRIP("%hhu %hd %hu %hhd", static_cast<unsigned char>(200), static_cast<short>(-4464),
                    static_cast<unsigned short>(65000), static_cast<signed char>(-5));
  EXPECT_ROUND_TRIP("%c%c%c", 'a', ' ', '~');
  EXPECT_ROUND_TRIP("'%s' '%s'", "plain", "with space, back\\slash and\ttab");
  EXPECT_ROUND_TRIP("[%5s] [%-5s] [%.2s]", "ab", "ab", "abcdef");
  const char* volatile null_string = nullptr;  // volatile: GCC would refuse a null it can see
  EXPECT_ROUND_TRIP("%s", null_string);
  EXPECT_ROUND_TRIP("%p", reinterpret_cast<void*>(0x1234));
  EXPECT_ROUND_TRIP("100%% of %u", 7U);
  EXPECT_ROUND_TRIP("%s: %u bytes at 0x%llx (%s)", "rpmsg", 496U, 0x40100000ULL, "ok");
}

TEST(LogDictionary, ABoundedStringTakesOnlyItsPrecisionFromAViewThatHasNoNul) {
  const char bytes[] = {'n', 'a', 'm', 'e', 'X', 'X'};  // no NUL anywhere: %.*s must stop at 4
  const std::string_view name(bytes, 4);
  EXPECT_ROUND_TRIP("'%.*s' at %u", static_cast<int>(name.size()), name.data(), 0x400U);
  char record[metal::kMaxLogMessage + 1];
  const std::size_t n = AMP_LOG_DICT_ENCODE(record, "'%.*s'", static_cast<int>(name.size()), name.data());
  EXPECT_EQ(std::string_view(record, n).find('X'), std::string_view::npos) << record;
}

TEST(LogDictionary, AStringOfTheDictionaryTravelsAsItsAddressAndRendersAsItsText) {
  const char* name = AMP_DICT_STRING("a name only the dictionary holds");
  char record[metal::kMaxLogMessage + 1];
  const std::size_t n = AMP_LOG_DICT_ENCODE(record, "[%s] [%.*s] [%s]", name, 6, name, "inline");
  const std::string_view r(record, n);
  EXPECT_EQ(r.find("name"), std::string_view::npos) << r;
  EXPECT_NE(r.find(" *"), std::string_view::npos) << r;
  EXPECT_EQ(own_dictionary().render(r).value_or("none"),
            "[a name only the dictionary holds] [a name] [inline]");
}

// The way log_name(Status) and log_name(Fault) name values in a dictionary-logging core. "eleven char"
// fills its 12 bytes with its NUL; one more character would not compile.
AMP_DICT_NAMES(kTestNames, 12, "zero", "one", "eleven char", "unknown");

TEST(LogDictionary, ANameFromAFixedStrideTableTravelsAsItsAddressAndAValueBeyondGetsTheLastName) {
  EXPECT_EQ(metal::dict::name_at(kTestNames, 1), kTestNames[1]);
  char record[metal::kMaxLogMessage + 1];
  const std::size_t n =
      AMP_LOG_DICT_ENCODE(record, "%s %s %s %s %s", metal::dict::name_at(kTestNames, 0),
                          metal::dict::name_at(kTestNames, 1), metal::dict::name_at(kTestNames, 2),
                          metal::dict::name_at(kTestNames, 3), metal::dict::name_at(kTestNames, 4000000000U));
  const std::string_view r(record, n);
  EXPECT_EQ(r.find("one"), std::string_view::npos) << r;
  EXPECT_EQ(own_dictionary().render(r).value_or("none"), "zero one eleven char unknown unknown");
}

TEST(LogDictionary, ADictionaryStringOutsideTheDictionaryRendersAsUnknown) {
  using namespace std::string_view_literals;
  const LogDictionary d = dictionary_of("%s|%s\0name\0"sv);
  EXPECT_EQ(d.render("@100 *106 *106").value_or("none"), "name|name");
  EXPECT_EQ(d.render("@100 *ff *10b").value_or("none"), "?|?");  // below the base; past the end
  EXPECT_EQ(d.render("@100 *zz *").value_or("none"), "?|?");
}

TEST(LogDictionary, TheRecordCarriesNoTextOfTheFormat) {
  char record[metal::kMaxLogMessage + 1];
  const std::size_t n = AMP_LOG_DICT_ENCODE(record, "a message only the dictionary knows: %u", 5U);
  const std::string_view r(record, n);
  EXPECT_EQ(r.front(), '@');
  EXPECT_EQ(r.find("message"), std::string_view::npos);
  EXPECT_EQ(r.substr(r.size() - 2), " 5");
}

TEST(LogDictionary, AmpLogSendsRecordsToTheSinkWhichRenderAsLines) {
  std::vector<std::string> got;
  metal::FunctionLogSink sink([&](LogLevel, std::string_view m) { got.emplace_back(m); });
  metal::set_log_sink(&sink);
  const LogLevel before = metal::log_level();
  metal::set_log_level(LogLevel::kInfo);
  int evaluated = 0;
  AMP_LOG_INFO("rpmsg: up, %u entries, '%s'", 256U, "amp-echo");
  AMP_LOG_DEBUG("below the level: %d", ++evaluated);  // not recorded, its arguments not evaluated
  AMP_LOG_ERROR("no arguments");
  metal::set_log_sink(nullptr);
  metal::set_log_level(before);
  EXPECT_EQ(evaluated, 0);
  ASSERT_EQ(got.size(), 2U);
  const LogDictionary dict = own_dictionary();
  EXPECT_EQ(dict.render(got[0]).value_or("?"), "rpmsg: up, 256 entries, 'amp-echo'");
  EXPECT_EQ(dict.render(got[1]).value_or("?"), "no arguments");
}

TEST(LogDictionary, ARecordTooLongForTheBufferIsCutAtAnArgumentAndSaysSo) {
  const std::string big(300, 'x');
  char record[metal::kMaxLogMessage + 1];
  const std::size_t n = AMP_LOG_DICT_ENCODE(record, "%u %s %u", 1U, big.c_str(), 2U);
  EXPECT_LE(n, metal::kMaxLogMessage);
  EXPECT_EQ(std::strlen(record), n);
  const std::string_view r(record, n);
  EXPECT_EQ(r.substr(r.size() - 2), " ~") << r;
  EXPECT_EQ(own_dictionary().render(r).value_or("none"), "1 ? ?");
  char tiny[4];  // not even the address fits
  const std::size_t t = AMP_LOG_DICT_ENCODE(tiny, "%u", 1U);
  EXPECT_EQ(std::strlen(tiny), t);
  EXPECT_LE(t, 3U);
}

TEST(LogDictionary, TextLinesGetTheirTimeStampAndRecordRenderedAndTheRestKept) {
  char record[metal::kMaxLogMessage + 1];
  AMP_LOG_DICT_ENCODE(record, "vdev reset after %llu messages", 12ULL);
  const std::string text = std::string("[#3b9aca07] info: ") + record + "\nplain text @ zz\n" + record +
                           "\n[#5] warning: @notarecord\nno newline at the end";
  const std::string got = own_dictionary().render_text(text);
  EXPECT_EQ(got,
            "[    1.000000] info: vdev reset after 12 messages\n"
            "plain text @ zz\n"
            "vdev reset after 12 messages\n"
            "[    0.000000] warning: @notarecord\n"
            "no newline at the end");
  // An empty dictionary (an image that logs text) changes nothing.
  EXPECT_EQ(LogDictionary().render_text(text), text);
}

// --- Records are the remote's text: hostile ones. ---

TEST(LogDictionary, AnAddressOutsideTheDictionaryIsNotARecord) {
  using namespace std::string_view_literals;
  const LogDictionary d = dictionary_of("a %u\0b\0"sv);
  EXPECT_EQ(d.render("@100 7").value_or("none"), "a 7");
  EXPECT_EQ(d.render("@105").value_or("none"), "b");
  EXPECT_FALSE(d.render("@ff"));                 // below the base
  EXPECT_FALSE(d.render("@107"));                // past the end
  EXPECT_FALSE(d.render("@ffffffffffffffff"));   // far past it
  EXPECT_FALSE(d.render("@1ffffffffffffffff"));  // more than 64 bits
  EXPECT_FALSE(d.render("@"));
  EXPECT_FALSE(d.render("@xyz"));
  EXPECT_FALSE(d.render("100"));
}

TEST(LogDictionary, AFormatThatDoesNotEndInsideTheSectionIsNotRendered) {
  const LogDictionary d = dictionary_of("unterminated %s");
  EXPECT_FALSE(d.render("@100 'x"));
}

TEST(LogDictionary, MissingExtraAndMismatchedArgumentsRenderAsFarAsTheyCan) {
  using namespace std::string_view_literals;
  const LogDictionary d = dictionary_of("%u and %s\0%d|%.*s\0"sv);
  EXPECT_EQ(d.render("@100").value_or("none"), "? and ?");
  EXPECT_EQ(d.render("@100 'str 5").value_or("none"), "? and ?");      // a string for %u, a number for %s
  EXPECT_EQ(d.render("@100 5 'ok 9 9").value_or("none"), "5 and ok");  // extra arguments: ignored
  EXPECT_EQ(d.render("@100 5 junk!").value_or("none"), "5 and ? [a malformed argument]");
  EXPECT_EQ(d.render("@100 5 'bad\\zzescape").value_or("none"), "5 and bad?zzescape");
  EXPECT_EQ(d.render("@10a ffffffff 3 'abcdef").value_or("none"), "-1|abc");  // the precision bounds it
  EXPECT_EQ(d.render("@10a 1 7fffffff 'ab").value_or("none"), "1|ab");
  EXPECT_EQ(d.render("@10a 1 ffffffff 'ab").value_or("none"), "1|ab");  // a negative precision: none
}

TEST(LogDictionary, ValuesWiderThanTheirConversionShowOnlyTheBitsItTakes) {
  using namespace std::string_view_literals;
  const LogDictionary d = dictionary_of("%hhu|%hd|%d|%u|%lld\0"sv);
  EXPECT_EQ(d.render("@100 12c fffeeeee 1ffffffff 1ffffffff ffffffffffffffff").value_or("none"),
            "44|-4370|-1|4294967295|-1");
}

TEST(LogDictionary, WidthsFromTheRemoteAreBounded) {
  using namespace std::string_view_literals;
  const LogDictionary d = dictionary_of("[%*d]\0[%99999999999d]\0"sv);
  const auto wide = d.render("@100 7fffffff 1");
  ASSERT_TRUE(wide);
  EXPECT_LE(wide->size(), 300U);
  const auto written = d.render("@106 1");
  ASSERT_TRUE(written);
  EXPECT_LE(written->size(), 300U);
}

TEST(LogDictionary, AnImageWithoutTheSectionHasAnEmptyDictionary) {
  EXPECT_TRUE(LogDictionary::of(ElfImage()).empty());
  EXPECT_FALSE(own_dictionary().empty());
}

}  // namespace
}  // namespace amp::rproc
