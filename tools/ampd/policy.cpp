// SPDX-License-Identifier: BSD-3-Clause
#include "policy.hpp"

#include <fnmatch.h>

#include <string>

namespace amp::ampd {

namespace {

bool matches_any(const std::vector<std::string>& patterns, std::string_view name) {
  const std::string n(name);
  for (const std::string& p : patterns) {
    if (::fnmatch(p.c_str(), n.c_str(), 0) == 0) return true;
  }
  return false;
}

}  // namespace

template <class Fn>
bool Policy::any_rule(const Credentials& c, std::string_view remote, Fn&& fn) const {
  for (const Rule& r : rules_) {
    if (r.uid && *r.uid != c.uid) continue;
    if (r.gid && *r.gid != c.gid) continue;
    if (!r.remote.empty() && r.remote != remote) continue;
    if (fn(r)) return true;
  }
  return false;
}

bool Policy::may_open_service(const Credentials& c, std::string_view remote, std::string_view service) const {
  return trusted(c) || any_rule(c, remote, [&](const Rule& r) { return matches_any(r.services, service); });
}

bool Policy::may_open_address(const Credentials& c, std::string_view remote, std::uint32_t addr) const {
  return trusted(c) || any_rule(c, remote, [&](const Rule& r) {
           for (const AddressRange& a : r.addresses) {
             if (addr >= a.first && addr <= a.last) return true;
           }
           return false;
         });
}

bool Policy::may_create(const Credentials& c, std::string_view remote, std::string_view name) const {
  return trusted(c) || any_rule(c, remote, [&](const Rule& r) { return matches_any(r.create, name); });
}

bool Policy::may_see(const Credentials& c, std::string_view remote) const {
  return trusted(c) || any_rule(c, remote, [](const Rule&) { return true; });
}

}  // namespace amp::ampd
