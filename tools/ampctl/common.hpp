// SPDX-License-Identifier: BSD-3-Clause
// What ampctl's commands share: signal handling, option parsing, and the echo ping with its summary.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "amp/rpmsg/linux/link.hpp"

namespace ampctl {

/// OpenAMP's echo demo stops when it receives this 32-bit value.
inline constexpr std::uint32_t kShutdownMagic = 0xEF56A55A;

/// A flag to sleep on until something (a callback, a signal) sets it.
class Wake {
 public:
  void set();
  void wait();
  /// false when `timeout` passed first.
  bool wait_for(std::chrono::milliseconds timeout);

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool set_ = false;
};

/// Set when SIGINT or SIGTERM arrives; g_wake is set then too (see watch_signals).
extern std::atomic<bool> g_interrupted;
extern Wake g_wake;
/// Whether the main thread checks g_interrupted / waits on g_wake (else a signal ends the process at once).
extern std::atomic<bool> g_interruptible;

/// Blocks SIGINT/SIGTERM in every thread and takes them on a thread of its own, so that a waiting main
/// thread sleeps instead of polling a flag.
void watch_signals();

[[noreturn]] void die(const std::string& msg, int code = 1);

/// `s` as a JSON string literal, quotes included.
std::string json_string(const std::string& s);

/// The whole file into `out` (true), or false with errno set.
bool read_whole_file(const std::string& path, std::string& out);

/// "ADDRESS:SIZE", each decimal or 0x-hex, SIZE > 0, not wrapping around: {address, size}; nullopt otherwise.
std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_address_range(std::string_view text);

struct Options {
  std::map<std::string, std::string> values;
  std::vector<std::string> flags;
  std::vector<std::string> positional;  // only where parse() is told to accept them
  bool has(const std::string& f) const;
  std::string get(const std::string& k, const std::string& def = "") const;
  long number(const std::string& k, long def, long min, long max) const;
};

/// Parses "--key value" and "--flag" arguments; `value_keys` lists the keys that take a value. With
/// `positional`, other arguments are collected (and everything after "--" too); otherwise they are errors.
Options parse(int argc, char** argv, int first, const std::vector<std::string>& value_keys,
              const std::vector<std::string>& flag_keys, bool positional = false);

amp::rpmsg::Role parse_role(const std::string& s);
amp::rpmsg::NotifyMode parse_notify(const std::string& s);

struct Summary {
  std::uint64_t messages = 0;
  std::uint64_t bytes = 0;
  std::uint64_t errors = 0;
  std::vector<double> rtt_us;
  std::string first_error;
  double percentile(double p) const;
};

/// Finds `service` through the name service, then sends messages of every size 1..MTU, `rounds` times,
/// checking each echo.
Summary ping(amp::rpmsg::Link& link, const std::string& service, long rounds, bool shutdown_peer);
/// The same, to a service already found at `remote`.
Summary ping_address(amp::rpmsg::Link& link, const std::string& service, std::uint32_t remote, long rounds,
                     bool shutdown_peer);
/// The same over any rpmsg device; `peer_gone` says when to give up waiting for echoes.
Summary ping_device(amp::rpmsg::Device& device, const std::string& service, std::uint32_t remote, long rounds,
                    bool shutdown_peer, const std::function<bool()>& peer_gone);

void print_summary(const char* what, const Summary& s, double seconds, bool json,
                   const std::string& extra_json);

}  // namespace ampctl
