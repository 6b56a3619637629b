// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/log.hpp"

#include <cstring>

namespace amp::metal {

namespace detail {
std::atomic<LogLevel> g_log_level{LogLevel::kWarning};
}  // namespace detail

namespace {

std::atomic<LogSink*> g_sink{nullptr};

/// Appends characters to a bounded buffer while counting the full length.
class Writer {
 public:
  explicit Writer(std::span<char> out) : out_(out) {}
  void put(char c) noexcept {
    if (out_.size() != 0 && len_ + 1 < out_.size()) out_[len_] = c;
    ++len_;
  }
  void put_n(char c, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) put(c);
  }
  std::size_t finish() noexcept {
    if (!out_.empty()) out_[len_ < out_.size() ? len_ : out_.size() - 1] = '\0';
    return len_;
  }

 private:
  std::span<char> out_;
  std::size_t len_ = 0;
};

struct Spec {
  bool left = false;
  bool zero = false;
  std::size_t width = 0;
  bool has_precision = false;
  std::size_t precision = 0;
};

void emit_padded(Writer& w, const Spec& spec, const char* text, std::size_t len, bool numeric,
                 bool negative) noexcept {
  const std::size_t body = len + (negative ? 1 : 0);
  const std::size_t pad = spec.width > body ? spec.width - body : 0;
  if (!spec.left && !(spec.zero && numeric)) w.put_n(' ', pad);
  if (negative) w.put('-');
  if (!spec.left && spec.zero && numeric) w.put_n('0', pad);
  for (std::size_t i = 0; i < len; ++i) w.put(text[i]);
  if (spec.left) w.put_n(' ', pad);
}

/// v /= base, returning the remainder, for a base up to 16 without a 64-bit division (a libgcc call on
/// 32-bit cores): 32-bit divisions of 16 bits at a time, the remainder (< 16) carried into the next.
unsigned divide(unsigned long long& v, unsigned base) noexcept {
  if (v <= 0xFFFFFFFFU) {
    const auto x = static_cast<std::uint32_t>(v);
    v = x / base;
    return x % base;
  }
  unsigned long long q = 0;
  std::uint32_t r = 0;
  for (int shift = 48; shift >= 0; shift -= 16) {
    const std::uint32_t cur = r << 16 | static_cast<std::uint32_t>(v >> shift & 0xFFFFU);
    q = q << 16 | cur / base;
    r = cur % base;
  }
  v = q;
  return r;
}

void emit_unsigned(Writer& w, const Spec& spec, unsigned long long v, unsigned base, bool upper,
                   bool negative) noexcept {
  char digits[24];
  std::size_t n = 0;
  const char* set = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  do {
    digits[n++] = set[divide(v, base)];
  } while (v != 0);
  char text[24];
  for (std::size_t i = 0; i < n; ++i) text[i] = digits[n - 1 - i];
  emit_padded(w, spec, text, n, true, negative);
}

enum class Length { kNone, kChar, kShort, kLong, kLongLong, kSize, kMax, kPtrdiff };

}  // namespace

const char* to_string(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::kTrace:
      return "trace";
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
    case LogLevel::kOff:
      return "off";
  }
  return "?";
}

std::size_t vformat(std::span<char> out, const char* fmt, va_list args) noexcept {
  Writer w(out);
  for (const char* p = fmt; *p != '\0'; ++p) {
    if (*p != '%') {
      w.put(*p);
      continue;
    }
    ++p;
    Spec spec;
    for (;; ++p) {
      if (*p == '-') {
        spec.left = true;
      } else if (*p == '0') {
        spec.zero = true;
      } else {
        break;
      }
    }
    if (*p == '*') {
      const int width = va_arg(args, int);
      spec.width = width < 0 ? 0 : static_cast<std::size_t>(width);
      ++p;
    } else {
      while (*p >= '0' && *p <= '9') spec.width = spec.width * 10 + static_cast<std::size_t>(*p++ - '0');
    }
    if (*p == '.') {
      ++p;
      spec.has_precision = true;
      if (*p == '*') {
        const int prec = va_arg(args, int);
        spec.precision = prec < 0 ? 0 : static_cast<std::size_t>(prec);
        ++p;
      } else {
        while (*p >= '0' && *p <= '9')
          spec.precision = spec.precision * 10 + static_cast<std::size_t>(*p++ - '0');
      }
    }
    Length len = Length::kNone;
    if (*p == 'h') {
      len = (p[1] == 'h') ? Length::kChar : Length::kShort;
      p += (p[1] == 'h') ? 2 : 1;
    } else if (*p == 'l') {
      len = (p[1] == 'l') ? Length::kLongLong : Length::kLong;
      p += (p[1] == 'l') ? 2 : 1;
    } else if (*p == 'z') {
      len = Length::kSize;
      ++p;
    } else if (*p == 'j') {
      len = Length::kMax;
      ++p;
    } else if (*p == 't') {
      len = Length::kPtrdiff;
      ++p;
    }
    const char conv = *p;
    switch (conv) {
      case 'd':
      case 'i': {
        long long v;
        switch (len) {
          case Length::kLong:
            v = va_arg(args, long);
            break;
          case Length::kLongLong:
            v = va_arg(args, long long);
            break;
          case Length::kSize:
            v = static_cast<long long>(va_arg(args, std::size_t));
            break;
          case Length::kMax:
            v = static_cast<long long>(va_arg(args, intmax_t));
            break;
          case Length::kPtrdiff:
            v = static_cast<long long>(va_arg(args, std::ptrdiff_t));
            break;
          case Length::kChar:
            v = static_cast<signed char>(va_arg(args, int));
            break;
          case Length::kShort:
            v = static_cast<short>(va_arg(args, int));
            break;
          default:
            v = va_arg(args, int);
            break;
        }
        const bool neg = v < 0;
        const unsigned long long mag =
            neg ? 0ULL - static_cast<unsigned long long>(v) : static_cast<unsigned long long>(v);
        emit_unsigned(w, spec, mag, 10, false, neg);
        break;
      }
      case 'u':
      case 'x':
      case 'X':
      case 'o': {
        unsigned long long v;
        switch (len) {
          case Length::kLong:
            v = va_arg(args, unsigned long);
            break;
          case Length::kLongLong:
            v = va_arg(args, unsigned long long);
            break;
          case Length::kSize:
            v = va_arg(args, std::size_t);
            break;
          case Length::kMax:
            v = va_arg(args, uintmax_t);
            break;
          case Length::kPtrdiff:
            v = static_cast<unsigned long long>(va_arg(args, std::ptrdiff_t));
            break;
          case Length::kChar:
            v = static_cast<unsigned char>(va_arg(args, unsigned));
            break;
          case Length::kShort:
            v = static_cast<unsigned short>(va_arg(args, unsigned));
            break;
          default:
            v = va_arg(args, unsigned);
            break;
        }
        const unsigned base = conv == 'o' ? 8 : (conv == 'u' ? 10 : 16);
        emit_unsigned(w, spec, v, base, conv == 'X', false);
        break;
      }
      case 'p': {
        const auto v = reinterpret_cast<std::uintptr_t>(va_arg(args, void*));
        w.put('0');
        w.put('x');
        emit_unsigned(w, spec, v, 16, false, false);
        break;
      }
      case 'c': {
        const char c = static_cast<char>(va_arg(args, int));
        emit_padded(w, spec, &c, 1, false, false);
        break;
      }
      case 's': {
        const char* s = va_arg(args, const char*);
        if (s == nullptr) s = "(null)";
        std::size_t n = 0;
        while ((!spec.has_precision || n < spec.precision) && s[n] != '\0') ++n;
        emit_padded(w, spec, s, n, false, false);
        break;
      }
      case '%':
        w.put('%');
        break;
      case '\0':  // a lone '%' at the end
        return w.finish();
      default:  // unknown conversion: print it as written
        w.put('%');
        w.put(conv);
        break;
    }
  }
  return w.finish();
}

std::size_t format(std::span<char> out, const char* fmt, ...) noexcept {
  va_list args;
  va_start(args, fmt);
  const std::size_t n = vformat(out, fmt, args);
  va_end(args);
  return n;
}

void set_log_sink(LogSink* sink) noexcept {
  g_sink.store(sink, std::memory_order_release);
}
LogSink& log_sink() noexcept {
  LogSink* sink = g_sink.load(std::memory_order_acquire);
  return sink != nullptr ? *sink : default_log_sink();
}
void set_log_level(LogLevel level) noexcept {
  detail::g_log_level.store(level, std::memory_order_relaxed);
}
LogLevel log_level() noexcept {
  return detail::g_log_level.load(std::memory_order_relaxed);
}

void vlog(LogLevel level, const char* fmt, va_list args) noexcept {
  if (!log_enabled(level)) return;
  char buf[kMaxLogMessage + 1];
  std::size_t n = vformat(buf, fmt, args);
  if (n > kMaxLogMessage) {
    std::memcpy(buf + kMaxLogMessage - 3, "...", 3);
    n = kMaxLogMessage;
  }
  log_sink().write(level, std::string_view(buf, n));
}

void log(LogLevel level, const char* fmt, ...) noexcept {
  va_list args;
  va_start(args, fmt);
  vlog(level, fmt, args);
  va_end(args);
}

}  // namespace amp::metal
