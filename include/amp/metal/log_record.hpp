// SPDX-License-Identifier: BSD-3-Clause
// Dictionary logging: a log line recorded as where its format string lies, plus its arguments, in a short
// text; the host, which has the image, renders the line. A bare-metal image built this way carries neither
// its messages (they go to a section the target never loads) nor a formatter. Enabled per translation unit
// with -DAMP_LOG_DICTIONARY=1 (log.hpp's AMP_LOG then records instead of formatting); the host's side is
// amp::rproc::LogDictionary (rproc/linux/log_dictionary.hpp).
//
// The format strings go to the section `amp_log_fmt`. An image's linker script places it at address 0 and
// marks it (INFO), so that it is in the ELF file but takes no memory; each format's address is then its
// offset in the section. On a host it is an ordinary section, found through __start_/__stop_amp_log_fmt.
//
// A record, the message a LogSink gets (kMaxLogMessage bytes at most; a longer one is cut at an argument):
//   "@" <hex address of the format> then, per argument, " " and one of
//     <hex>          an integer, the bits of its type as the format names it (%d, %lx...: 32 or 64 bits)
//     "'" <bytes>    a string (%s, %.*s), each '\\', ' ', and byte outside '!'..'~' as '\\' <2 hex digits>
//     "*" <hex>      a string that is itself in the dictionary (AMP_DICT_STRING: the names log_name() gives),
//                    by its address
//   and " ~" when arguments had to be cut.
// What each argument is comes from the format string, parsed at compile time (format_kinds()): the target
// needs no parser of its own, and a format and its arguments that disagree do not compile (-Wformat).
//
// Thread-safety: as log(): any thread; the sink must be safe to call from several.
#pragma once

#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <span>

#include "amp/metal/log.hpp"

namespace amp::metal::dict {

/// How one argument of a format travels, 3 bits each in a FormatKinds word (up to kMaxArgs arguments).
enum class ArgKind : std::uint8_t {
  kWord32 = 1,         ///< an int-sized integer (%d %u %x %c, %ld on 32-bit targets, '*' widths)
  kWord64 = 2,         ///< a 64-bit integer (%lld, %llx, %ld on LP64, %zu on 64-bit targets)
  kString = 3,         ///< %s: up to its NUL
  kBoundedString = 4,  ///< %.*s: at most the argument before it (the precision) bytes, or to a NUL first
  kPointer = 5,        ///< %p
};
inline constexpr unsigned kMaxArgs = 10;
inline constexpr unsigned kKindBits = 3;

/// The argument kinds of a printf format, kind i in bits [3i, 3i + 3); ~0 for a format this does not take
/// (a conversion outside d i u x X o c s p %, more than kMaxArgs arguments, %*s with a '*' width). The
/// same subset as metal::format().
consteval std::uint32_t format_kinds(const char* f) {
  std::uint32_t kinds = 0;
  unsigned n = 0;
  const auto add = [&](ArgKind k) {
    if (n < kMaxArgs) kinds |= static_cast<std::uint32_t>(k) << (kKindBits * n);
    ++n;
  };
  for (; *f != '\0'; ++f) {
    if (*f != '%') continue;
    ++f;
    if (*f == '%') continue;
    while (*f == '-' || *f == '0' || *f == '+' || *f == ' ' || *f == '#') ++f;
    bool star_width = false;
    if (*f == '*') {
      add(ArgKind::kWord32);
      star_width = true;
      ++f;
    }
    while (*f >= '0' && *f <= '9') ++f;
    bool star_precision = false;
    if (*f == '.') {
      ++f;
      if (*f == '*') {
        star_precision = true;
        ++f;
      }
      while (*f >= '0' && *f <= '9') ++f;
    }
    unsigned bytes = sizeof(int);
    if (*f == 'h') {
      while (*f == 'h') ++f;
    } else if (*f == 'l') {
      ++f;
      bytes = sizeof(long);
      if (*f == 'l') {
        ++f;
        bytes = sizeof(long long);
      }
    } else if (*f == 'z' || *f == 't') {
      ++f;
      bytes = sizeof(std::size_t);
    } else if (*f == 'j') {
      ++f;
      bytes = sizeof(std::intmax_t);
    }
    switch (*f) {
      case 'd':
      case 'i':
      case 'u':
      case 'x':
      case 'X':
      case 'o':
      case 'c':
        if (star_precision) add(ArgKind::kWord32);
        add(bytes == 8 ? ArgKind::kWord64 : ArgKind::kWord32);
        break;
      case 's':
        if (star_width) return ~std::uint32_t{0};  // the width would count escaped bytes: not taken
        if (star_precision) {
          add(ArgKind::kWord32);
          add(ArgKind::kBoundedString);
        } else {
          add(ArgKind::kString);
        }
        break;
      case 'p':
        add(ArgKind::kPointer);
        break;
      default:
        return ~std::uint32_t{0};
    }
  }
  return n > kMaxArgs ? ~std::uint32_t{0} : kinds;
}

/// Writes the record of `fmt` (its address) and the arguments `kinds` describes into `out`, NUL-terminated
/// when `out` is not empty. Returns the record's length (at most out.size() - 1).
std::size_t encode(std::span<char> out, const char* fmt, std::uint32_t kinds, ...) noexcept;
std::size_t vencode(std::span<char> out, const char* fmt, std::uint32_t kinds, va_list args) noexcept;

/// Records a line for the current sink (log()'s counterpart).
void log(LogLevel level, const char* fmt, std::uint32_t kinds, ...) noexcept;

/// Appends `value` in hex (no prefix, lower case) at out[at...]; returns the new length, never beyond
/// out.size() - 1 (a NUL follows when out is not empty). For a sink's own fields, such as a time stamp.
std::size_t append_hex(std::span<char> out, std::size_t at, std::uint64_t value) noexcept;

namespace detail {
/// Never called (behind `if (false)`): makes the compiler check a record's arguments against its format,
/// as it does printf's.
__attribute__((format(printf, 1, 2))) inline void check_format(const char*, ...) noexcept {}
}  // namespace detail

}  // namespace amp::metal::dict

/// Declares `name`, a format string in the dictionary section, and `name##_kinds`, its argument kinds.
#define AMP_LOG_DICT_FORMAT(name, fmt)                                                 \
  __attribute__((section("amp_log_fmt"), used)) static constexpr char name[] = fmt;    \
  static constexpr std::uint32_t name##_kinds = ::amp::metal::dict::format_kinds(fmt); \
  static_assert(name##_kinds != ~std::uint32_t{0}, "a format that dictionary logging cannot take")

/// A string literal kept in the dictionary, not in memory: an argument only a record can carry (the
/// encoder sends its address, the host its text). For names that only log lines show (log_name()).
#define AMP_DICT_STRING(s)                                                                 \
  ([]() noexcept -> const char* {                                                          \
    __attribute__((section("amp_log_fmt"), used)) static constexpr char amp_dict_s_[] = s; \
    return amp_dict_s_;                                                                    \
  }())

/// Declares `name`, a table of names kept in the dictionary at a fixed stride of `stride` bytes (a longer
/// name does not compile), its last entry the name of a value beyond the others. dict::name_at() picks one
/// by arithmetic: a log_name() this way costs a few instructions and no table of pointers in memory.
#define AMP_DICT_NAMES(name, stride, ...) \
  __attribute__((section("amp_log_fmt"), used)) constexpr char name[][stride] = {__VA_ARGS__}

namespace amp::metal::dict {
/// Entry `i` of an AMP_DICT_NAMES table, or its last entry when `i` is beyond the others.
template <std::size_t N, std::size_t Stride>
const char* name_at(const char (&names)[N][Stride], std::uint32_t i) noexcept {
  return names[i < N - 1 ? i : N - 1];
}
/// Whether `values` are 0, 1, 2...: what a table name_at() indexes by value needs of the list it was made
/// from (checked with static_assert where it is made).
template <class E, std::size_t N>
consteval bool in_value_order(const E (&values)[N]) {
  for (std::size_t i = 0; i < N; ++i) {
    if (static_cast<std::size_t>(values[i]) != i) return false;
  }
  return true;
}
}  // namespace amp::metal::dict

/// Like metal::format() into `out`, but the record of the line (what a sink gets in dictionary mode).
#define AMP_LOG_DICT_ENCODE(out, fmt, ...)                                                                 \
  ([&]() noexcept {                                                                                        \
    AMP_LOG_DICT_FORMAT(amp_log_fmt_, fmt);                                                                \
    if (false) ::amp::metal::dict::detail::check_format(fmt __VA_OPT__(, ) __VA_ARGS__);                   \
    return ::amp::metal::dict::encode((out), amp_log_fmt_, amp_log_fmt__kinds __VA_OPT__(, ) __VA_ARGS__); \
  }())
