// SPDX-License-Identifier: BSD-3-Clause
// ampctl's commands through ampd (docs/ampd.md): `services` lists the remotes and what they announced,
// `open` is an endpoint on stdin and stdout, one line per message.
#pragma once

#include <string>
#include <vector>

#include "cli.hpp"

namespace ampctl {

/// ampd's socket: `given` when not empty, else $AMPD_SOCKET, else amp::client::default_socket_path().
std::string ampd_socket_path(const std::string& given);

void add_ampd_commands(CLI::App& root, std::vector<Command>& commands);

}  // namespace ampctl
