// SPDX-License-Identifier: BSD-3-Clause
// The trace buffer the resource table's RSC_TRACE entry points at: NUL-terminated text, one line per log
// message, appended. Not a ring: once full, later lines are dropped (the first lines of a boot are usually
// the ones that explain it), except that the last kFaultReserve bytes are kept for fault lines, so that a
// crash is always recorded. The buffer is cleared at every boot.
//
// Thread-safety: one writer at a time; a fault line may interrupt a normal line (the text stays
// NUL-terminated, the interrupted line may be cut). The host reads it at any time and may see a line being
// written.
#pragma once

#include <cstddef>
#include <string_view>

namespace amp::firmware::trace {

inline constexpr std::size_t kSize = AMP_BOARD_TRACE_SIZE;
/// Bytes at the end that only fault lines may use.
inline constexpr std::size_t kFaultReserve = 256;
static_assert(kSize > 2 * kFaultReserve, "the trace buffer is too small");

/// The buffer's address (for the resource table's check) and its text so far.
const char* buffer() noexcept;
std::string_view text() noexcept;

/// Empties the buffer.
void clear() noexcept;
/// Appends `line` and a newline; dropped when it does not fit before the fault reserve.
void write_line(std::string_view line) noexcept;
/// Appends `line` and a newline, using the reserve; cut to what fits.
void write_fault_line(std::string_view line) noexcept;
/// Lines dropped because the buffer was full.
std::size_t dropped() noexcept;

}  // namespace amp::firmware::trace
