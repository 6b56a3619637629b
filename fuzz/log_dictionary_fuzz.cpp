// SPDX-License-Identifier: BSD-3-Clause
// Fuzzes the host's rendering of a dictionary-logging remote's text (rproc::LogDictionary): both the
// dictionary (the formats an image carries, as a hostile image could have them) and the trace or console
// text (what the remote wrote) come from the input. Checks that:
//  - nothing reads outside the dictionary or the text (ASan), and no arithmetic goes wrong (UBSan);
//  - an empty dictionary renders every text as it is;
//  - a line without a record or a time stamp comes out unchanged;
//  - the output stays bounded: each conversion renders at most a few hundred bytes (widths are capped).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "amp/rproc/linux/log_dictionary.hpp"
#include "fuzz_input.hpp"

using amp::fuzz::check;
using amp::rproc::LogDictionary;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  amp::fuzz::Input in(data, size);
  const auto dict_size = static_cast<std::size_t>(in.take<std::uint16_t>()) % 2048;
  const auto base = static_cast<std::uint64_t>(in.take<std::uint8_t>()) << 4;
  const unsigned bits = (in.take<std::uint8_t>() & 1) != 0 ? 64 : 32;
  const std::size_t n = dict_size < in.left() ? dict_size : in.left();
  std::vector<char> formats(reinterpret_cast<const char*>(in.here()),
                            reinterpret_cast<const char*>(in.here()) + n);
  in.skip(n);
  const std::string_view text(reinterpret_cast<const char*>(in.here()), in.left());

  check(LogDictionary().render_text(text) == text);
  const LogDictionary dict(std::move(formats), base, bits);
  const std::string out = dict.render_text(text);
  // A line renders at most one format of at most n bytes, each of whose conversions gives a number padded
  // to at most 256 (plus a sign and digits) or a string of the line's own (at most the whole text).
  check(out.size() <= text.size() + 16 + (text.size() + 1) * (n + 1) * (300 + text.size()));
  if (text.find('@') == std::string_view::npos && text.find("[#") == std::string_view::npos)
    check(out == text);
  (void)dict.render(text);
  return 0;
}
