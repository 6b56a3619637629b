// SPDX-License-Identifier: BSD-3-Clause
#include "config.hpp"

#include "amp/client/linux/connection.hpp"

#include <unistd.h>

#include <toml++/toml.h>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

namespace amp::ampd {

namespace {

using metal::SysError;
using metal::SysResult;

/// A configuration error, "file:line:col: what".
class ConfigError {
 public:
  ConfigError(std::string_view source, const toml::source_region& where, std::string what) {
    std::ostringstream s;
    s << source << ':' << where.begin.line << ':' << where.begin.column << ": " << what;
    message_ = s.str();
  }
  SysError error() const { return SysError(Status::kMalformed, message_); }

 private:
  std::string message_;
};

/// Reads one table's keys, refusing any it does not know.
class TableReader {
 public:
  TableReader(const toml::table& t, std::string_view source, std::string where)
      : t_(t), source_(source), where_(std::move(where)) {}

  /// The unknown keys' error, if any (call after every get).
  std::optional<ConfigError> unknown_keys() const {
    for (auto&& entry : t_) {
      const toml::key& key = entry.first;
      if (known_.count(std::string(key.str())) == 0) {
        return ConfigError(source_, key.source(),
                           "unknown key '" + std::string(key.str()) + "' in " + where_);
      }
    }
    return std::nullopt;
  }

  const toml::node* get(std::string_view key) {
    known_.insert(std::string(key));
    return t_.get(key);
  }

  /// An optional string.
  std::optional<ConfigError> string(std::string_view key, std::string& out) {
    const toml::node* n = get(key);
    if (n == nullptr) return std::nullopt;
    if (!n->is_string()) return bad(*n, key, "a string");
    out = **n->as_string();
    return std::nullopt;
  }
  /// An optional integer in [lo, hi].
  template <class T>
  std::optional<ConfigError> integer(std::string_view key, std::optional<T>& out, std::int64_t lo,
                                     std::int64_t hi) {
    const toml::node* n = get(key);
    if (n == nullptr) return std::nullopt;
    if (!n->is_integer()) return bad(*n, key, "an integer");
    const std::int64_t v = **n->as_integer();
    if (v < lo || v > hi) {
      return ConfigError(source_, n->source(),
                         std::string(key) + " in " + where_ + " is " + std::to_string(v) + ", not in " +
                             std::to_string(lo) + ".." + std::to_string(hi));
    }
    out = static_cast<T>(v);
    return std::nullopt;
  }
  std::optional<ConfigError> boolean(std::string_view key, bool& out) {
    const toml::node* n = get(key);
    if (n == nullptr) return std::nullopt;
    if (!n->is_boolean()) return bad(*n, key, "true or false");
    out = **n->as_boolean();
    return std::nullopt;
  }
  /// An optional array of strings.
  std::optional<ConfigError> strings(std::string_view key, std::vector<std::string>& out) {
    const toml::node* n = get(key);
    if (n == nullptr) return std::nullopt;
    const toml::array* a = n->as_array();
    if (a == nullptr) return bad(*n, key, "an array of strings");
    for (const toml::node& e : *a) {
      if (!e.is_string()) return bad(e, key, "an array of strings");
      out.push_back(**e.as_string());
    }
    return std::nullopt;
  }

  ConfigError bad(const toml::node& n, std::string_view key, std::string_view want) const {
    return ConfigError(source_, n.source(),
                       std::string(key) + " in " + where_ + " must be " + std::string(want));
  }
  std::string_view source() const { return source_; }
  const toml::table& table() const { return t_; }

 private:
  const toml::table& t_;
  std::string_view source_;
  std::string where_;
  std::set<std::string> known_;
};

#define AMPD_CHECK(expr)                                                        \
  do {                                                                          \
    if (auto amp_ce_ = (expr)) return Unexpected<SysError>((*amp_ce_).error()); \
  } while (0)

SysResult<void> read_daemon(const toml::table& t, std::string_view source, Config& c) {
  TableReader r(t, source, "[ampd]");
  AMPD_CHECK(r.string("socket", c.socket));
  std::optional<mode_t> mode;
  AMPD_CHECK(r.integer("socket_mode", mode, 0, 0777));
  if (mode) c.socket_mode = *mode;
  AMPD_CHECK(r.integer("socket_group", c.socket_group, 0, std::numeric_limits<gid_t>::max() - 1));
  AMPD_CHECK(r.unknown_keys());
  return {};
}

SysResult<RemoteConfig> read_remote(const toml::table& t, std::string_view source, std::size_t index) {
  RemoteConfig rc;
  const std::string where = "[[remote]] " + std::to_string(index + 1);
  TableReader r(t, source, where);
  std::string driver = "process";
  std::string notify = "eventfd";
  // Every key first (a misspelt one is the likeliest mistake, and its name the best hint), then the values.
  AMPD_CHECK(r.string("name", rc.name));
  AMPD_CHECK(r.string("driver", driver));
  AMPD_CHECK(r.string("firmware", rc.firmware));
  AMPD_CHECK(r.strings("args", rc.args));
  AMPD_CHECK(r.string("notify", notify));
  AMPD_CHECK(r.boolean("recovery", rc.recovery));
  AMPD_CHECK(r.unknown_keys());
  auto error = [&](const char* key, const std::string& what) {
    const toml::node* n = key != nullptr ? t.get(key) : nullptr;
    return Unexpected<SysError>(ConfigError(source, n != nullptr ? n->source() : t.source(), what).error());
  };
  if (rc.name.empty() || rc.name.size() >= 32)
    return error(nullptr, where + " needs a name of 1 to 31 bytes");
  if (driver != "process") {
    return error("driver", "remote '" + rc.name + "': driver '" + driver +
                               "' is not one ampd can run yet (it can: process)");
  }
  if (rc.firmware.empty())
    return error(nullptr, "remote '" + rc.name + "' needs a firmware (the program to run)");
  if (notify == "eventfd") {
    rc.notify = rpmsg::NotifyMode::kEventFd;
  } else if (notify == "socket") {
    rc.notify = rpmsg::NotifyMode::kSocket;
  } else if (notify == "poll") {
    rc.notify = rpmsg::NotifyMode::kPoll;
  } else {
    return error("notify",
                 "remote '" + rc.name + "': notify is '" + notify + "', not eventfd, socket or poll");
  }
  return rc;
}

SysResult<Rule> read_rule(const toml::table& t, std::string_view source, std::size_t index) {
  Rule rule;
  const std::string where = "[[allow]] " + std::to_string(index + 1);
  TableReader r(t, source, where);
  constexpr std::int64_t kMaxId = std::numeric_limits<std::uint32_t>::max() - 1;  // (uid_t)-1 means "none"
  // Unknown keys first (see read_remote).
  for (const char* key : {"uid", "gid", "remote", "services", "create", "addresses"}) r.get(key);
  AMPD_CHECK(r.unknown_keys());
  AMPD_CHECK(r.integer("uid", rule.uid, 0, kMaxId));
  AMPD_CHECK(r.integer("gid", rule.gid, 0, kMaxId));
  if (!rule.uid && !rule.gid) {
    return Unexpected<SysError>(ConfigError(source, t.source(), where + " needs a uid or a gid").error());
  }
  AMPD_CHECK(r.string("remote", rule.remote));
  AMPD_CHECK(r.strings("services", rule.services));
  AMPD_CHECK(r.strings("create", rule.create));
  if (const toml::node* n = r.get("addresses")) {
    const toml::array* a = n->as_array();
    if (a == nullptr)
      return Unexpected<SysError>(r.bad(*n, "addresses", "an array of [first, last] pairs").error());
    for (const toml::node& e : *a) {
      const toml::array* pair = e.as_array();
      if (pair == nullptr || pair->size() != 2 || !(*pair)[0].is_integer() || !(*pair)[1].is_integer()) {
        return Unexpected<SysError>(r.bad(e, "addresses", "an array of [first, last] pairs").error());
      }
      const std::int64_t first = **(*pair)[0].as_integer();
      const std::int64_t last = **(*pair)[1].as_integer();
      if (first < 0 || last < first || last >= 0xFFFFFFFF) {
        return Unexpected<SysError>(ConfigError(source, e.source(),
                                                where + ": address range [" + std::to_string(first) + ", " +
                                                    std::to_string(last) +
                                                    "] is not first <= last < 0xffffffff")
                                        .error());
      }
      rule.addresses.push_back({static_cast<std::uint32_t>(first), static_cast<std::uint32_t>(last)});
    }
  }
  AMPD_CHECK(r.unknown_keys());
  return rule;
}

/// An array of tables under `key` of the root (absent: none).
SysResult<const toml::array*> tables(const toml::table& root, std::string_view key, std::string_view source) {
  const toml::node* n = root.get(key);
  if (n == nullptr) return static_cast<const toml::array*>(nullptr);
  const toml::array* a = n->as_array();
  if (a == nullptr || !a->is_array_of_tables()) {
    return Unexpected<SysError>(
        ConfigError(source, n->source(),
                    std::string(key) + " must be an array of tables ([[" + std::string(key) + "]])")
            .error());
  }
  return a;
}

}  // namespace

std::string default_socket_path() {
  return client::default_socket_path();
}

SysResult<Config> parse_config(std::string_view text, std::string_view source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return Unexpected<SysError>(ConfigError(source, e.source(), std::string(e.description())).error());
  }
  Config c;
  TableReader top(root, source, "the file");
  if (const toml::node* n = top.get("ampd")) {
    if (!n->is_table()) return Unexpected<SysError>(top.bad(*n, "ampd", "a table ([ampd])").error());
    if (auto r = read_daemon(*n->as_table(), source, c); !r) return Unexpected<SysError>(r.error());
  }
  top.get("remote");
  top.get("allow");
  AMPD_CHECK(top.unknown_keys());
  auto remotes = tables(root, "remote", source);
  if (!remotes) return Unexpected<SysError>(remotes.error());
  if (*remotes != nullptr) {
    std::set<std::string> names;
    for (std::size_t i = 0; i < (*remotes)->size(); ++i) {
      const toml::table& t = *(**remotes)[i].as_table();
      auto rc = read_remote(t, source, i);
      if (!rc) return Unexpected<SysError>(rc.error());
      if (!names.insert(rc->name).second) {
        return Unexpected<SysError>(
            ConfigError(source, t.source(), "two remotes are named '" + rc->name + "'").error());
      }
      c.remotes.push_back(std::move(*rc));
    }
  }
  auto rules = tables(root, "allow", source);
  if (!rules) return Unexpected<SysError>(rules.error());
  if (*rules != nullptr) {
    for (std::size_t i = 0; i < (*rules)->size(); ++i) {
      const toml::table& t = *(**rules)[i].as_table();
      auto rule = read_rule(t, source, i);
      if (!rule) return Unexpected<SysError>(rule.error());
      if (!rule->remote.empty()) {
        bool found = false;
        for (const RemoteConfig& rc : c.remotes) found = found || rc.name == rule->remote;
        if (!found) {
          return Unexpected<SysError>(ConfigError(source, t.source(),
                                                  "[[allow]] " + std::to_string(i + 1) + " names remote '" +
                                                      rule->remote + "', which is not configured")
                                          .error());
        }
      }
      c.rules.push_back(std::move(*rule));
    }
  }
  return c;
}

SysResult<Config> load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return metal::sys_fail("open " + path);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return metal::sys_fail("read " + path);
  return parse_config(text.str(), path);
}

}  // namespace amp::ampd
