// SPDX-License-Identifier: BSD-3-Clause
// ampctl's lifecycle commands (status, load, start, stop, attach, detach, trace).
#pragma once

#include <vector>

#include "cli.hpp"

namespace ampctl {

/// Exit codes: 0, 1 (the operation failed) or 2 (bad arguments).
void add_lifecycle_commands(CLI::App& root, std::vector<Command>& commands);

}  // namespace ampctl
