// SPDX-License-Identifier: BSD-3-Clause
// ampctl run: bring a remote up with a driver whose remote lives as long as ampctl (the process driver),
// show the services it announces, optionally exercise one, serve until interrupted.
#pragma once

namespace ampctl {

void run_help();
/// Returns the process exit code: 0, 1 (the remote or the exercise failed) or 2 (bad arguments).
int run_command(int argc, char** argv);

}  // namespace ampctl
