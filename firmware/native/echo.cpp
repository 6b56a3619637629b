// A native firmware: a Linux program that is the remote processor under the process driver
// (`ampctl run build/.../amp-echo-firmware`). Its resource table declares one rpmsg vdev; the host places the
// vrings, starts it and runs the virtio driver role. It announces "amp-echo" and sends every message back,
// until the host goes away.
//
//   amp-echo-firmware [--service NAME] [--exit-at-start STATUS] [--exit-after COUNT]
//     --exit-at-start  ends at once with STATUS, before rpmsg is up (a firmware that fails to boot)
//     --exit-after     ends (status 0) after echoing COUNT messages (a firmware that stops by itself)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "amp/rproc/firmware_table.hpp"
#include "amp/rproc/linux/process.hpp"

// Offers the name service and EVENT_IDX; the vrings go wherever the host puts them.
AMP_RPROC_RESOURCE_TABLE const amp::rproc::RpmsgFirmwareTable amp_resource_table =
    amp::rproc::rpmsg_firmware_table(
        {.features = (1U << amp::rpmsg::kFeatureNs) | (1U << amp::virtio::kFeatureEventIdx)});

int main(int argc, char** argv) {
  std::string service = "amp-echo";
  long exit_after = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--service" && i + 1 < argc) {
      service = argv[++i];
    } else if (a == "--exit-at-start" && i + 1 < argc) {
      return std::atoi(argv[++i]);
    } else if (a == "--exit-after" && i + 1 < argc) {
      exit_after = std::atol(argv[++i]);
    } else {
      std::fprintf(stderr, "amp-echo-firmware: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  auto link = amp::rproc::join_host();
  if (!link) {
    std::fprintf(stderr, "amp-echo-firmware: %s\n", link.error().message.c_str());
    return 1;
  }
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
  // Serve until the host hangs up (stop, or the host itself ended): no polling, no CPU.
  while (!(*link)->wait_peer_gone(std::chrono::hours(24))) {
  }
  ep.destroy();
  (*link)->close();
  return 0;
}
