// SPDX-License-Identifier: BSD-3-Clause
// Logging: levels, a user-replaceable sink, printf-style formatting into a stack buffer (no heap, no
// iostream).
//
// Thread-safety: log() may be called from any thread; the level and sink are atomics. A sink must itself be
// safe to call from several threads. set_log_sink() does not wait for calls already inside the old sink, so
// an old sink must stay alive (sinks are usually static objects).
#pragma once

#include <atomic>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace amp::metal {

enum class LogLevel : std::uint8_t { kTrace = 0, kDebug, kInfo, kWarning, kError, kOff };

/// "trace", "debug", "info", "warning", "error" or "off".
const char* to_string(LogLevel level) noexcept;

/// Where log lines go. `message` has no trailing newline.
class LogSink {
 public:
  virtual void write(LogLevel level, std::string_view message) noexcept = 0;

 protected:
  ~LogSink() = default;
};

/// A sink that forwards to any callable taking (LogLevel, std::string_view).
template <class F>
class FunctionLogSink final : public LogSink {
 public:
  explicit FunctionLogSink(F f) : f_(static_cast<F&&>(f)) {}
  void write(LogLevel level, std::string_view message) noexcept override { f_(level, message); }

 private:
  F f_;
};

/// The platform's sink: standard error on Linux; the board's log hook on bare metal (or nowhere).
LogSink& default_log_sink() noexcept;

/// Replaces the sink; nullptr restores the platform default.
void set_log_sink(LogSink* sink) noexcept;
/// The sink log() writes to now.
LogSink& log_sink() noexcept;
/// Messages below `level` are dropped. The default is kWarning.
void set_log_level(LogLevel level) noexcept;
LogLevel log_level() noexcept;

namespace detail {
extern std::atomic<LogLevel> g_log_level;
}  // namespace detail

inline bool log_enabled(LogLevel level) noexcept {
  return level != LogLevel::kOff && level >= detail::g_log_level.load(std::memory_order_relaxed);
}

/// Longest message passed to a sink, in bytes; longer ones are cut and end in "...".
inline constexpr std::size_t kMaxLogMessage = 255;

/// Formats and sends a message. Supports a printf subset: flags '-' and '0', width, precision (for s), length
/// modifiers hh h l ll z j t, and conversions d i u x X o c s p %.
void log(LogLevel level, const char* fmt, ...) noexcept __attribute__((format(printf, 2, 3)));
void vlog(LogLevel level, const char* fmt, va_list args) noexcept;

/// snprintf-like formatting into `out` (always NUL-terminated when out is not empty). Returns the length the
/// whole result would have had.
std::size_t format(std::span<char> out, const char* fmt, ...) noexcept __attribute__((format(printf, 2, 3)));
std::size_t vformat(std::span<char> out, const char* fmt, va_list args) noexcept;

}  // namespace amp::metal

/// The lowest level whose AMP_LOG messages are compiled in at all (a LogLevel's value; 0, kTrace, by default:
/// all). A code-size knob for small targets: the messages below it, their text and the code that formats
/// their arguments, are not in the image, whatever set_log_level() says at run time. Define it for the
/// translation units it should apply to (for example -DAMP_LOG_MIN_LEVEL=4 on amp's core: errors only).
#ifndef AMP_LOG_MIN_LEVEL
#define AMP_LOG_MIN_LEVEL 0
#endif

/// Lines are recorded rather than formatted (log_record.hpp: the host renders them from the image) in the
/// translation units compiled with -DAMP_LOG_DICTIONARY=1.
#ifndef AMP_LOG_DICTIONARY
#define AMP_LOG_DICTIONARY 0
#endif

/// Logs only when the level is enabled, so the arguments are not evaluated otherwise.
#if AMP_LOG_DICTIONARY
#define AMP_LOG_EMIT(level, fmt, ...)                                                              \
  do {                                                                                             \
    AMP_LOG_DICT_FORMAT(amp_log_fmt_, fmt);                                                        \
    if (false) ::amp::metal::dict::detail::check_format(fmt __VA_OPT__(, ) __VA_ARGS__);           \
    ::amp::metal::dict::log((level), amp_log_fmt_, amp_log_fmt__kinds __VA_OPT__(, ) __VA_ARGS__); \
  } while (0)
#else
#define AMP_LOG_EMIT(level, fmt, ...) ::amp::metal::log((level), fmt __VA_OPT__(, ) __VA_ARGS__)
#endif
#if AMP_LOG_MIN_LEVEL > 0
#define AMP_LOG(level, fmt, ...)                                                          \
  do {                                                                                    \
    if (static_cast<int>(level) >= AMP_LOG_MIN_LEVEL && ::amp::metal::log_enabled(level)) \
      AMP_LOG_EMIT(level, fmt __VA_OPT__(, ) __VA_ARGS__);                                \
  } while (0)
#else
#define AMP_LOG(level, fmt, ...)                                                               \
  do {                                                                                         \
    if (::amp::metal::log_enabled(level)) AMP_LOG_EMIT(level, fmt __VA_OPT__(, ) __VA_ARGS__); \
  } while (0)
#endif
#define AMP_LOG_DEBUG(...) AMP_LOG(::amp::metal::LogLevel::kDebug, __VA_ARGS__)
#define AMP_LOG_INFO(...) AMP_LOG(::amp::metal::LogLevel::kInfo, __VA_ARGS__)
#define AMP_LOG_WARNING(...) AMP_LOG(::amp::metal::LogLevel::kWarning, __VA_ARGS__)
#define AMP_LOG_ERROR(...) AMP_LOG(::amp::metal::LogLevel::kError, __VA_ARGS__)

#if AMP_LOG_DICTIONARY
#include "amp/metal/log_record.hpp"
#endif

/// A line for a sink of one's own (a fault handler's last words): metal::format() into `out`, or in
/// dictionary mode the line's record (log_record.hpp). Returns the length, as format() does.
#if AMP_LOG_DICTIONARY
#define AMP_FORMAT_LINE(out, fmt, ...) AMP_LOG_DICT_ENCODE(out, fmt __VA_OPT__(, ) __VA_ARGS__)
#else
#define AMP_FORMAT_LINE(out, fmt, ...) ::amp::metal::format(out, fmt __VA_OPT__(, ) __VA_ARGS__)
#endif
