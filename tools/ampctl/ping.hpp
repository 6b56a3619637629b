// SPDX-License-Identifier: BSD-3-Clause
// The echo exercise that `ping`, `demo` and `run --ping` share: find a service through the name service,
// send it messages of every size, check every echo, print a summary.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "amp/client/linux/connection.hpp"
#include "amp/rpmsg/device.hpp"
#include "amp/rpmsg/linux/link.hpp"
#include "text.hpp"

namespace ampctl {

/// OpenAMP's echo demo stops when it receives this 32-bit value.
inline constexpr std::uint32_t kShutdownMagic = 0xEF56A55A;

struct Summary {
  std::uint64_t messages = 0;
  std::uint64_t bytes = 0;
  std::uint64_t errors = 0;
  std::vector<double> rtt_us;
  std::string first_error;
  bool interrupted = false;  ///< a signal ended it early: it covers what was done before
  double percentile(double p) const;
};

/// Finds `service` through the name service (up to 10 s), then pings it as ping_device() does.
Summary ping(amp::rpmsg::Link& link, const std::string& service, long rounds, bool shutdown_peer);

/// Sends messages of every size 1..MTU, `rounds` times, to the service at `remote`, checking each echo
/// (waiting up to 5 s for it). The host's endpoint is named `service` and announced, as Linux announces
/// the host's endpoint of a channel: the remote's endpoint learns where the host is, and sees it destroyed
/// at the end. Ends early, with an error, when the remote hangs up or destroys its endpoint (`peer_gone`
/// tells which), and, marked interrupted, on a signal.
Summary ping_device(amp::rpmsg::Device& device, const std::string& service, std::uint32_t remote, long rounds,
                    bool shutdown_peer, const std::function<bool()>& peer_gone);

/// The same exercise through an endpoint ampd opened (`ampctl ping --via ampd`): every size 1..ep.mtu,
/// `rounds` times, each echo checked (5 s for each), then a message beyond the MTU, which must be refused
/// (EMSGSIZE). Ends early when the endpoint ends (its remote went away) and, marked interrupted, on a signal.
Summary ping_endpoint(const amp::client::EndpointFd& ep, long rounds, bool shutdown_peer);

/// The summary on stdout: one line of text (and the first error, and a note when interrupted), or one
/// JSON object with `extra`'s members added.
void print_summary(const char* command, const Summary& s, double seconds, bool json, const Json& extra = {});

/// 0 when every echo matched, 128 + N when signal N interrupted it, 1 otherwise.
int exit_code(const Summary& s);

}  // namespace ampctl
