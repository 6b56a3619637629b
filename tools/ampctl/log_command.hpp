// SPDX-License-Identifier: BSD-3-Clause
// Rendering a firmware's log lines: `ampctl log FIRMWARE [FILE]` renders a trace or console capture of an
// image that logs by dictionary (metal/log_record.hpp) with that image's formats; other text passes as it is.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "amp/rproc/linux/log_dictionary.hpp"
#include "cli.hpp"

namespace ampctl {

/// The log dictionary of the image at `path` (empty when it has none); nullopt, with `error` set, when the
/// file cannot be read or is not an ELF image.
std::optional<amp::rproc::LogDictionary> dictionary_of(const std::string& path, std::string& error);

void add_log_command(CLI::App& root, std::vector<Command>& commands);

}  // namespace ampctl
