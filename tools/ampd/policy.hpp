// SPDX-License-Identifier: BSD-3-Clause
// Who may do what through ampd: the client's credentials (SO_PEERCRED) against the configuration's
// [[allow]] rules. ampd's own user and root may do everything; any other client only what a rule that
// matches its uid or gid grants, on the remotes the rule names: open a service by name (fnmatch patterns),
// open an address (inclusive ranges), announce a name of its own (patterns). With no rule, nothing.
//
// Thread-safety: const after construction; any thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string_view>
#include <vector>

#include "config.hpp"

namespace amp::ampd {

struct Credentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

class Policy {
 public:
  /// `owner`: ampd's own uid (its clients of that uid are trusted like root).
  Policy(std::vector<Rule> rules, uid_t owner) : rules_(std::move(rules)), owner_(owner) {}

  bool may_open_service(const Credentials& c, std::string_view remote, std::string_view service) const;
  bool may_open_address(const Credentials& c, std::string_view remote, std::uint32_t addr) const;
  bool may_create(const Credentials& c, std::string_view remote, std::string_view name) const;
  /// Whether the client may see `remote` and its services at all (some rule names it, or it is trusted).
  bool may_see(const Credentials& c, std::string_view remote) const;

 private:
  bool trusted(const Credentials& c) const { return c.uid == 0 || c.uid == owner_; }
  /// Rules that apply to `c` on `remote`.
  template <class Fn>
  bool any_rule(const Credentials& c, std::string_view remote, Fn&& fn) const;

  std::vector<Rule> rules_;
  uid_t owner_;
};

}  // namespace amp::ampd
