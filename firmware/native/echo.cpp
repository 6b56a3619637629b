// SPDX-License-Identifier: BSD-3-Clause
// A native firmware: a Linux program that is the remote processor under the process driver
// (`ampctl run build/.../amp-echo-firmware`). Its resource table declares one rpmsg vdev; the host places the
// vrings, starts it and runs the virtio driver role. It announces "amp-echo" and sends every message back,
// until the host goes away; a host that detaches can attach again.
//
//   amp-echo-firmware [--service NAME] [--exit-at-start STATUS] [--exit-after COUNT] [--stubborn]
//   [--ping-host COUNT]
//     --exit-at-start  ends at once with STATUS, before rpmsg is up (a firmware that fails to boot)
//     --exit-after     ends (status 0) after echoing COUNT messages (a firmware that stops by itself)
//     --stubborn       ignores SIGTERM and stays after the host has gone (a hung firmware: stop must kill it)
//     --ping-host      instead of echoing: once the host announces an endpoint of the service's name
//                      (`ampctl run --echo`), sends it COUNT messages, checks each echo, reports on stderr
#include <unistd.h>
#include <chrono>
#include <condition_variable>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "amp/rproc/firmware_table.hpp"
#include "amp/rproc/linux/process.hpp"

// Offers the name service and EVENT_IDX; the vrings go wherever the host puts them.
AMP_RPROC_RESOURCE_TABLE const amp::rproc::RpmsgFirmwareTable amp_resource_table =
    amp::rproc::rpmsg_firmware_table(
        {.features = (1U << amp::rpmsg::kFeatureNs) | (1U << amp::virtio::kFeatureEventIdx)});

namespace {

/// --ping-host: sends `count` numbered messages to the host one at a time, checking each echo.
int ping_host(amp::rpmsg::Link& link, const std::string& service, long count) {
  std::mutex m;
  std::condition_variable cv;
  std::string last;
  long received = 0;
  amp::rpmsg::Endpoint ep;
  const amp::Status s = link.device().create_endpoint(
      ep, service, amp::rpmsg::kAddrAny, amp::rpmsg::kAddrAny,
      [&](amp::rpmsg::Endpoint&, const amp::rpmsg::Message& msg) {
        std::lock_guard lock(m);
        last.assign(reinterpret_cast<const char*>(msg.payload.data()), msg.payload.size());
        ++received;
        cv.notify_all();
      });
  if (!ok(s)) return 1;
  // Bound when the host's announcement of the same name arrives (checked every 10 ms: demo code).
  while (ep.remote_address() == amp::rpmsg::kAddrAny) {
    if (link.wait_peer_gone(std::chrono::milliseconds(10))) return 1;
  }
  long good = 0;
  for (long i = 0; i < count; ++i) {
    const std::string text = "ping " + std::to_string(i);
    if (!ok(ep.send(std::as_bytes(std::span(text)), 5'000'000'000))) break;
    std::unique_lock lock(m);
    if (!cv.wait_for(lock, std::chrono::seconds(5), [&] { return received > i; })) break;
    if (last == text) ++good;
  }
  std::fprintf(stderr, "amp-echo-firmware: %ld of %ld pings echoed by the host\n", good, count);
  while (!link.wait_peer_gone(std::chrono::hours(24))) {
  }
  ep.destroy();
  link.close();
  return good == count ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string service = "amp-echo";
  long exit_after = -1;
  long ping_count = -1;
  bool stubborn = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--service" && i + 1 < argc) {
      service = argv[++i];
    } else if (a == "--exit-at-start" && i + 1 < argc) {
      return std::atoi(argv[++i]);
    } else if (a == "--exit-after" && i + 1 < argc) {
      exit_after = std::atol(argv[++i]);
    } else if (a == "--stubborn") {
      std::signal(SIGTERM, SIG_IGN);
      stubborn = true;
    } else if (a == "--ping-host" && i + 1 < argc) {
      ping_count = std::atol(argv[++i]);
    } else {
      std::fprintf(stderr, "amp-echo-firmware: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  // One session per host: at start, and again after each detach and attach. kClosed: the host is gone.
  for (;;) {
    auto link = amp::rproc::join_host();
    if (!link) {
      const amp::Status why = link.error().status;
      if (why == amp::Status::kClosed) {
        while (stubborn) pause();
        return 0;  // the host has gone for good
      }
      std::fprintf(stderr, "amp-echo-firmware: %s\n", link.error().message.c_str());
      if (why == amp::Status::kNotFound || why == amp::Status::kInvalidArgument) return 1;  // not our host
      continue;  // that session failed: wait for the next
    }
    if (ping_count >= 0) return ping_host(**link, service, ping_count);
    amp::rpmsg::Endpoint ep;
    const amp::Status s = (*link)->device().create_endpoint(
        ep, service, amp::rpmsg::kAddrAny, amp::rpmsg::kAddrAny,
        [exit_after, echoed = 0L](amp::rpmsg::Endpoint& self, const amp::rpmsg::Message& m) mutable {
          (void)self.send_to(m.src, m.payload);
          if (++echoed == exit_after) std::_Exit(0);
        });
    if (!ok(s)) {
      std::fprintf(stderr, "amp-echo-firmware: endpoint: %s\n", amp::to_string(s));
      return 1;
    }
    // Serve until the host hangs up (a stop, a detach, or the host's end): no polling, no CPU.
    while (!(*link)->wait_peer_gone(std::chrono::hours(24))) {
    }
    ep.destroy();
    (*link)->close();
  }
}
