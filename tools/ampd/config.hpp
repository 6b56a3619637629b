// SPDX-License-Identifier: BSD-3-Clause
// ampd's configuration file (TOML, read with toml++): where it listens, the remotes it brings up and owns,
// and who may do what. docs/ampd.md describes the format; an example:
//
//   [ampd]
//   socket = "/run/ampd/ampd.sock"
//   socket_mode = 0o660
//
//   [[remote]]
//   name = "r5"
//   driver = "process"              # a native firmware (rproc::ProcessRemote)
//   firmware = "/usr/lib/amp/echo"
//   notify = "eventfd"              # eventfd | socket | poll
//   recovery = true
//
//   [[allow]]                       # clients other than ampd's own user and root
//   uid = 1001                      # and/or gid = 100
//   remote = "r5"                   # default: every remote
//   services = ["amp-echo", "rpmsg-*"]   # what it may open by name (fnmatch patterns)
//   addresses = [[0x400, 0x4ff]]    # what it may open by address (inclusive ranges)
//   create = ["client-*"]           # the names it may announce
//
// Every key is checked: an unknown key, a value of the wrong type or out of range is an error that names
// the file, line and key, and nothing starts.
//
// Thread-safety: plain values.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "amp/metal/linux/sys_error.hpp"
#include "amp/rpmsg/linux/link.hpp"

namespace amp::ampd {

struct AddressRange {
  std::uint32_t first = 0;
  std::uint32_t last = 0;  ///< inclusive
};

/// What clients matching `uid` and `gid` (each unset: any) may do on `remote` (empty: every remote).
struct Rule {
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::string remote;
  std::vector<std::string> services;
  std::vector<AddressRange> addresses;
  std::vector<std::string> create;
};

enum class DriverKind : std::uint8_t { kProcess };

struct RemoteConfig {
  std::string name;
  DriverKind driver = DriverKind::kProcess;
  std::string firmware;
  std::vector<std::string> args;
  rpmsg::NotifyMode notify = rpmsg::NotifyMode::kEventFd;
  bool recovery = true;
};

struct Config {
  std::string socket;         ///< empty: default_socket_path()
  mode_t socket_mode = 0600;  ///< the socket file's permissions
  std::optional<gid_t> socket_group;
  std::vector<RemoteConfig> remotes;
  std::vector<Rule> rules;
};

/// client::default_socket_path(): where clients look for ampd.
std::string default_socket_path();

/// Parses a configuration; `source` names it in messages (a file name).
metal::SysResult<Config> parse_config(std::string_view text, std::string_view source);
/// Reads and parses the file at `path`.
metal::SysResult<Config> load_config(const std::string& path);

}  // namespace amp::ampd
