// SPDX-License-Identifier: BSD-3-Clause
// How `echo` and `ping` reach their peer: the link options (--listen, --connect, --join-fd, --preset and
// what goes with them), their checks, and bringing the link up.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "amp/rpmsg/linux/link.hpp"
#include "cli.hpp"

namespace ampctl {

/// The link options of one command, as parsed.
struct LinkOptions {
  amp::rpmsg::Role role = amp::rpmsg::Role::kDriver;
  amp::rpmsg::NotifyMode notify = amp::rpmsg::NotifyMode::kEventFd;
  std::string listen;
  std::string connect;
  long join_fd = -1;
  std::string preset;
  long index = -1;  // -1: by role
  std::string socket = "/tmp/openamp.event.0";
  std::string shm;
  long ring_size = 256;
  long buffer_size = 512;
  /// How long to wait for the peer (and, for the preset, the whole set-up); nullopt: forever.
  std::optional<std::chrono::milliseconds> timeout = std::chrono::milliseconds(10000);
  std::string service;

  struct Given {
    CLI::Option *listen, *connect, *join_fd, *preset, *index, *socket, *shm, *notify, *ring_size,
        *buffer_size;
  } given{};
};

/// --notify eventfd|socket|poll|adaptive.
CLI::Option* add_notify_option(CLI::App& app, amp::rpmsg::NotifyMode& mode);

/// Adds the link options to `app`; `role` is the default --role.
void add_link_options(CLI::App& app, LinkOptions& o, amp::rpmsg::Role role);

/// The help text that describes them.
extern const char* const kLinkOptionsHelp;

/// Refuses what does not go together (exit 2): two ways to reach the peer, options the preset fixes,
/// creator's options on the joining side, preset options without the preset, no way at all.
void check_link_options(const LinkOptions& o);

/// Brings the link up as the options say; dies (exit 1) when it cannot, 128 + N when a signal interrupts
/// the wait for the peer. A --listen socket file is removed once the peer is connected, and on every way out.
std::unique_ptr<amp::rpmsg::Link> open_link(const LinkOptions& o);

/// --service, or the default for the link (amp-echo; the preset: OpenAMP's rpmsg-openamp-demo-channel).
std::string service_name(const LinkOptions& o);

}  // namespace ampctl
