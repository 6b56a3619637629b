// SPDX-License-Identifier: BSD-3-Clause
#include "amp/rproc/linux/log_dictionary.hpp"

#include <cstdio>
#include <cstring>

namespace amp::rproc {

namespace {

int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// A hex number of 1 to 16 digits, the whole of `s`.
std::optional<std::uint64_t> parse_hex(std::string_view s) noexcept {
  if (s.empty() || s.size() > 16) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    const int d = hex_digit(c);
    if (d < 0) return std::nullopt;
    v = v << 4 | static_cast<unsigned>(d);
  }
  return v;
}

/// One argument of a record.
struct Arg {
  bool is_string = false;
  std::uint64_t value = 0;
  std::string text;
};

/// The arguments after a record's address; `cut` when the record says some were left off (" ~").
struct Args {
  std::vector<Arg> list;
  std::size_t next = 0;
  bool bad = false;  // a token that is neither a number nor a string

  const Arg* take() noexcept { return next < list.size() ? &list[next++] : nullptr; }
};

Args parse_args(std::string_view s, const auto& lookup) {
  Args out;
  while (!s.empty()) {
    if (s.front() != ' ') {
      out.bad = true;
      break;
    }
    s.remove_prefix(1);
    const std::size_t end = std::min(s.find(' '), s.size());
    const std::string_view token = s.substr(0, end);
    s.remove_prefix(end);
    if (token == "~") continue;  // arguments cut: the missing ones render as "?"
    Arg a;
    if (!token.empty() && token.front() == '\'') {
      a.is_string = true;
      for (std::size_t i = 1; i < token.size(); ++i) {
        if (token[i] != '\\') {
          a.text += token[i];
          continue;
        }
        const int hi = i + 1 < token.size() ? hex_digit(token[i + 1]) : -1;
        const int lo = i + 2 < token.size() ? hex_digit(token[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
          a.text += '?';
          continue;
        }
        a.text += static_cast<char>(hi << 4 | lo);
        i += 2;
      }
    } else if (!token.empty() && token.front() == '*') {
      // A string of the dictionary, by its address.
      const auto address = parse_hex(token.substr(1));
      const std::optional<std::string_view> text = address ? lookup(*address) : std::nullopt;
      a.is_string = true;
      a.text = text ? std::string(*text) : std::string("?");
    } else if (auto v = parse_hex(token)) {
      a.value = *v;
    } else {
      out.bad = true;
      break;
    }
    out.list.push_back(std::move(a));
  }
  return out;
}

std::uint64_t mask(std::uint64_t v, unsigned bits) noexcept {
  return bits >= 64 ? v : v & ((std::uint64_t{1} << bits) - 1);
}

std::int64_t sign_extend(std::uint64_t v, unsigned bits) noexcept {
  if (bits >= 64) return static_cast<std::int64_t>(v);
  const std::uint64_t sign = std::uint64_t{1} << (bits - 1);
  v = mask(v, bits);
  return static_cast<std::int64_t>((v ^ sign) - sign);
}

// The specs passed here are built from checked pieces (flags, '*', a bounded precision, one conversion) and
// their arguments match them.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
std::string printf_string(const char* spec, auto... values) {
  char buf[512];
  const int n = std::snprintf(buf, sizeof buf, spec, values...);
#pragma GCC diagnostic pop
  if (n < 0) return "?";
  return std::string(buf, std::min(static_cast<std::size_t>(n), sizeof buf - 1));
}

/// Renders `fmt` (the format metal::format() takes) with `args`.
std::string render_format(std::string_view fmt, Args& args, unsigned target_bits) {
  std::string out;
  const unsigned long_bits = target_bits;  // ILP32 or LP64
  for (std::size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) break;
    if (fmt[i] == '%') {
      out += '%';
      continue;
    }
    bool left = false;
    bool zero = false;
    while (i < fmt.size() &&
           (fmt[i] == '-' || fmt[i] == '0' || fmt[i] == '+' || fmt[i] == ' ' || fmt[i] == '#')) {
      left |= fmt[i] == '-';
      zero |= fmt[i] == '0';
      ++i;
    }
    const auto take_word = [&]() -> std::optional<std::int64_t> {
      const Arg* a = args.take();
      if (a == nullptr || a->is_string) return std::nullopt;
      return sign_extend(a->value, 32);
    };
    int width = 0;
    if (i < fmt.size() && fmt[i] == '*') {
      const auto w = take_word();
      width = w ? static_cast<int>(std::min<std::int64_t>(std::max<std::int64_t>(*w, -256), 256)) : 0;
      if (width < 0) {
        left = true;
        width = -width;
      }
      ++i;
    }
    while (i < fmt.size() && fmt[i] >= '0' && fmt[i] <= '9')
      width = std::min(width * 10 + (fmt[i++] - '0'), 256);
    int precision = -1;
    if (i < fmt.size() && fmt[i] == '.') {
      ++i;
      precision = 0;
      if (i < fmt.size() && fmt[i] == '*') {
        const auto p = take_word();
        precision = p && *p >= 0 ? static_cast<int>(std::min<std::int64_t>(*p, 4096)) : -1;
        ++i;
      }
      while (i < fmt.size() && fmt[i] >= '0' && fmt[i] <= '9') {
        precision = std::min(precision * 10 + (fmt[i++] - '0'), 4096);
      }
    }
    unsigned bits = 32;
    unsigned value_bits = 32;  // what the conversion shows of it (hh: 8, h: 16)
    if (i < fmt.size() && fmt[i] == 'h') {
      value_bits = 16;
      if (++i < fmt.size() && fmt[i] == 'h') {
        value_bits = 8;
        ++i;
      }
    } else if (i < fmt.size() && fmt[i] == 'l') {
      bits = long_bits;
      if (++i < fmt.size() && fmt[i] == 'l') {
        bits = 64;
        ++i;
      }
      value_bits = bits;
    } else if (i < fmt.size() && (fmt[i] == 'z' || fmt[i] == 't')) {
      bits = value_bits = target_bits;
      ++i;
    } else if (i < fmt.size() && fmt[i] == 'j') {
      bits = value_bits = 64;
      ++i;
    }
    if (i >= fmt.size()) break;
    const char conv = fmt[i];
    std::string spec = "%";
    if (left) spec += '-';
    if (zero && !left) spec += '0';
    spec += '*';
    if (conv == 's') {
      const Arg* a = args.take();
      if (a == nullptr || !a->is_string) {
        out += '?';
        continue;
      }
      std::string_view s = a->text;
      if (precision >= 0 && s.size() > static_cast<std::size_t>(precision)) {
        s = s.substr(0, static_cast<std::size_t>(precision));
      }
      const auto w = static_cast<std::size_t>(width);  // 0..256
      const std::size_t pad = s.size() < w ? w - s.size() : 0;
      if (!left) out.append(pad, ' ');
      out += s;
      if (left) out.append(pad, ' ');
      continue;
    }
    if (conv == 'd' || conv == 'i' || conv == 'u' || conv == 'x' || conv == 'X' || conv == 'o' ||
        conv == 'c' || conv == 'p') {
      const Arg* a = args.take();
      if (a == nullptr || a->is_string) {
        out += '?';
        continue;
      }
      const std::uint64_t raw = mask(a->value, conv == 'p' ? target_bits : bits);
      if (conv == 'c') {
        out +=
            printf_string(spec.append("c").c_str(), width, static_cast<int>(static_cast<unsigned char>(raw)));
      } else if (conv == 'p') {
        out += "0x";
        out += printf_string("%llx", static_cast<unsigned long long>(raw));
      } else if (conv == 'd' || conv == 'i') {
        if (precision >= 0) {
          spec += '.';
          spec += std::to_string(precision);
        }
        out += printf_string(spec.append("lld").c_str(), width,
                             static_cast<long long>(sign_extend(raw, value_bits)));
      } else {
        if (precision >= 0) {
          spec += '.';
          spec += std::to_string(precision);
        }
        spec += "ll";
        spec += conv;
        out += printf_string(spec.c_str(), width, static_cast<unsigned long long>(mask(raw, value_bits)));
      }
      continue;
    }
    // A conversion the target's formatter does not know: shown as written, as metal::format() does.
    out += '%';
    out += conv;
  }
  return out;
}

bool is_hex(char c) noexcept {
  return hex_digit(c) >= 0;
}

}  // namespace

LogDictionary::LogDictionary(std::vector<char> formats, std::uint64_t base, unsigned target_bits)
    : formats_(std::move(formats)), base_(base), target_bits_(target_bits == 64 ? 64 : 32) {}

LogDictionary LogDictionary::of(const ElfImage& image) {
  const auto s = image.section(kLogDictionarySection);
  if (!s || s->data.empty()) return {};
  std::vector<char> bytes(s->data.size());
  std::memcpy(bytes.data(), s->data.data(), bytes.size());
  return LogDictionary(std::move(bytes), s->addr, image.elf_class());
}

std::optional<std::string_view> LogDictionary::string_at(std::uint64_t address) const noexcept {
  if (address < base_ || address - base_ >= formats_.size()) return std::nullopt;
  const auto at = static_cast<std::size_t>(address - base_);
  const char* start = formats_.data() + at;
  const void* nul = std::memchr(start, '\0', formats_.size() - at);
  if (nul == nullptr) return std::nullopt;  // a string must end inside the section
  return std::string_view(start, static_cast<std::size_t>(static_cast<const char*>(nul) - start));
}

std::optional<std::string> LogDictionary::render(std::string_view record) const {
  if (formats_.empty() || record.size() < 2 || record.front() != '@') return std::nullopt;
  const std::size_t end = std::min(record.find(' '), record.size());
  const auto address = parse_hex(record.substr(1, end - 1));
  const auto fmt = address ? string_at(*address) : std::nullopt;
  if (!fmt) return std::nullopt;
  Args args = parse_args(record.substr(end), [this](std::uint64_t a) { return string_at(a); });
  std::string out = render_format(*fmt, args, target_bits_);
  if (args.bad) out += " [a malformed argument]";
  return out;
}

std::string LogDictionary::render_text(std::string_view text) const {
  if (formats_.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size() * 2);
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    // "[#<hex ns>]": the time stamp, as "[%5lu.%06lu]" of microseconds.
    if (line.size() > 3 && line.substr(0, 2) == "[#") {
      const std::size_t close = line.find(']');
      if (close != std::string_view::npos) {
        if (const auto ns = parse_hex(line.substr(2, close - 2))) {
          const std::uint64_t us = *ns / 1000;
          out += printf_string("[%5llu.%06llu]", static_cast<unsigned long long>(us / 1'000'000),
                               static_cast<unsigned long long>(us % 1'000'000));
          line.remove_prefix(close + 1);
        }
      }
    }
    // The record: at the start of the line or after a space.
    std::size_t at = 0;
    std::optional<std::string> rendered;
    for (; at + 1 < line.size(); ++at) {
      if (line[at] == '@' && (at == 0 || line[at - 1] == ' ') && is_hex(line[at + 1])) {
        rendered = render(line.substr(at));
        if (rendered) break;
      }
    }
    if (rendered) {
      out += line.substr(0, at);
      out += *rendered;
    } else {
      out += line;
    }
    if (nl != std::string_view::npos) out += '\n';
  }
  return out;
}

}  // namespace amp::rproc
