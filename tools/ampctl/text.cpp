// SPDX-License-Identifier: BSD-3-Clause
#include "text.hpp"

#include <cstdio>

namespace ampctl {

namespace {

std::string escape(std::string_view bytes, bool keep_lines) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size());
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    if (keep_lines && (c == '\n' || c == '\t')) {
      out += c;
    } else if (c == '\\') {
      out += "\\\\";
    } else if (b < 0x20 || b >= 0x7F) {
      out += "\\x";
      out += kHex[b >> 4];
      out += kHex[b & 0xF];
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string printable(std::string_view bytes) {
  return escape(bytes, false);
}

std::string printable_lines(std::string_view bytes) {
  return escape(bytes, true);
}

Json json_bytes(std::string_view bytes) {
  std::string utf8;
  utf8.reserve(bytes.size());
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x80) {
      utf8 += c;
    } else {  // U+0080..U+00FF in two bytes: 110000xx 10xxxxxx
      utf8 += static_cast<char>(0xC0 | (b >> 6));
      utf8 += static_cast<char>(0x80 | (b & 0x3F));
    }
  }
  return Json(std::move(utf8));
}

void print_json(const Json& value) {
  const std::string text = value.dump(-1, ' ', /*ensure_ascii=*/true);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

}  // namespace ampctl
