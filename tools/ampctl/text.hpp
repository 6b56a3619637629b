// SPDX-License-Identifier: BSD-3-Clause
// Strings from outside (a peer's service names, a firmware's trace, paths, error messages) on their way out:
// escaped for a terminal in text output, and written losslessly in JSON, which stays valid UTF-8 whatever
// the bytes.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace ampctl {

/// JSON values keep their members in the order they were added.
using Json = nlohmann::ordered_json;

/// `bytes` safe for a terminal: printable ASCII as it is; control characters, DEL and bytes >= 0x80 as
/// \xNN; a backslash as \\ (so that the escapes are unambiguous). Escape sequences never reach the
/// terminal.
std::string printable(std::string_view bytes);
/// The same, keeping line feeds and tabs (for multi-line text: trace buffers).
std::string printable_lines(std::string_view bytes);

/// `bytes` as a JSON string: each byte one character, a byte >= 0x80 as U+0080..U+00FF (what ISO 8859-1
/// decodes it to), so the document is valid UTF-8 and the exact bytes come back by taking each code point
/// as a byte (Python: s.encode("latin-1")). print_json then writes those characters as \u0080..\u00ff.
Json json_bytes(std::string_view bytes);

/// `value` as one line on stdout, ASCII only (other characters as \uNNNN), flushed.
void print_json(const Json& value);

}  // namespace ampctl
