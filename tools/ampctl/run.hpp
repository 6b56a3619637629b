// SPDX-License-Identifier: BSD-3-Clause
// ampctl run: bring a remote up (a native firmware as a process, a bare-metal firmware under QEMU, or one the
// kernel's remoteproc runs), show the services it announces, optionally exercise one, serve until
// interrupted.
#pragma once

#include <vector>

#include "cli.hpp"

namespace ampctl {

/// Exit codes: 0, 1 (the remote or the exercise failed), 2 (bad arguments), 128 + N (a ping interrupted).
void add_run_command(CLI::App& root, std::vector<Command>& commands);

}  // namespace ampctl
