// SPDX-License-Identifier: BSD-3-Clause
// The host's side of dictionary logging (metal/log_record.hpp): the format strings of an image, taken from
// its `amp_log_fmt` section, and the rendering of the records that image writes into its trace or console.
//
// A record is the remote's text, so untrusted: an address outside the dictionary, a missing, extra or
// malformed argument, or a format that does not end inside the section renders as far as it can, with "?"
// for what it cannot, and never reads outside the dictionary.
//
// Thread-safety: immutable after construction; any number of threads may render at once.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "amp/rproc/elf.hpp"

namespace amp::rproc {

/// The section a dictionary-logging image keeps its format strings in.
inline constexpr std::string_view kLogDictionarySection = "amp_log_fmt";

class LogDictionary {
 public:
  /// An empty dictionary: renders nothing, so text passes through unchanged.
  LogDictionary() = default;
  /// `formats` are the section's bytes, which start at address `base` in the image; `target_bits` is the
  /// image's ELF class (32: long, size_t and pointers are 32 bits; 64: LP64).
  LogDictionary(std::vector<char> formats, std::uint64_t base, unsigned target_bits);

  /// The dictionary of `image`: empty when it has no amp_log_fmt section (an image that logs text).
  static LogDictionary of(const ElfImage& image);

  bool empty() const noexcept { return formats_.empty(); }

  /// `record` ("@<hex>[ <arg>]..."), rendered; nullopt when it is not a record or its address is not in
  /// this dictionary.
  std::optional<std::string> render(std::string_view record) const;

  /// `text` with, on each line, a leading "[#<hex ns>]" time stamp rendered as "[seconds.micros]" and the
  /// record that starts the line or follows a space rendered; everything else unchanged.
  std::string render_text(std::string_view text) const;

 private:
  /// The NUL-terminated string at `address`, which must lie wholly inside the dictionary.
  std::optional<std::string_view> string_at(std::uint64_t address) const noexcept;

  std::vector<char> formats_;
  std::uint64_t base_ = 0;
  unsigned target_bits_ = 32;
};

}  // namespace amp::rproc
