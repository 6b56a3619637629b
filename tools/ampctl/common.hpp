// SPDX-License-Identifier: BSD-3-Clause
// Small things several ampctl commands need: reading a file, an ADDRESS:SIZE argument, this machine's ELF
// machine.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace ampctl {

/// The whole file into `out` (true), or false with errno set.
bool read_whole_file(const std::string& path, std::string& out);

/// "ADDRESS:SIZE", each decimal or 0x-hex, SIZE > 0, not wrapping around: {address, size}; nullopt otherwise.
std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_address_range(std::string_view text);

/// The e_machine of the machine ampctl was built for (elf::kMachineNone where amp knows none).
std::uint16_t host_machine();

}  // namespace ampctl
