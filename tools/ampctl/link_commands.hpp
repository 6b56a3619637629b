// SPDX-License-Identifier: BSD-3-Clause
// ampctl demo, echo and ping: RPMsg between two Linux processes.
#pragma once

#include <vector>

#include "cli.hpp"

namespace ampctl {

void add_link_commands(CLI::App& root, std::vector<Command>& commands);

}  // namespace ampctl
