// SPDX-License-Identifier: BSD-3-Clause
// `ampctl echo --vhost-user SOCKET`: the echo service served to a virtual machine's kernel (User-mode
// Linux's virtio_uml, `virtio_uml.device=SOCKET:7`) as a vhost-user virtio-rpmsg device
// (rpmsg::VhostUserServer). The guest's kernel is the virtio driver; amp is the remote.
#pragma once

#include <string>

#include "cli.hpp"

namespace ampctl {

struct VhostUserOptions {
  std::string socket;
  bool no_event_idx = false;
  long connections = 0;  ///< end after this many front ends came and went (0: serve until a signal)
  CLI::Option* given_socket = nullptr;
  CLI::Option* given_event_idx = nullptr;
  CLI::Option* given_connections = nullptr;
};

/// --vhost-user SOCKET, --no-event-idx, --connections N.
void add_vhost_user_options(CLI::App& app, VhostUserOptions& o);

/// The part of `echo`'s help that describes them.
extern const char* const kVhostUserHelp;

/// Serves echo at `service` to each front end that connects, until --connections ended or a signal.
int run_vhost_user_echo(const VhostUserOptions& o, const CommonOptions& common, const std::string& service,
                        bool quiet);

}  // namespace ampctl
