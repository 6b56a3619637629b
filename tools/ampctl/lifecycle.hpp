// SPDX-License-Identifier: BSD-3-Clause
// ampctl's lifecycle commands (status, load, start, stop, attach, detach).
#pragma once

#include <string>

namespace ampctl {

bool is_lifecycle_command(const std::string& cmd);
void lifecycle_help(const std::string& cmd);
/// Returns the process exit code: 0, 1 (the operation failed) or 2 (bad arguments).
int run_lifecycle_command(const std::string& cmd, int argc, char** argv);

}  // namespace ampctl
