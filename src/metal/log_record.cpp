// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/log_record.hpp"

// The dictionary's bounds: the image's linker script defines them; on a host the linker does for a section
// with a C name. Weak: a program with no dictionary string has none, and both are then null.
extern "C" const char __start_amp_log_fmt[] __attribute__((weak));  // NOLINT: the linker's names
extern "C" const char __stop_amp_log_fmt[] __attribute__((weak));   // NOLINT

namespace amp::metal::dict {

namespace {

/// Whether `s` is a string of the dictionary (AMP_DICT_STRING), which only the host can read.
bool in_dictionary(const char* s) noexcept {
  const auto p = reinterpret_cast<std::uintptr_t>(s);
  return p >= reinterpret_cast<std::uintptr_t>(__start_amp_log_fmt) &&
         p < reinterpret_cast<std::uintptr_t>(__stop_amp_log_fmt);
}

constexpr char kHex[] = "0123456789abcdef";
// Room kept at the end of a record for " ~", the mark of arguments cut.
constexpr std::size_t kCutMark = 2;

class Writer {
 public:
  /// Writes below `limit` (< out.size()).
  Writer(std::span<char> out, std::size_t limit) : out_(out), limit_(limit) {}
  bool put(char c) noexcept {
    if (len_ >= limit_) return false;
    out_[len_++] = c;
    return true;
  }
  bool hex(std::uint64_t v) noexcept {
    char digits[16];
    std::size_t n = 0;
    do {
      digits[n++] = kHex[v & 0xF];
      v >>= 4;
    } while (v != 0);
    while (n != 0) {
      if (!put(digits[--n])) return false;
    }
    return true;
  }
  /// `s`, at most `max` bytes of it or to its NUL, escaped.
  bool string(const char* s, std::size_t max) noexcept {
    if (in_dictionary(s)) return put('*') && hex(reinterpret_cast<std::uintptr_t>(s));
    if (s == nullptr) s = "(null)";
    if (!put('\'')) return false;
    for (std::size_t i = 0; i < max && s[i] != '\0'; ++i) {
      const auto c = static_cast<unsigned char>(s[i]);
      if (c > ' ' && c <= '~' && c != '\\') {
        if (!put(static_cast<char>(c))) return false;
      } else if (!put('\\') || !put(kHex[c >> 4]) || !put(kHex[c & 0xF])) {
        return false;
      }
    }
    return true;
  }
  std::size_t size() const noexcept { return len_; }
  void rewind(std::size_t to) noexcept { len_ = to; }
  void set_limit(std::size_t limit) noexcept { limit_ = limit; }

 private:
  std::span<char> out_;
  std::size_t limit_;
  std::size_t len_ = 0;
};

}  // namespace

std::size_t vencode(std::span<char> out, const char* fmt, std::uint32_t kinds, va_list args) noexcept {
  if (out.empty()) return 0;
  const std::size_t end = out.size() - 1;  // the NUL's place
  Writer w(out, end > kCutMark ? end - kCutMark : 0);
  bool cut = !w.put('@') || !w.hex(reinterpret_cast<std::uintptr_t>(fmt));
  std::uint32_t last_word = 0;  // a bounded string's precision is the argument before it
  for (; kinds != 0 && !cut; kinds >>= kKindBits) {
    const std::size_t at = w.size();
    bool ok = w.put(' ');
    switch (static_cast<ArgKind>(kinds & ((1U << kKindBits) - 1))) {
      case ArgKind::kWord32:
        last_word = va_arg(args, unsigned);
        ok = ok && w.hex(last_word);
        break;
      case ArgKind::kWord64:
        ok = ok && w.hex(va_arg(args, unsigned long long));
        break;
      case ArgKind::kString:
        ok = ok && w.string(va_arg(args, const char*), ~std::size_t{0});
        break;
      case ArgKind::kBoundedString: {
        const auto precision = static_cast<int>(last_word);  // negative: no precision
        const char* s = va_arg(args, const char*);
        ok = ok && w.string(s, precision < 0 ? ~std::size_t{0} : static_cast<std::size_t>(precision));
        break;
      }
      case ArgKind::kPointer:
        ok = ok && w.hex(reinterpret_cast<std::uintptr_t>(va_arg(args, void*)));
        break;
    }
    if (!ok) {
      w.rewind(at);
      cut = true;
    }
  }
  if (cut) {
    w.set_limit(end);
    (void)w.put(' ');
    (void)w.put('~');
  }
  out[w.size()] = '\0';
  return w.size();
}

std::size_t encode(std::span<char> out, const char* fmt, std::uint32_t kinds, ...) noexcept {
  va_list args;
  va_start(args, kinds);
  const std::size_t n = vencode(out, fmt, kinds, args);
  va_end(args);
  return n;
}

void log(LogLevel level, const char* fmt, std::uint32_t kinds, ...) noexcept {
  if (!log_enabled(level)) return;
  char buf[kMaxLogMessage + 1];
  va_list args;
  va_start(args, kinds);
  const std::size_t n = vencode(buf, fmt, kinds, args);
  va_end(args);
  log_sink().write(level, std::string_view(buf, n));
}

std::size_t append_hex(std::span<char> out, std::size_t at, std::uint64_t value) noexcept {
  if (out.empty()) return 0;
  if (at >= out.size()) at = out.size() - 1;
  Writer w(out.subspan(at), out.size() - at - 1);
  (void)w.hex(value);
  out[at + w.size()] = '\0';
  return at + w.size();
}

}  // namespace amp::metal::dict
